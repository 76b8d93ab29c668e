"""Climate diagnostics of the built-in world, shared by the tests and ``scripts/check_world_climate.py``."""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from hloba.world.qg import SECONDS_PER_DAY, QGModel

WINTER_MONTHS = (12, 1, 2)
SUMMER_MONTHS = (6, 7, 8)


def eddy_kinetic_energy(ds: xr.Dataset) -> xr.DataArray:
    """Domain-mean eddy kinetic energy (m2 s-2) per time: winds minus their zonal means."""
    u = ds["u_component_of_wind"]
    v = ds["v_component_of_wind"]
    ue = u - u.mean("longitude")
    ve = v - v.mean("longitude")
    return (0.5 * (ue**2 + ve**2)).mean(("level", "latitude", "longitude"))


def seasonal_ratio(series: xr.DataArray, high=WINTER_MONTHS, low=SUMMER_MONTHS) -> float:
    """Mean over the ``high`` months divided by the mean over the ``low`` months."""
    month = series["time"].dt.month
    return float(series.where(month.isin(high)).mean() / series.where(month.isin(low)).mean())


def max_wind_speed(ds: xr.Dataset) -> xr.DataArray:
    """Largest wind speed over the domain and levels at each time (m/s)."""
    speed = np.hypot(ds["u_component_of_wind"], ds["v_component_of_wind"])
    return speed.max(("level", "latitude", "longitude"))


def relative_change(a: float, b: float) -> float:
    return abs(b - a) / abs(a)


def error_doubling_time(
    model: QGModel,
    states: torch.Tensor,
    day_of_year: float,
    *,
    perturbation: float = 1e-6,
    days: float = 40.0,
    saturation_limit: float = 1e-2,
    generator: torch.Generator | None = None,
) -> float:
    """Error doubling time (days) of twin experiments started from ``states: (batch, 3, ny, nx)``.

    Each state is copied with a random PV perturbation of relative size ``perturbation``; the
    rms streamfunction difference, relative to the rms streamfunction, is followed daily, and its
    exponential growth rate is fitted by least squares over the days where it lies between
    ``10 * perturbation`` (past the initial adjustment of the random perturbation) and
    ``saturation_limit`` (the linear regime, well before saturation). Returns the mean over the batch.
    """
    generator = generator or torch.Generator().manual_seed(0)
    noise = torch.randn(states.shape, generator=generator, dtype=states.dtype)
    noise[:, 2] = 0.0
    scale = states[:, :2].pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    twin = states + perturbation * scale * noise / noise[:, :2].pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    steps_per_day = round(SECONDS_PER_DAY / model.params.dt_seconds)
    a, b = states.clone(), twin
    errors = []
    with torch.no_grad():
        for day in range(int(days)):
            psi_a, psi_b = model.streamfunction(a), model.streamfunction(b)
            err = (psi_a - psi_b).pow(2).mean(dim=(1, 2, 3)).sqrt() / psi_a.pow(2).mean(dim=(1, 2, 3)).sqrt()
            errors.append(err.numpy())
            both = model(torch.cat((a, b)), day_of_year + day, steps_per_day)
            a, b = both[: len(states)], both[len(states):]
    errors = np.array(errors)  # (days, batch)
    times = []
    t = np.arange(errors.shape[0], dtype=float)
    for member in range(errors.shape[1]):
        e = errors[:, member]
        sel = (e > 10.0 * perturbation) & (e < saturation_limit)
        if sel.sum() < 3:
            raise ValueError(
                f"twin {member}: fewer than 3 days with errors in the linear regime "
                f"({10 * perturbation:g}..{saturation_limit:g}) within {days:g} days: run longer"
            )
        rate = np.polyfit(t[sel], np.log(e[sel]), 1)[0]
        times.append(math.log(2.0) / rate)
    return float(np.mean(times))


def linear_explained_variance(ds: xr.Dataset, target: str) -> float:
    """R^2 of the best pointwise linear fit of channel ``target`` on all other channels.

    Anomalies about the time- and zonal-mean are used. Temperature from the thickness is an exact
    linear function of the geopotentials (R^2 = 1); humidity, advected and condensed, is not.
    """
    from hloba.channels import list_channels, stack_channels

    channels = list_channels(ds)
    names = [c.name for c in channels]
    if target not in names:
        raise KeyError(f"channel {target!r} not in {names}")
    x = stack_channels(ds, channels).astype(np.float64)
    x = x - x.mean(axis=(0, 3), keepdims=True)
    i = names.index(target)
    y = x[:, i].ravel()
    a = np.delete(x, i, axis=1).transpose(0, 2, 3, 1).reshape(y.size, -1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(1.0 - ((y - a @ coef) ** 2).mean() / y.var())
