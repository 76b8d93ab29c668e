"""Per-channel normalisation statistics and a day-of-year climatology.

Streaming over yearly files, so memory stays at one year:

- ``mean(channel)``, ``std(channel)``: over time, latitude and longitude of the training years;
- ``climatology(dayofyear, channel, latitude, longitude)``: per grid point, a least-squares fit
  of a mean plus ``n_harmonics`` annual harmonics, evaluated at the middle of each day of year
  (1..366). Smooth even from a few years, and used for anomaly correlation and cold starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from hloba import __version__
from hloba.channels import Channel, channel_coords, list_channels, stack_channels

log = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.2425


def harmonic_design(day_of_year: np.ndarray, n_harmonics: int) -> np.ndarray:
    """Design matrix ``(n, 1 + 2 n_harmonics)``: 1, cos(2 pi k d / year), sin(2 pi k d / year)."""
    d = np.asarray(day_of_year, dtype=float)[:, None]
    k = np.arange(1, n_harmonics + 1)[None, :]
    phase = 2.0 * np.pi * k * d / DAYS_PER_YEAR
    return np.concatenate([np.ones_like(d), np.cos(phase), np.sin(phase)], axis=1)


def fractional_day_of_year(times: pd.DatetimeIndex) -> np.ndarray:
    times = pd.DatetimeIndex(times)
    return (times.day_of_year - 1 + (times.hour + times.minute / 60.0) / 24.0).to_numpy(float)


def compute_normalization(
    datasets: Iterable[xr.Dataset], n_harmonics: int = 3, channels: list[Channel] | None = None,
) -> xr.Dataset:
    """Normalisation and climatology from an iterable of (yearly) datasets."""
    count = 0
    total = total_sq = xtx = xty = None
    grid = None
    n_years = 0
    for ds in datasets:
        if channels is None:
            channels = list_channels(ds)
        if grid is None:
            grid = ds[["latitude", "longitude"]].coords
        data = stack_channels(ds, channels).astype(np.float64)  # (time, channel, lat, lon)
        if not np.isfinite(data).all():
            raise ValueError("the training data contain NaN or infinite values: check the reference files")
        x = harmonic_design(fractional_day_of_year(ds["time"].values), n_harmonics)
        if total is None:
            total = np.zeros(data.shape[1])
            total_sq = np.zeros(data.shape[1])
            xtx = np.zeros((x.shape[1], x.shape[1]))
            xty = np.zeros((x.shape[1],) + data.shape[1:])
        total += data.sum(axis=(0, 2, 3))
        total_sq += (data**2).sum(axis=(0, 2, 3))
        count += data.shape[0] * data.shape[2] * data.shape[3]
        xtx += x.T @ x
        xty += np.tensordot(x.T, data, axes=1)
        n_years += 1
    if total is None:
        raise ValueError("no training data: give at least one training year")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    if (std <= 0).any():
        flat = [c.name for c, s in zip(channels, std) if s <= 0]
        raise ValueError(f"channels {flat} are constant over the training years: drop them")
    coef = np.linalg.solve(xtx, xty.reshape(xty.shape[0], -1)).reshape(xty.shape)
    doy = np.arange(1, 367)
    clim = np.tensordot(harmonic_design(doy - 0.5, n_harmonics), coef, axes=1)
    coords = channel_coords(channels) | dict(grid) | {"dayofyear": ("dayofyear", doy)}
    return xr.Dataset(
        {
            "mean": ("channel", mean, {"long_name": "per-channel mean over the training years"}),
            "std": ("channel", std, {"long_name": "per-channel standard deviation over the training years"}),
            "climatology": (
                ("dayofyear", "channel", "latitude", "longitude"), clim.astype(np.float32),
                {"long_name": f"day-of-year climatology: mean + {n_harmonics} annual harmonics per grid point"},
            ),
        },
        coords=coords,
        attrs={"hloba_version": __version__, "n_training_years": n_years, "n_harmonics": n_harmonics},
    )


def climatology_at(normalization: xr.Dataset, times: pd.DatetimeIndex) -> np.ndarray:
    """Climatology ``(time, channel, lat, lon)`` on the days of ``times``."""
    doy = pd.DatetimeIndex(times).day_of_year.to_numpy()
    return normalization["climatology"].sel(dayofyear=xr.DataArray(doy, dims="time")).values


def write_normalization(inputs: list, output, n_harmonics: int = 3) -> xr.Dataset:
    """Compute normalisation from reference files (opened one at a time) and write it atomically."""
    from hloba.io import write_netcdf

    def datasets():
        for path in inputs:
            log.info("normalization: reading %s", path)
            with xr.open_dataset(path) as ds:
                yield ds.load()

    norm = compute_normalization(datasets(), n_harmonics=n_harmonics)
    write_netcdf(norm, output)
    log.info("normalization: %s", ", ".join(f"{c}: {m:.4g}+-{s:.3g}" for c, m, s in zip(
        norm["channel"].values, norm["mean"].values, norm["std"].values)))
    return norm
