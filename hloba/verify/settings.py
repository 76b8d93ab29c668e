"""Typed settings of the method comparison (the config's ``comparison`` section), with their only
defaults, and the compared variants of the methods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hloba.assim.methods import NAMES

VARIANTS = {"hloba_norotation": ("hloba", {"rotation": False})}  # name -> (method, settings changed)
COMPARABLE = NAMES + tuple(VARIANTS)


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

    @staticmethod
    def base_method(name: str) -> str:
        """The assimilation method a compared name runs (``hloba_norotation``: ``hloba``)."""
        return VARIANTS.get(name, (name, {}))[0]
