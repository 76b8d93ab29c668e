"""Adapter for rule train_autoencoder."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.models.train_autoencoder import train_autoencoder  # noqa: E402
from hloba.models.training import TrainingConfig  # noqa: E402

sm = snakemake  # noqa: F821
train_autoencoder(
    list(sm.input.train), list(sm.input.validation), sm.input.normalization, sm.output.checkpoint,
    sm.output.report, sm.params.architecture, TrainingConfig.from_dict(sm.params.training),
)
