"""Adapter for rule assimilate_year: one year's stream."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.assim.stream import assimilate_year  # noqa: E402

sm = snakemake  # noqa: F821
assimilate_year(
    int(sm.wildcards.year), sm.input.autoencoder, sm.input.o2lnet, sm.input.calibration, list(sm.input.observations),
    sm.output.latent, sm.output.feedback, sm.output.diagnostics, assimilation=sm.params.assimilation,
    forecast=sm.params.forecast, interval_hours=sm.params.interval_hours, world_qg=sm.params.world_qg,
    emulator=sm.input.get("emulator"), tuning=sm.input.get("tuning"), oi_covariance=sm.input.get("oi_covariance"),
    resume_dir=sm.params.resume_dir,
)
