"""Neural emulator: a residual convolutional network that predicts one cycle step.

In standardised-anomaly space (:class:`~hloba.models.normalizer.Normalizer`):
``x_norm(t + dt) = x_norm(t) + f(x_norm(t))``, where ``f`` is the autoencoder's building blocks
without a bottleneck (overlapping strided convolution, residual blocks, transposed convolution).
Longer leads roll the step out. Trained by rule ``train_emulator`` on the training years with a
``rollout``-step loss; the checkpoint carries the normaliser, so the emulator runs from its file
alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hloba.channels import Channel
from hloba.forecast.base import as_times
from hloba.io import atomic_path
from hloba.models.autoencoder import AutoencoderConfig, Decoder, Encoder
from hloba.models.checkpoint import channels_from_state, load_module, save_checkpoint
from hloba.states import load_years, trajectory_runs
from hloba.runtime import resolve_device
from hloba.normalization import Normalizer
from hloba.models.training import TrainingConfig, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmulatorConfig:
    channels: int
    ny: int
    nx: int
    interval_hours: float = 6.0
    patch: int = 2
    width: int = 96
    blocks: int = 4
    periodic_lat: bool = False
    periodic_lon: bool = False

    def trunk(self) -> AutoencoderConfig:
        return AutoencoderConfig(channels=self.channels, ny=self.ny, nx=self.nx, latent_channels=self.width,
                                 patch=self.patch, width=self.width, blocks=self.blocks,
                                 periodic_lat=self.periodic_lat, periodic_lon=self.periodic_lon)

    def to_dict(self) -> dict:
        return asdict(self)


class EmulatorNet(nn.Module):
    """One step in standardised space: ``x + f(x)``, ``x: (batch, C, ny, nx)``."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        trunk = cfg.trunk()
        self.encoder = Encoder(trunk)
        self.decoder = Decoder(trunk)
        nn.init.zeros_(self.decoder.head.weight)
        nn.init.zeros_(self.decoder.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.decoder(self.encoder(x))


class EmulatorForecast:
    """Forecast-model protocol around a trained :class:`EmulatorNet`."""

    def __init__(self, net: EmulatorNet, normalizer: Normalizer, channels: list[Channel]) -> None:
        self.net = net.eval()
        self.normalizer = normalizer
        self.channels = channels
        self.interval = pd.Timedelta(hours=net.cfg.interval_hours)

    def step(self, x: torch.Tensor, times, n: int = 1) -> torch.Tensor:
        times = as_times(times, x.shape[0])
        self.net.to(x.device)
        xn = self.normalizer.standardize(x, times)
        for _ in range(n):
            xn = self.net(xn)
        return self.normalizer.destandardize(xn, times + n * self.interval).to(x.dtype)


def load_emulator(path) -> EmulatorForecast:
    """The emulator forecast model from its checkpoint file alone."""
    net, payload = load_module(path, "emulator", lambda cfg: EmulatorNet(EmulatorConfig(**cfg)))
    return EmulatorForecast(net, Normalizer.from_state(payload["normalizer"]), channels_from_state(payload["channels"]))


def rollout_rmse(net: EmulatorNet, x: torch.Tensor, steps: int, starts: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """RMSE per channel (standardised units) of ``steps``-step forecasts and of persistence."""
    with torch.no_grad():
        device = next(net.parameters()).device
        out = x[starts].to(device)
        for _ in range(steps):
            out = net(out)
        truth = x[starts + steps].to(device)
        err = ((out - truth) ** 2).mean(dim=(0, 2, 3)).sqrt().cpu().numpy()
        pers = ((x[starts].to(device) - truth) ** 2).mean(dim=(0, 2, 3)).sqrt().cpu().numpy()
    return err, pers


def rollout_starts(times: pd.DatetimeIndex, runs: np.ndarray, rollout: int, step: pd.Timedelta) -> np.ndarray:
    """Indices whose next ``rollout`` states are consecutive cycles of one trajectory: no gap
    between years, and not across two runs of the built-in world (``runs``, per time)."""
    n = len(times) - rollout
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    ok = np.ones(n, bool)
    for k in range(1, rollout + 1):
        ok &= (times[k:n + k] - times[:n]) == k * step
        ok &= runs[k:n + k] == runs[:n]
    return np.flatnonzero(ok)


def train_emulator(train_paths, validation_paths, normalization_path, checkpoint_path, report_path,
                   architecture: dict, training: TrainingConfig, rollout: int = 2, interval_hours: float = 6.0,
                   progress: bool = True) -> dict:
    """Train on consecutive pairs of the training years; report 24 h RMSE against persistence."""
    import xarray as xr

    device = resolve_device(training.device)
    with xr.open_dataset(normalization_path) as norm:
        normalizer = Normalizer.from_dataset(norm.load())
    x_train, t_train, channels, grid = load_years(train_paths, normalizer)
    x_val, t_val, _, _ = load_years(validation_paths, normalizer, channels)
    cfg = EmulatorConfig(channels=len(channels), ny=grid.shape[0], nx=grid.shape[1], interval_hours=interval_hours,
                         periodic_lat=grid.latitude_period is not None,
                         periodic_lon=grid.longitude_period is not None, **architecture)
    starts = torch.as_tensor(rollout_starts(t_train, trajectory_runs(train_paths), rollout,
                                            pd.Timedelta(hours=interval_hours)))
    torch.manual_seed(training.seed)
    net = EmulatorNet(cfg).to(device)

    def batch_loss(idx, generator):
        s = starts[idx]
        out = x_train[s].to(device)
        loss = 0.0
        for k in range(1, rollout + 1):
            out = net(out)
            loss = loss + torch.mean((out - x_train[s + k].to(device)) ** 2)
        return loss / rollout

    lead = int(round(24.0 / interval_hours))
    val_starts = torch.arange(0, len(x_val) - lead, max(1, (len(x_val) - lead) // 256))

    def validation_loss():
        err, _ = rollout_rmse(net, x_val, lead, val_starts)
        return float((err**2).mean())

    history = fit(net, list(net.parameters()), batch_loss, validation_loss, len(starts), training, device,
                  "emulator", progress)
    err, pers = rollout_rmse(net, x_val, lead, torch.arange(0, len(x_val) - lead))
    report = {
        "lead_hours": lead * interval_hours,
        "rmse_over_anomaly_std": {c.name: float(e) for c, e in zip(channels, err)},
        "persistence_rmse_over_anomaly_std": {c.name: float(p) for c, p in zip(channels, pers)},
        "ratio_to_persistence": {c.name: float(e / p) for c, e, p in zip(channels, err, pers)},
        "history": history,
    }
    for c in channels:
        log.info("emulator %dh %-26s RMSE %.3f, persistence %.3f, ratio %.2f", lead * interval_hours, c.name,
                 report["rmse_over_anomaly_std"][c.name], report["persistence_rmse_over_anomaly_std"][c.name],
                 report["ratio_to_persistence"][c.name])
    save_checkpoint(checkpoint_path, "emulator", cfg.to_dict(), net.state_dict(), channels, grid, normalizer.state(),
                    {"history": history})
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report
