"""Adapter for rule compare_method: one method of the comparison."""

from _common import setup, stream_inputs, stream_settings

log = setup(snakemake)  # noqa: F821

from hloba.verify.compare import run_method  # noqa: E402

sm = snakemake  # noqa: F821
cfg, run = stream_settings(sm)
run_method(sm.wildcards.method, sm.params.year, sm.params.days, stream_inputs(sm), sm.output[0], cfg,
           spinup_days=sm.params.spinup_days, run=run)
