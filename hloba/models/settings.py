"""Settings of the networks' training that the workflow checks while it parses the Snakefile, without
torch: the precision choices (``training.precision``, ``assimilation.o2lnet_precision``,
``uncertainty.network_precision``...; what each means on a device: :mod:`hloba.models.training`)
and O2Lnet's loss settings (the ``o2lnet`` section's keys that shape its loss)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PRECISIONS = ("auto", "float32", "bfloat16")


def check_precision(precision: str, key: str = "training.precision") -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{key} {precision!r} must be one of {', '.join(PRECISIONS)}")


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
