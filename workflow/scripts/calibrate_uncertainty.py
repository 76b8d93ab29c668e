"""Adapter for rule calibrate_uncertainty."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.archive.calibrate import calibrate_uncertainty  # noqa: E402

sm = snakemake  # noqa: F821
uncertainty = sm.params.uncertainty
calibrate_uncertainty(
    sm.params.year, sm.input.autoencoder, sm.input.o2lnet, sm.input.calibration, sm.input.get("tuning"),
    list(sm.input.observations), sm.input.reference, sm.output.factors, assimilation=sm.params.assimilation,
    forecast=sm.params.forecast, interval_hours=sm.params.interval_hours, world_qg=sm.params.world_qg,
    emulator=sm.input.get("emulator"), samples=uncertainty.get("samples", 16), seed=uncertainty.get("seed", 0),
    days=sm.params.days,
)
