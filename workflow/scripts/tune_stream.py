"""Adapter for rule tune_stream: the tuning streams on the calibration year."""

from _common import setup, stream_inputs, stream_settings

log = setup(snakemake)  # noqa: F821

from hloba.assim.tuning import tune_stream_file  # noqa: E402

sm = snakemake  # noqa: F821
cfg, run = stream_settings(sm)
tune_stream_file(sm.params.year, stream_inputs(sm), list(sm.input.references), sm.output.tuning, cfg, run)
