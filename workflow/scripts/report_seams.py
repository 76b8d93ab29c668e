"""Adapter for rule report_seams: each stream's spin-up against the previous year's archive."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.verify.seams import seam_report  # noqa: E402

sm = snakemake  # noqa: F821
seam_report(list(zip(sm.input.latent, sm.input.previous)), sm.input.autoencoder, sm.input.normalization,
            sm.output.table, sm.output.figure)
