"""Adapter for rule refine_o2lnet: O2Lnet fine-tuned through HLOBA's update (o2lnet.refine)."""

from _common import setup, stream_inputs, stream_settings

log = setup(snakemake)  # noqa: F821

from hloba.assim.refine import RefineSettings, refine_o2lnet_file  # noqa: E402

sm = snakemake  # noqa: F821
cfg, run = stream_settings(sm)
refine_o2lnet_file(RefineSettings.from_dict(sm.params.refine), sm.params.tuning_year, stream_inputs(sm),
                   list(sm.input.references), sm.output.checkpoint, sm.output.report, cfg, run)
