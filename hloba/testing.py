"""Factories for tests: tiny worlds and tiny datasets with known statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hloba.variables import COORD_ATTRS, cf_attrs
from hloba.world.qg import QGParams
from hloba.world.simulate import WorldConfig


def tiny_world_config(nx: int = 16, ny: int = 16, dt_minutes: float = 120.0, spinup_days: float = 30.0, seed: int = 1) -> WorldConfig:
    """A coarse world that simulates a year in seconds (coarser physics, same code)."""
    return WorldConfig(qg=QGParams(nx=nx, ny=ny, dt_minutes=dt_minutes), spinup_days=spinup_days, seed=seed)


def synthetic_dataset(
    times: pd.DatetimeIndex, ny: int = 4, nx: int = 5, levels=(250.0, 750.0), fill=None,
) -> xr.Dataset:
    """A dataset in the reference layout; ``fill(name, shape, times)`` gives each variable's values."""
    lat = np.linspace(30.0, 60.0, ny)
    lon = np.linspace(0.0, 40.0, nx)
    fill = fill or (lambda name, shape, t: np.zeros(shape))
    data = {
        "geopotential": (("time", "level", "latitude", "longitude"), fill("geopotential", (len(times), len(levels), ny, nx), times)),
        "temperature": (("time", "latitude", "longitude"), fill("temperature", (len(times), ny, nx), times)),
    }
    ds = xr.Dataset(
        {k: xr.Variable(d, v, cf_attrs(k)) for k, (d, v) in data.items()},
        coords={
            "time": ("time", times, COORD_ATTRS["time"]),
            "level": ("level", np.asarray(levels), COORD_ATTRS["level"]),
            "latitude": ("latitude", lat, COORD_ATTRS["latitude"]),
            "longitude": ("longitude", lon, COORD_ATTRS["longitude"]),
        },
    )
    return ds
