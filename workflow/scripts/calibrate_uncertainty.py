"""Adapter for rule calibrate_uncertainty."""

from _common import setup, stream_inputs, stream_settings

log = setup(snakemake)  # noqa: F821

from hloba.assim.uncertainty import calibrate_uncertainty  # noqa: E402

sm = snakemake  # noqa: F821
cfg, run = stream_settings(sm)
calibrate_uncertainty(sm.params.year, stream_inputs(sm), sm.input.reference, sm.output.factors, cfg, run=run,
                      model_output=sm.output.model, **sm.params.calibration, **sm.params.uncertainty)
