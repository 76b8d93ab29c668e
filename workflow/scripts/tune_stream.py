"""Adapter for rule tune_stream: the tuning streams on the calibration year."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.assim.tuning import tune_stream_file  # noqa: E402

sm = snakemake  # noqa: F821
tune_stream_file(
    sm.params.year, sm.input.autoencoder, sm.input.o2lnet, sm.input.calibration, list(sm.input.observations),
    list(sm.input.references), sm.output.tuning, assimilation=sm.params.assimilation, forecast=sm.params.forecast,
    interval_hours=sm.params.interval_hours, world_qg=sm.params.world_qg, emulator=sm.input.get("emulator"),
)
