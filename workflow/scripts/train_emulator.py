"""Adapter for rule train_emulator."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.forecast.emulator import train_emulator  # noqa: E402
from hloba.models.training import TrainingConfig  # noqa: E402

sm = snakemake  # noqa: F821
train_emulator(
    list(sm.input.train), list(sm.input.validation), sm.input.normalization, sm.output.checkpoint, sm.output.report,
    sm.params.architecture, TrainingConfig.from_dict(sm.params.training), rollout=sm.params.rollout,
    interval_hours=sm.params.interval_hours,
)
