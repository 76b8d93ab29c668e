"""The forecast-model interface: one protocol, batched states in physical units.

A forecast model advances states ``x: (batch, C, ny, nx)`` in physical units, in the channel
order of the data (:mod:`hloba.channels`), by ``n`` steps of its ``interval`` (one assimilation
cycle). ``times`` are the valid times of the members (seasonal forcing, climatology). All
implementations run on CPU or CUDA (``x.device``) and are batched over members.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd
import torch

from hloba.channels import Channel


class ForecastModelError(ValueError):
    """A forecast model does not fit the data, or produced unusable output."""


@runtime_checkable
class ForecastModel(Protocol):
    channels: list[Channel]
    interval: pd.Timedelta

    def step(self, x: torch.Tensor, times: pd.DatetimeIndex, n: int = 1) -> torch.Tensor:
        """Advance ``x: (batch, C, ny, nx)`` valid at ``times`` (one per member) by ``n`` steps."""
        ...


def as_times(times, batch: int) -> pd.DatetimeIndex:
    """One valid time per member (a single time is broadcast)."""
    if isinstance(times, str) or not hasattr(times, "__len__"):
        times = [times]
    times = pd.DatetimeIndex(times)
    if len(times) == 1 and batch > 1:
        times = times.repeat(batch)
    if len(times) != batch:
        raise ForecastModelError(f"{len(times)} valid times given for {batch} members")
    return times


def check_forecast_model(model: ForecastModel, channels: list[Channel], sample: torch.Tensor, times) -> None:
    """Fail before cycling if ``model`` does not fit the data: channels, shape, finiteness."""
    names = [c.name for c in channels]
    model_names = [c.name for c in model.channels]
    if model_names != names:
        missing = sorted(set(names) - set(model_names))
        extra = sorted(set(model_names) - set(names))
        raise ForecastModelError(
            f"forecast model channels {model_names} do not match the data channels {names}"
            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else "")
        )
    with torch.no_grad():
        out = model.step(sample, as_times(times, sample.shape[0]), 1)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(sample.shape):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ForecastModelError(
            f"forecast model returned {shape} for input {tuple(sample.shape)} (batch, channel, lat, lon): "
            "it must return the same shape"
        )
    if not torch.isfinite(out).all():
        raise ForecastModelError("forecast model returned NaN or infinite values on a reference state")
