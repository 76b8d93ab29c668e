"""The built-in atmosphere as an *imperfect* forecast model.

Model error comes from perturbed physical parameters (``perturb``: any :class:`QGParams` field,
e.g. drag, deformation radius, shear), and optional stochastic tendency perturbations: after each
cycle step a random, large-scale PV perturbation of relative size ``stochastic_amplitude`` (drawn
from the model's own generator, so reruns are identical). States go in and out in physical units
through the world's presentation (geopotential and humidity determine the state).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from hloba.channels import Channel
from hloba.forecast.base import ForecastModelError, as_times
from hloba.world.atmosphere import mid_level_hpa, physical_fields, state_from_fields
from hloba.world.qg import SECONDS_PER_DAY, QGModel, QGParams
from hloba.world.simulate import day_of_year


def world_channels(params: QGParams) -> list[Channel]:
    """The channels of the world's reference files, in file order."""
    up, low = params.upper_level_hpa, params.lower_level_hpa
    out = []
    for name in ("geopotential", "u_component_of_wind", "v_component_of_wind"):
        out += [Channel(name, up), Channel(name, low)]
    return out + [Channel("temperature"), Channel("specific_humidity")]


class QGForecast(torch.nn.Module):
    def __init__(self, params: QGParams, interval: pd.Timedelta, perturb: dict | None = None,
                 stochastic_amplitude: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.truth_params = params
        self.params = replace(params, **(perturb or {}))
        self.model = QGModel(self.params)
        self.interval = pd.Timedelta(interval)
        steps = self.interval.total_seconds() / self.params.dt_seconds
        if abs(steps - round(steps)) > 1e-9:
            raise ForecastModelError(
                f"forecast interval {self.interval} is not a whole number of QG time steps ({self.params.dt_minutes} min)"
            )
        self.steps_per_interval = round(steps)
        self.channels = world_channels(params)
        self.stochastic_amplitude = stochastic_amplitude
        self.generator = torch.Generator().manual_seed(seed)
        self.mid_level = mid_level_hpa(params)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Geopotential (both levels) and humidity: the fields that determine the state."""
        return x[:, 0:2], x[:, 7]

    def _stack(self, fields: dict[str, torch.Tensor]) -> torch.Tensor:
        g, u, v = fields["geopotential"], fields["u_component_of_wind"], fields["v_component_of_wind"]
        return torch.cat((g, u, v, fields["temperature"][:, None], fields["specific_humidity"][:, None]), dim=1)

    def step(self, x: torch.Tensor, times, n: int = 1) -> torch.Tensor:
        times = as_times(times, x.shape[0])
        if x.shape[1] != len(self.channels):
            raise ForecastModelError(f"qg forecast expects {len(self.channels)} channels, got {x.shape[1]}")
        model = self.model.to(x.device)
        doy = torch.tensor(day_of_year(times), dtype=torch.float64, device=x.device)
        geo, hum = self._split(x)
        state = state_from_fields(model, geo, hum, doy, mean_winds=x[:, 2:4].double().mean(dim=(-2, -1)))
        sh = model.to_spectral(state) * model.dealias
        dt_days = self.params.dt_seconds / SECONDS_PER_DAY
        for cycle in range(n):
            for i in range(self.steps_per_interval):
                sh = model.step_spectral(sh, doy + (cycle * self.steps_per_interval + i) * dt_days)
            if self.stochastic_amplitude:
                sh = sh + self._stochastic(sh)
        doy_end = doy + n * self.steps_per_interval * dt_days
        out = self._stack(physical_fields(model, model.to_grid(sh), doy_end))
        return out.to(x.dtype)

    def _stochastic(self, sh: torch.Tensor) -> torch.Tensor:
        """Large-scale random PV perturbation, ``stochastic_amplitude`` times each member's rms PV."""
        model = self.model
        noise = torch.randn(sh.shape[0], 2, *sh.shape[-2:], generator=self.generator, dtype=torch.float64)
        noise = torch.complex(noise, torch.randn(noise.shape, generator=self.generator, dtype=torch.float64))
        k0 = 2 * torch.pi / self.params.domain_length_m
        large = (model.k2.cpu() <= (6 * k0) ** 2).to(torch.float64)
        noise = (noise * large * model.dealias.cpu()).to(sh.device)
        rms = sh[:, :2].abs().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        scale = rms / noise.abs().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-30)
        return torch.cat((self.stochastic_amplitude * scale * noise, torch.zeros_like(sh[:, 2:])), dim=1)
