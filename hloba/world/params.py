"""Physical and numerical parameters of the two-layer world (:class:`QGParams`) and what defines a
built-in reference trajectory (:class:`WorldConfig`), without torch: the workflow checks them while
it parses the Snakefile. :mod:`hloba.world.qg` (the model, with its seasonal forcing) re-exports the
parameters; :mod:`hloba.world.simulate` runs a :class:`WorldConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.2425
R_DRY = 287.04  # J kg-1 K-1, gas constant of dry air
# Where the spectral transforms are computed: "torch" (MKL on x86 CPUs, cuFFT on GPUs; fast,
# differentiable, rounded per CPU) or "pocketfft" (numpy's, compiled once for every x86-64 CPU:
# the same bits on every host; CPU only, no gradients). The built-in world steps with the second.
TRANSFORMS = ("torch", "pocketfft")
WORLD_PRECISIONS = ("float64", "float32")  # world.precision: the dtype the model steps in


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


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a built-in reference trajectory."""

    qg: QGParams = field(default_factory=QGParams)
    seed: int = 42
    spinup_days: float = 548.0
    output_interval_hours: float = 6.0
    center_latitude: float = 45.0
    initial_rms_wind_m_s: float = 5.0
    precision: str = "float64"
    transforms: str = "pocketfft"  # QGModel's: the same bits on every x86-64 host ("torch": MKL's, per vendor)
    max_chains: int = 1  # the workflow's split of the years (hloba.world.chains.split_years)

    def __post_init__(self) -> None:
        if int(self.max_chains) < 1:
            raise ValueError(f"world.max_chains={self.max_chains} must be at least 1")
        if self.precision not in WORLD_PRECISIONS:
            raise ValueError(f"world.precision={self.precision!r} is not one of {sorted(WORLD_PRECISIONS)}")
        if self.transforms not in TRANSFORMS:
            raise ValueError(f"world.transforms={self.transforms!r} is not one of {list(TRANSFORMS)}")
        steps = self.output_interval_hours * 60.0 / self.qg.dt_minutes
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise ValueError(
                f"world.output_interval_hours={self.output_interval_hours} is not a whole number of "
                f"time steps of world.qg.dt_minutes={self.qg.dt_minutes}: pick a dt that divides it"
            )
        if self.spinup_days < 0:
            raise ValueError(f"world.spinup_days={self.spinup_days} must be >= 0")

    @classmethod
    def from_dict(cls, values: dict) -> "WorldConfig":
        values = dict(values)
        values.pop("source", None)
        qg = QGParams.from_dict(values.pop("qg", {}))
        return cls(qg=qg, **values)

    @property
    def steps_per_output(self) -> int:
        return round(self.output_interval_hours * 60.0 / self.qg.dt_minutes)
