"""The reanalysis file of one year: CF-compliant netCDF4 with a ``<name>_std`` per variable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hloba import __version__
from hloba.channels import Channel, list_channels, stack_channels, unstack_channels
from hloba.grid import Grid
from hloba.variables import COORD_ATTRS, CF_ATTRS

PROVENANCE_KEYS = ("config_sha256", "autoencoder_sha256", "o2lnet_sha256", "calibration_sha256", "emulator_sha256",
                   "method", "stream_start", "spinup_days", "cold_start", "hybrid_a", "hybrid_b", "rotation")


def variable_attrs(name: str) -> dict:
    attrs = dict(CF_ATTRS.get(name, {"long_name": name.replace("_", " ")}))
    attrs["ancillary_variables"] = f"{name}_std"
    return attrs


def std_attrs(name: str) -> dict:
    base = CF_ATTRS.get(name, {})
    attrs = {"long_name": f"{base.get('long_name', name)} analysis uncertainty (standard deviation)",
             "comment": "standard deviation of decoded Monte-Carlo samples D(z_a + sigma_a eps)"}
    if "units" in base:
        attrs["units"] = base["units"]
    if "standard_name" in base:
        attrs["standard_name"] = f"{base['standard_name']} standard_error"
    return attrs


def reanalysis_dataset(mean: np.ndarray, std: np.ndarray, times, channels: list[Channel], grid: Grid,
                       latent_attrs: dict, samples: int, seed: int) -> xr.Dataset:
    """Mean and std ``(time, C, ny, nx)`` physical -> the archive's dataset."""
    data, levels = {}, None
    for variable, (dims, values, lev) in unstack_channels(mean, channels).items():
        # float64: float32 would round geopotential (~1e5 m2 s-2) by more than 1e-5 of its anomaly std
        data[variable] = (dims, values.astype(np.float64), variable_attrs(variable))
        levels = levels or lev
    for variable, (dims, values, lev) in unstack_channels(std, channels).items():
        data[f"{variable}_std"] = (dims, values.astype(np.float32), std_attrs(variable))
    coords = {"time": ("time", pd.DatetimeIndex(times), COORD_ATTRS["time"]),
              "latitude": ("latitude", np.asarray(grid.latitude), COORD_ATTRS["latitude"]),
              "longitude": ("longitude", np.asarray(grid.longitude), COORD_ATTRS["longitude"])}
    if levels:
        coords["level"] = ("level", np.asarray(levels), COORD_ATTRS["level"])
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"hloba reanalysis {pd.DatetimeIndex(times)[0].year}",
        "source": f"hloba {__version__}: HLOBA latent data assimilation",
        "hloba_version": __version__,
        "uncertainty_samples": int(samples), "uncertainty_seed": int(seed),
        **{k: latent_attrs[k] for k in PROVENANCE_KEYS if k in latent_attrs},
    }
    if grid.longitude_period is not None:
        attrs.update(longitude_periodic=1, longitude_period_degrees=grid.longitude_period)
    if grid.latitude_period is not None:
        attrs["latitude_periodic"] = 1
    return xr.Dataset(data, coords=coords, attrs=attrs)


def archive_states(path) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex, list, Grid]:
    """``(mean, std, times, channels, grid)`` of an archive file, ``(time, C, ny, nx)``."""
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    channels = [c for c in list_channels(ds) if not c.variable.endswith("_std")]
    mean = stack_channels(ds, channels)
    std_ds = ds[[f"{c.variable}_std" for c in channels]].rename({f"{c.variable}_std": c.variable for c in channels})
    std = stack_channels(std_ds, channels)
    return mean, std, pd.DatetimeIndex(ds["time"].values), channels, Grid.from_dataset(ds)
