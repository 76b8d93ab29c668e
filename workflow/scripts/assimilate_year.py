"""Adapter for rule assimilate_year: one year's stream."""

from _common import setup, stream_inputs, stream_settings

log = setup(snakemake)  # noqa: F821

from hloba.assim.year import assimilate_year  # noqa: E402

sm = snakemake  # noqa: F821
cfg, run = stream_settings(sm)
assimilate_year(int(sm.wildcards.year), stream_inputs(sm), cfg, sm.output.latent, sm.output.feedback,
                sm.output.diagnostics, run, resume_dir=sm.params.resume_dir)
