"""Adapter for rule train_o2lnet."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.models.train_o2lnet import O2LnetTraining, train_o2lnet  # noqa: E402
from hloba.models.training import TrainingConfig  # noqa: E402

sm = snakemake  # noqa: F821
train_o2lnet(
    list(sm.input.train_refs), list(sm.input.train_obs), list(sm.input.validation_refs),
    list(sm.input.validation_obs), sm.input.autoencoder, sm.output.checkpoint, sm.output.report,
    sm.params.architecture, TrainingConfig.from_dict(sm.params.training), O2LnetTraining(**sm.params.options),
)
