"""Typed settings of decoding (the config's ``uncertainty`` and ``dask`` sections), with their
only defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


MODELS = ("network", "factor")
DRAW_BACKGROUND = ("auto", True, False)


@dataclass(frozen=True)
class UncertaintySettings:
    """Monte-Carlo samples of the decoded uncertainty; ``calibrate``: the archive's std calibrated
    on the calibration year (rule calibrate_uncertainty) by ``model``: ``network`` (the std network
    of :mod:`hloba.archive.std_model`) or ``factor`` (a per-channel factor on the Monte-Carlo std).
    The calibration stream runs ``calibration_days`` of the year, every ``calibration_every``-th
    cycle decoded; the network (``network_layers`` 3 x 3 convolutions, ``network_hidden``
    channels) trains up to ``network_epochs``, ``network_members`` times from other seeds (the
    std from the mean of their log variances), its steps in ``network_precision`` (as
    ``training.precision``), keeping a moving average of its weights (``network_ema``).
    ``draw_background``: where the analysis weighs its decoded increment (``weighted_state:
    combined`` or ``blended``), the draws perturb the background as well as the analysis, so that a channel of
    low weight keeps the background's uncertainty (off: the background is taken as exact); ``auto``
    draws it where the archive's std is the draws' alone (:attr:`draws_background`)."""

    samples: int = 16
    seed: int = 0
    draw_background: bool | str = "auto"
    calibrate: bool = True
    model: str = "network"
    calibration_days: float = 365.0
    calibration_every: int = 4
    network_epochs: int = 30
    network_hidden: int = 32
    network_layers: int = 4
    network_members: int = 2
    network_ema: float = 0.99
    network_precision: str = "auto"

    def __post_init__(self) -> None:
        from hloba.models.settings import check_precision

        check_precision(self.network_precision, "uncertainty.network_precision")
        if not 0.0 <= self.network_ema < 1.0:
            raise ValueError(f"uncertainty.network_ema is {self.network_ema}: give a value in [0, 1) "
                             "(0: no averaging)")
        if self.network_members < 1:
            raise ValueError(f"uncertainty.network_members is {self.network_members}: give at least 1")
        if self.draw_background not in DRAW_BACKGROUND:
            raise ValueError(f"uncertainty.draw_background is {self.draw_background!r}: use auto, true or false")
        if self.model not in MODELS:
            raise ValueError(f"uncertainty.model is {self.model!r}: use one of {', '.join(MODELS)}")
        if self.model == "network" and self.calibrate and self.samples < 2:
            raise ValueError("uncertainty.model: network reads the Monte-Carlo std: set uncertainty.samples >= 2 "
                             "or uncertainty.calibrate: false")

    @classmethod
    def from_config(cls, config: Mapping) -> "UncertaintySettings":
        return cls(**(config.get("uncertainty") or {}))

    def calibration(self) -> dict:
        """What rule calibrate_uncertainty's outputs depend on besides the sampling."""
        return {"days": self.calibration_days, "every": self.calibration_every,
                "network": {"epochs": self.network_epochs, "hidden": self.network_hidden,
                            "layers": self.network_layers, "members": self.network_members,
                            "ema": self.network_ema,
                            "precision": self.network_precision}}

    @property
    def draws_background(self) -> bool:
        """Whether the draws perturb the background: ``draw_background``, where ``auto`` is on
        exactly where the archive's std is the Monte-Carlo std alone (``model: factor`` scales it,
        ``calibrate: false`` keeps it), so that a channel of weight 0, whose draws are all its
        background, does not get a std of zero (or, scaled by ``factor``, of float32 rounding
        noise times about 1e6). The std network reads the background variance
        itself: there drawing it was neutral and cost 1.65 times the decoding (docs/streams.md)."""
        if self.draw_background == "auto":
            return self.model == "factor" or not self.calibrate
        return bool(self.draw_background)

    def sampling(self) -> dict:
        """What the decoded std depends on (``samples``, ``seed``, ``draw_background`` when the
        draws perturb the background, so that archives made before it existed stay up to date):
        decode's and calibration's params."""
        drawn = {"draw_background": True} if self.draws_background else {}
        return {"samples": self.samples, "seed": self.seed, **drawn}


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
