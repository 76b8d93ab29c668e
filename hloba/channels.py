"""Channels: the (variable, level) pairs that models see, stacked as ``(time, channel, lat, lon)``.

A 3-D variable contributes one channel per level (``geopotential_250``); a 2-D variable one
channel named after itself (``temperature``). The order is the order of the dataset's data
variables and, within a variable, of its levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

SPATIAL_DIMS = ("latitude", "longitude")


@dataclass(frozen=True)
class Channel:
    variable: str
    level: float | None = None

    @property
    def name(self) -> str:
        if self.level is None:
            return self.variable
        level = int(self.level) if float(self.level).is_integer() else self.level
        return f"{self.variable}_{level}"


def list_channels(ds: xr.Dataset) -> list[Channel]:
    """Channels of every gridded data variable of ``ds`` (those with latitude and longitude dims)."""
    channels = []
    for name, var in ds.data_vars.items():
        if not set(SPATIAL_DIMS) <= set(var.dims):
            continue
        if "level" in var.dims:
            channels += [Channel(str(name), float(lev)) for lev in var["level"].values]
        else:
            channels.append(Channel(str(name)))
    return channels


def stack_channels(ds: xr.Dataset, channels: list[Channel]) -> np.ndarray:
    """Array ``(time, channel, latitude, longitude)`` of ``ds`` in the order of ``channels``."""
    arrays = []
    for ch in channels:
        if ch.variable not in ds:
            raise KeyError(f"variable {ch.variable!r} is missing from the dataset; it has {sorted(ds.data_vars)}")
        var = ds[ch.variable]
        if ch.level is not None:
            if "level" not in var.dims or ch.level not in var["level"].values:
                raise KeyError(f"level {ch.level} of {ch.variable!r} is missing from the dataset")
            var = var.sel(level=ch.level)
        arrays.append(var.transpose("time", *SPATIAL_DIMS).values)
    return np.stack(arrays, axis=1)


def channel_coords(channels: list[Channel]) -> dict[str, xr.Variable]:
    """Coordinates that describe a ``channel`` dimension (name, variable, level)."""
    return {
        "channel": xr.Variable("channel", [c.name for c in channels]),
        "channel_variable": xr.Variable("channel", [c.variable for c in channels]),
        "channel_level": xr.Variable(
            "channel", np.array([np.nan if c.level is None else c.level for c in channels]),
            {"units": "hPa", "long_name": "pressure level of the channel (NaN: single-level)"},
        ),
    }


def channels_from_coords(ds: xr.Dataset) -> list[Channel]:
    """Inverse of :func:`channel_coords`."""
    return [Channel(str(v), None if np.isnan(lev) else float(lev))
            for v, lev in zip(ds["channel_variable"].values, ds["channel_level"].values)]


def unstack_channels(x: np.ndarray, channels: list[Channel]) -> dict[str, tuple[tuple[str, ...], np.ndarray, list]]:
    """Inverse of :func:`stack_channels`: ``(time, channel, lat, lon)`` -> per variable
    ``(dims, array, levels)``; 3-D variables get a ``level`` dimension in channel order."""
    out: dict[str, tuple] = {}
    order: dict[str, list[int]] = {}
    for i, ch in enumerate(channels):
        order.setdefault(ch.variable, []).append(i)
    for variable, idx in order.items():
        levels = [channels[i].level for i in idx]
        if levels == [None]:
            out[variable] = (("time", *SPATIAL_DIMS), x[:, idx[0]], [])
        elif None in levels:
            raise ValueError(f"variable {variable!r} has both single-level and level channels")
        else:
            out[variable] = (("time", "level", *SPATIAL_DIMS), x[:, idx], levels)
    return out
