"""User-supplied forecast models: a TorchScript file, or a Python callable named in config.

TorchScript: ``module(x) -> x_next`` on ``(batch, C, ny, nx)`` physical units, one cycle step;
it is applied ``n`` times. Python: ``"package.module:function"``; the function is called as
``function(x, times, n) -> x`` (``times``: a pandas DatetimeIndex, one valid time per member).
Either declares the channels it predicts through config (``channels``: list of channel names),
so that a mismatch with the data is caught before cycling.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from hloba.channels import Channel
from hloba.forecast.base import ForecastModelError, as_times


class TorchScriptForecast:
    def __init__(self, path, channels: list[Channel], interval: pd.Timedelta) -> None:
        path = Path(path)
        if not path.exists():
            raise ForecastModelError(f"forecast.path {path} does not exist: give the TorchScript file of your model")
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as err:
            raise ForecastModelError(f"forecast.path {path} is not a TorchScript module ({err.__class__.__name__}); "
                                     "save it with torch.jit.script(model).save(path)") from None
        self.channels, self.interval = channels, pd.Timedelta(interval)

    def step(self, x: torch.Tensor, times, n: int = 1) -> torch.Tensor:
        as_times(times, x.shape[0])
        self.module.to(x.device)
        for _ in range(n):
            x = self.module(x)
        return x


def import_callable(spec: str) -> Callable:
    """``package.module:function`` -> the function; errors name the missing part."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ForecastModelError(f"forecast.callable {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ForecastModelError(f"forecast.callable {spec!r}: cannot import {module_name!r} ({err})") from None
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise ForecastModelError(f"forecast.callable {spec!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(fn):
        raise ForecastModelError(f"forecast.callable {spec!r} is not callable")
    return fn


class PythonForecast:
    def __init__(self, spec: str, channels: list[Channel], interval: pd.Timedelta) -> None:
        self.fn = import_callable(spec)
        self.channels, self.interval = channels, pd.Timedelta(interval)

    def step(self, x: torch.Tensor, times, n: int = 1) -> torch.Tensor:
        return self.fn(x, as_times(times, x.shape[0]), n)
