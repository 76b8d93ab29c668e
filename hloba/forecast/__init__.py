"""Forecast models behind one protocol, and the one place that builds them from config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from hloba.channels import Channel
from hloba.forecast.base import ForecastModel, ForecastModelError, check_forecast_model
from hloba.world.qg import QGParams

KINDS = ("qg", "emulator", "torchscript", "python")

__all__ = ["KINDS", "ForecastModel", "ForecastModelError", "ForecastSpec", "build_forecast_model",
           "check_forecast_model"]


@dataclass(frozen=True)
class ForecastSpec:
    """A forecast model as the rules name it, in one record: the config's ``forecast`` section,
    the data's step in hours, the built-in world's dynamics (``world.qg``, used by ``qg`` only) and
    the trained emulator's file (``emulator`` only)."""

    settings: dict
    interval_hours: float
    world_qg: dict | None = None
    emulator: str | None = None

    @property
    def interval(self) -> pd.Timedelta:
        return pd.Timedelta(hours=self.interval_hours)

    def build(self, channels: list[Channel]) -> ForecastModel:
        return build_forecast_model(self.settings, channels, self.interval, world=self.world_qg,
                                    emulator_path=self.emulator)

    def identity(self) -> dict:
        """What the forecasts depend on besides files (a stream's resume fingerprint)."""
        return {k: v for k, v in asdict(self).items() if k != "emulator"}


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
