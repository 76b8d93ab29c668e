"""Typed settings of the method comparison (the config's ``comparison`` section), with their only
defaults, and the compared variants of the methods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from hloba.assim.catalog import METHODS, NAMES
from hloba.assim.settings import StreamConfig, StreamInputs

# name -> (method, settings changed): the ablations of HLOBA the comparison can show side by side
VARIANTS = {
    "hloba_norotation": ("hloba", {"rotation": False}),
    "hloba_posterior": ("hloba", {"update": "posterior"}),  # the paper's update
    "hloba_likelihood": ("hloba", {"update": "likelihood"}),
    "hloba_ocal": ("hloba", {"calibrate_observation_variance": True}),  # O2Lnet's variance calibrated per band
    "hloba_forecastvar": ("hloba", {"background_variance": "forecast"}),  # the calibration's static variance
    "hloba_cyclingvar": ("hloba", {"background_variance": "cycling"}),  # refitted to cycling errors
    "hloba_fullincrement": ("hloba", {"decoded_increment": "full"}),  # the paper's analysis D(z_a)
    "hloba_weightedincrement": ("hloba", {"decoded_increment": "weighted"}),  # per-channel weights
    # with weighted increments, the stream cycling from D(E(x_w)) or from x_w itself
    "hloba_projectedstate": ("hloba", {"decoded_increment": "weighted", "weighted_state": "projected"}),
    "hloba_combinedstate": ("hloba", {"decoded_increment": "weighted", "weighted_state": "combined"}),
    "hloba_incrementalstate": ("hloba", {"decoded_increment": "weighted", "weighted_state": "incremental"}),
    "hloba_blendedstate": ("hloba", {"decoded_increment": "weighted", "weighted_state": "blended"}),
    # what the window's next-cycle observations are checked against: M(x_b), x_b, or x_b carried on
    "hloba_forecastlead": ("hloba", {"lead_guess": "forecast"}),
    "hloba_persistencelead": ("hloba", {"lead_guess": "persistence"}),
    "hloba_extrapolatedlead": ("hloba", {"lead_guess": "extrapolated"}),
    # O2Lnet as trained, not refined through the update (o2lnet.refine), with the tuning made for it
    "hloba_unrefined": ("hloba", {}),
    # the filter's analyses: no smoother (assimilation.smoother_hours), the same streams and tuning
    "hloba_filter": ("hloba", {"smoother_hours": None}),
}
# settings that change what is made of a stream's analyses, not the stream: a variant changing only
# them reads the shared tuning (whose gains it leaves unused)
AFTER_STREAM = ("smoother_hours",)
UNREFINED = "hloba_unrefined"
COMPARABLE = NAMES + tuple(VARIANTS)


def variant(name: str) -> tuple[str, dict]:
    """``(method, settings changed)`` of a compared name (a method: itself, nothing changed)."""
    if name not in COMPARABLE:
        raise ValueError(f"comparison.methods: {name!r} is not one of {COMPARABLE}")
    return VARIANTS.get(name, (name, {}))


def method_settings(name: str, cfg: StreamConfig) -> StreamConfig:
    """The stream settings of a compared name (``hloba_norotation``: hloba without rotation)."""
    method, extra = variant(name)
    return cfg.with_(method=method, **extra)


def variant_tuning(results, name: str) -> str:
    """The tuning file of a compared variant with tuning streams of its own (rule tune_variant's
    output; ``name`` ``"{variant}"`` gives the rule's pattern)."""
    return str(Path(results) / "comparison" / "tuning" / f"{name}.nc")


def trained_o2lnet(results) -> str:
    """The trained O2Lnet's file when ``o2lnet.refine`` refines it (rule train_o2lnet's output; the
    refined one is ``models/o2lnet.pt``)."""
    return str(Path(results) / "models" / "o2lnet_base.pt")


def trained_o2lnet_tuning(results) -> str:
    """The tuning made for :func:`trained_o2lnet` (rule tune_stream_base's output)."""
    return str(Path(results) / "ensemble" / "stream_tuning_base.nc")


def variant_inputs(results, name: str, inputs: StreamInputs, cfg: StreamConfig) -> StreamInputs:
    """A compared name's stream inputs from a finished pipeline's ``results`` (scripts), as rule
    compare_method gives them: a variant that changes a tuned setting reads its own tuning (rule
    tune_variant's), ``hloba_unrefined`` the trained O2Lnet and the tuning made for it where the
    results hold them (``o2lnet.refine`` on: rules tune_stream_base, refine_o2lnet)."""
    r = Path(results)
    if own_tuning(name, cfg):
        return replace(inputs, tuning=variant_tuning(r, name))
    if name == UNREFINED and Path(trained_o2lnet(r)).exists():
        return replace(inputs, o2lnet=trained_o2lnet(r), tuning=trained_o2lnet_tuning(r))
    return inputs


def own_tuning(name: str, cfg: StreamConfig) -> bool:
    """Whether a compared variant of a tuned method needs tuning streams of its own: it changes a
    setting of ``cfg`` (the shared tuning of rule tune_stream was run with ``cfg``'s)."""
    method, extra = variant(name)
    return METHODS[method].tuned and any(getattr(cfg, k) != v for k, v in extra.items() if k not in AFTER_STREAM)


@dataclass(frozen=True)
class ComparisonSettings:
    methods: tuple[str, ...] = ()
    year: int | None = None  # a reanalysis year (None: the last)
    spinup_days: float = 10.0
    days: float = 20.0
    nmc: dict = field(default_factory=dict)  # rule oi_covariance's settings

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = [m for m in self.methods if m not in COMPARABLE]
        if unknown:
            raise ValueError(f"comparison.methods: {unknown} are not among {COMPARABLE}")

    @classmethod
    def from_config(cls, config: Mapping) -> "ComparisonSettings":
        return cls(**(config.get("comparison") or {}))

    def compared_year(self, reanalysis_years) -> int:
        """The year the methods are compared on: ``year``, else the last reanalysis year."""
        return self.year or list(reanalysis_years)[-1]

    @staticmethod
    def base_method(name: str) -> str:
        """The assimilation method a compared name runs (``hloba_norotation``: ``hloba``)."""
        return variant(name)[0]
