"""Adapter for rule compute_normalization: statistics of the training years."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.normalization import write_normalization  # noqa: E402

write_normalization(list(snakemake.input), snakemake.output[0], n_harmonics=snakemake.params.harmonics)  # noqa: F821
