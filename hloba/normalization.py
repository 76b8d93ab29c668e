"""Per-channel normalisation statistics and a day-of-year climatology.

Models see *standardised anomalies*: ``x_norm = (x - climatology(t)) / anomaly_std``, per channel.
Removing the climatology takes out the mean meridional gradients and the seasonal cycle (which a
translation-equivariant convolutional network cannot represent cheaply) so the latent space holds
the weather. Two streaming passes over the training years, memory at one year:

1. ``mean(channel)``, ``std(channel)`` over time, latitude and longitude, and per grid point a
   least-squares fit of a mean plus ``n_harmonics`` annual harmonics (``climatology_coefficients``);
2. ``anomaly_std(channel)``: standard deviation of the data minus that climatology.

``climatology(dayofyear, ...)`` is the fit evaluated at the middle of each day of year (1..366),
for anomaly correlation and cold starts; :func:`climatology_at` evaluates it at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
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


def fractional_day_of_year(times) -> np.ndarray:
    """Day of year counted from 0 at Jan 1 00:00, with the time of day as a fraction.

    Computed on datetime64 values (no pandas index): the streams call it for every cycle."""
    t = np.atleast_1d(np.asarray(times))
    if t.dtype.kind != "M":  # Timestamps, strings or datetimes
        t = pd.DatetimeIndex(t).to_numpy()
    t = t.astype("datetime64[ns]")
    return (t - t.astype("datetime64[Y]")) / np.timedelta64(1, "D")


def compute_normalization(
    open_years: Callable[[], Iterable[xr.Dataset]], n_harmonics: int = 3, channels: list[Channel] | None = None,
) -> xr.Dataset:
    """Normalisation and climatology; ``open_years()`` yields the training datasets (called twice)."""
    count = 0
    total = total_sq = xtx = xty = None
    grid = None
    n_years = 0
    for ds in open_years():
        if channels is None:
            channels = list_channels(ds)
        if grid is None:
            grid = ds[["latitude", "longitude"]].coords
        data = stack_channels(ds, channels).astype(np.float64)  # (time, channel, lat, lon)
        if not np.isfinite(data).all():
            raise ValueError("the training data contain NaN or infinite values: check the reference files")
        x = harmonic_design(fractional_day_of_year(ds["time"].values), n_harmonics)
        if total is None:
            total, total_sq = np.zeros(data.shape[1]), np.zeros(data.shape[1])
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
    anomaly_sq = np.zeros(len(channels))
    for ds in open_years():
        data = stack_channels(ds, channels).astype(np.float64)
        clim = np.tensordot(harmonic_design(fractional_day_of_year(ds["time"].values), n_harmonics), coef, axes=1)
        anomaly_sq += ((data - clim) ** 2).sum(axis=(0, 2, 3))
    anomaly_std = np.sqrt(anomaly_sq / count)
    if (anomaly_std <= 0).any():
        flat = [c.name for c, s in zip(channels, anomaly_std) if s <= 0]
        raise ValueError(f"channels {flat} have no variability about their climatology: drop them")
    doy = np.arange(1, 367)
    clim = np.tensordot(harmonic_design(doy - 0.5, n_harmonics), coef, axes=1)
    coords = channel_coords(channels) | dict(grid) | {"dayofyear": ("dayofyear", doy)}
    return xr.Dataset(
        {
            "mean": ("channel", mean, {"long_name": "per-channel mean over the training years"}),
            "std": ("channel", std, {"long_name": "per-channel standard deviation over the training years"}),
            "anomaly_std": (
                "channel", anomaly_std,
                {"long_name": "per-channel standard deviation of anomalies about the climatology"},
            ),
            "climatology_coefficients": (
                ("harmonic", "channel", "latitude", "longitude"), coef,
                {"long_name": "least-squares coefficients: mean, cos(2 pi k d / year) k=1..n, sin(...) k=1..n"},
            ),
            "climatology": (
                ("dayofyear", "channel", "latitude", "longitude"), clim.astype(np.float32),
                {"long_name": f"day-of-year climatology: mean + {n_harmonics} annual harmonics per grid point"},
            ),
        },
        coords=coords,
        attrs={
            "hloba_version": __version__, "n_training_years": n_years, "n_harmonics": n_harmonics,
            "days_per_year": DAYS_PER_YEAR,
        },
    )


def climatology_at(normalization: xr.Dataset, times) -> np.ndarray:
    """Climatology ``(time, channel, lat, lon)`` at ``times`` (fractional day of year)."""
    coef = normalization["climatology_coefficients"].values
    design = harmonic_design(fractional_day_of_year(times), int(normalization.attrs["n_harmonics"]))
    return np.tensordot(design, coef, axes=1)


def write_normalization(inputs: list, output, n_harmonics: int = 3) -> xr.Dataset:
    """Compute normalisation from reference files (opened one at a time) and write it atomically."""
    from hloba.io import write_netcdf

    def open_years():
        for path in inputs:
            log.info("normalization: reading %s", path)
            with xr.open_dataset(path) as ds:
                yield ds.load()

    norm = compute_normalization(open_years, n_harmonics=n_harmonics)
    write_netcdf(norm, output)
    log.info("normalization: %s", ", ".join(
        f"{c}: mean {m:.4g}, std {s:.3g}, anomaly std {a:.3g}"
        for c, m, s, a in zip(norm["channel"].values, norm["mean"].values, norm["std"].values,
                              norm["anomaly_std"].values)))
    return norm


class Normalizer:
    """Per-channel standardisation about a harmonic day-of-year climatology."""

    def __init__(self, anomaly_std: torch.Tensor, coefficients: torch.Tensor, n_harmonics: int) -> None:
        self.anomaly_std = anomaly_std.double()  # (C,)
        self.coefficients = coefficients.double()  # (1 + 2 n_harmonics, C, ny, nx)
        self.n_harmonics = int(n_harmonics)
        self._last: tuple | None = None  # (times, climatology) of the last call

    @classmethod
    def from_dataset(cls, norm: xr.Dataset) -> "Normalizer":
        return cls(
            torch.as_tensor(norm["anomaly_std"].values), torch.as_tensor(norm["climatology_coefficients"].values),
            int(norm.attrs["n_harmonics"]),
        )

    @classmethod
    def from_state(cls, state: dict) -> "Normalizer":
        return cls(state["anomaly_std"], state["coefficients"], int(state["n_harmonics"]))

    def state(self) -> dict:
        return {"anomaly_std": self.anomaly_std, "coefficients": self.coefficients, "n_harmonics": self.n_harmonics}

    def climatology(self, times) -> torch.Tensor:
        """``(time, C, ny, nx)`` climatology at ``times`` (a new tensor at each call)."""
        return self._shared_climatology(times).clone()

    def _shared_climatology(self, times) -> torch.Tensor:
        """The climatology at ``times``, the last call's kept and returned as it is (callers must not
        modify it): a stream standardises its background and destandardises its analysis at the
        same time, once each cycle."""
        index = pd.DatetimeIndex(np.atleast_1d(times))
        stamps = (str(index.dtype), index.asi8)  # asi8 counts in the index's unit
        last = self._last  # read once: dask threads may share the normaliser
        if last is not None and last[0][0] == stamps[0] and np.array_equal(last[0][1], stamps[1]):
            return last[1]
        design = torch.as_tensor(harmonic_design(fractional_day_of_year(index), self.n_harmonics))
        clim = torch.tensordot(design, self.coefficients, dims=1)
        self._last = (stamps, clim)
        return clim

    def standardize(self, x: torch.Tensor, times) -> torch.Tensor:
        clim = self._shared_climatology(times).to(x.device, torch.float64)  # read only
        std = self.anomaly_std.to(x.device)[None, :, None, None]
        return ((x.double() - clim) / std).to(torch.float32)

    def destandardize(self, x_norm: torch.Tensor, times) -> torch.Tensor:
        clim = self._shared_climatology(times).to(x_norm.device, torch.float64)  # read only
        std = self.anomaly_std.to(x_norm.device)[None, :, None, None]
        return x_norm.double() * std + clim
