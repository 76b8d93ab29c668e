"""Adapter for rule compare_method: one method of the comparison."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.verify.compare import run_method  # noqa: E402

sm = snakemake  # noqa: F821
run_method(
    sm.wildcards.method, sm.params.year, sm.params.days, sm.input.autoencoder, sm.input.o2lnet, sm.input.calibration,
    list(sm.input.observations), sm.output[0], assimilation=sm.params.assimilation, forecast=sm.params.forecast,
    interval_hours=sm.params.interval_hours, spinup_days=sm.params.spinup_days, world_qg=sm.params.world_qg,
    emulator=sm.input.get("emulator"), tuning=sm.input.get("tuning"), oi_covariance=sm.input.get("oi_covariance"),
)
