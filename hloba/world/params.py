"""Physical and numerical parameters of the two-layer world, and its seasonal forcing.

:mod:`hloba.world.qg` (the model) re-exports everything here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.2425
R_DRY = 287.04  # J kg-1 K-1, gas constant of dry air


@dataclass(frozen=True)
class QGParams:
    """Physical and numerical parameters of the two-layer world (SI units unless named)."""

    nx: int = 64
    ny: int = 64
    domain_length_m: float = 1.0e7
    f0: float = 1.0e-4
    beta: float = 1.5e-11
    deformation_radius_m: float = 5.5e5
    shear_m_s: float = 7.0
    shear_seasonal_amplitude: float = 0.15
    shear_peak_day_of_year: float = 15.0
    lower_mean_wind_m_s: float = 0.0
    drag_timescale_days: float = 2.0
    hyperdiffusion_timescale_hours: float = 3.0
    hyperdiffusion_order: int = 8
    dt_minutes: float = 30.0
    upper_level_hpa: float = 250.0
    lower_level_hpa: float = 750.0
    humidity_south_kg_kg: float = 16.0e-3
    humidity_north_kg_kg: float = 2.0e-3
    humidity_relaxation_days: float = 5.0
    condensation_timescale_hours: float = 3.0
    saturation_deficit_kg_kg: float = 1.5e-3
    saturation_sensitivity_kg_kg_per_k: float = 0.5e-3

    def __post_init__(self) -> None:
        for name in ("nx", "ny"):
            if getattr(self, name) < 8:
                raise ValueError(f"QGParams.{name}={getattr(self, name)} is too small: use at least 8")
        positive = (
            "domain_length_m", "f0", "deformation_radius_m", "dt_minutes",
            "humidity_relaxation_days", "condensation_timescale_hours",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"QGParams.{name}={getattr(self, name)} must be > 0")
        if self.hyperdiffusion_order % 2 or self.hyperdiffusion_order < 2:
            raise ValueError(
                f"QGParams.hyperdiffusion_order={self.hyperdiffusion_order} must be an even integer >= 2"
            )

    @classmethod
    def from_dict(cls, values: dict) -> "QGParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown QG parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def dt_seconds(self) -> float:
        return self.dt_minutes * 60.0

    @property
    def dx(self) -> float:
        return self.domain_length_m / self.nx

    @property
    def dy(self) -> float:
        return self.domain_length_m / self.ny


def seasonal_shear(params: QGParams, day_of_year: torch.Tensor | float) -> torch.Tensor:
    """Imposed vertical shear U1 - U2 (m/s) on a day of year; peaks at ``shear_peak_day_of_year``."""
    doy = torch.as_tensor(day_of_year, dtype=torch.float64)
    phase = 2.0 * math.pi * (doy - params.shear_peak_day_of_year) / DAYS_PER_YEAR
    return params.shear_m_s * (1.0 + params.shear_seasonal_amplitude * torch.cos(phase))
