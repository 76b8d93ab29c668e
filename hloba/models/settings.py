"""Settings of the networks' training that the workflow checks and splits while it parses the
Snakefile, without torch: the precision choices (``training.precision``,
``assimilation.o2lnet_precision``, ``uncertainty.network_precision``...; what each means on a
device: :mod:`hloba.models.training`), the training loop's settings (:class:`TrainingConfig`, run by
:func:`hloba.models.training.fit`) and O2Lnet's loss settings (the ``o2lnet`` section's keys that
shape its loss)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PRECISIONS = ("auto", "float32", "bfloat16")


def check_precision(precision: str, key: str = "training.precision") -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{key} {precision!r} must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    samples_per_epoch: int = 4096
    patience: int = 6
    max_minutes: float | None = None
    # the learning rate rises linearly from 0 over this many epochs' steps before its cosine decay
    # (0: none; config.yaml's O2Lnet takes 1, then trains at 0.001, better than 0.0005 without, and
    # at 0.002, which diverges without: docs/latent-space.md, "O2Lnet's schedule")
    warmup_epochs: float = 0.0
    # validate and keep an exponential moving average of the weights with this decay per step
    # (0: the weights themselves; docs/latent-space.md, "O2Lnet's schedule")
    average_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    # the training step's convolutions and matrix products: float32, bfloat16 (autocast: weights,
    # optimiser and losses stay float32), or auto (bfloat16 where it pays: bfloat16_pays)
    precision: str = "float32"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs {self.warmup_epochs} must be >= 0 and less than epochs ({self.epochs})")
        if not 0 <= self.average_decay < 1:
            raise ValueError(f"average_decay {self.average_decay} must be in [0, 1): 0 keeps the weights themselves, "
                             "0.998 averages them over about 500 steps")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


# the config's ``training`` section: every network's; a network's own section (autoencoder, o2lnet,
# emulator) holds the rest of the loop's settings, which rule train_* passes from it
SHARED_TRAINING_KEYS = ("device", "seed", "precision")
NETWORK_TRAINING_KEYS = tuple(f.name for f in fields(TrainingConfig) if f.name not in SHARED_TRAINING_KEYS)


THIN_BY = ("value", "station")


@dataclass(frozen=True)
class O2LnetTraining:
    decoder_weight: float = 1.0
    min_keep: float = 0.7  # 0.3 before 2026-12-05: docs/latent-space.md, "O2Lnet's networks in training"
    network_dropout: float = 0.1
    channel_weights: dict = field(default_factory=dict)  # channel or variable name -> weight in the decoder term
    thin_by: str = "station"  # a grid cell of a network, the whole window (value: each observed value on its own)

    def __post_init__(self):
        if self.thin_by not in THIN_BY:
            raise ValueError(f"o2lnet.thin_by={self.thin_by!r}: use one of {THIN_BY}")

    def to_dict(self) -> dict:
        return asdict(self)


# the keys of the config's ``o2lnet`` section that shape the loss (the rest: architecture, training)
LOSS_KEYS = tuple(f.name for f in fields(O2LnetTraining))
