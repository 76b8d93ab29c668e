"""Typed settings of decoding (the config's ``uncertainty`` and ``dask`` sections), with their
only defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class UncertaintySettings:
    """Monte-Carlo samples of the decoded uncertainty; ``calibrate``: per-channel std factors from
    the calibration year (rule calibrate_uncertainty)."""

    samples: int = 16
    seed: int = 0
    calibrate: bool = True

    @classmethod
    def from_config(cls, config: Mapping) -> "UncertaintySettings":
        return cls(**(config.get("uncertainty") or {}))

    def sampling(self) -> dict:
        """What the decoded std depends on (``samples``, ``seed``): decode's and calibration's params."""
        return {"samples": self.samples, "seed": self.seed}


@dataclass(frozen=True)
class DecodeSettings:
    """Where and in what pieces decoding runs; the archive is the same for any of them."""

    time_chunk: int = 40
    workers: int | None = None  # local worker processes (None: the rule's threads)
    scheduler_address: str | None = None  # an existing dask scheduler

    @classmethod
    def from_config(cls, config: Mapping) -> "DecodeSettings":
        return cls(**(config.get("dask") or {}))

    def to_dict(self) -> dict:
        return asdict(self)
