"""Forecast models behind one protocol, and the one place that builds them from config."""

from __future__ import annotations

import pandas as pd

from hloba.channels import Channel
from hloba.forecast.base import ForecastModel, ForecastModelError, check_forecast_model
from hloba.world.qg import QGParams

KINDS = ("qg", "emulator", "torchscript", "python")

__all__ = ["KINDS", "ForecastModel", "ForecastModelError", "build_forecast_model", "check_forecast_model"]


def build_forecast_model(
    spec: dict, channels: list[Channel], interval: pd.Timedelta, *, world: dict | None = None,
    emulator_path=None,
) -> ForecastModel:
    """Build the forecast model of ``spec`` (the config's ``forecast`` section).

    ``world`` (the config's ``world.qg`` section) is needed by ``qg``; ``emulator_path`` by
    ``emulator``; ``torchscript`` reads ``spec['path']``; ``python`` ``spec['callable']``.
    """
    kind = spec.get("model")
    if kind not in KINDS:
        raise ForecastModelError(f"forecast.model {kind!r} is not one of {KINDS}")
    declared = spec.get("channels")
    if declared:
        by_name = {c.name: c for c in channels}
        model_channels = [by_name.get(name, Channel(name)) for name in declared]
    else:
        model_channels = list(channels)
    if kind == "qg":
        from hloba.forecast.qg import QGForecast

        return QGForecast(
            QGParams.from_dict(world or {}), interval, spec.get("perturb", {}),
            float(spec.get("stochastic_amplitude", 0.0)), int(spec.get("seed", 0)),
        )
    if kind == "torchscript":
        from hloba.forecast.external import TorchScriptForecast

        return TorchScriptForecast(spec.get("path", ""), model_channels, interval)
    if kind == "python":
        from hloba.forecast.external import PythonForecast

        return PythonForecast(spec.get("callable", ""), model_channels, interval)
    from hloba.forecast.emulator import load_emulator

    if emulator_path is None:
        raise ForecastModelError("forecast.model 'emulator' needs the trained emulator (rule train_emulator)")
    return load_emulator(emulator_path)
