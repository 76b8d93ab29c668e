"""Train O2Lnet on simulated observations of the training years; validate skill and calibration.

Targets: ``z_t = E(x_t)`` of the reference states through the frozen encoder; the decoder term
uses the frozen decoder. Each training sample thins every network at random (keep probability
uniform in ``[min_keep, 1]``, whole network dropped with probability ``network_dropout``), so the
network copes with missing stations: value by value (``thin_by: value``) or by station, a grid cell
of a network kept or dropped for the whole window (``thin_by: station``). The report holds, on the
validation years with the full networks: RMSE of ``D(z_o)`` per channel against the climatology's
RMSE, the calibration ``mean((z_o - z_t)^2 / sigma_o2)``, and the static fallback variance (stored
in the checkpoint).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from hloba.channels import list_channels
from hloba.grid import Grid
from hloba.io import atomic_path
from hloba.models.checkpoint import (
    channels_from_state,
    check_matches_data,
    grid_from_state,
    save_checkpoint,
)
from hloba.states import load_years, trajectory_runs
from hloba.timeaxis import window_cycles
from hloba.runtime import resolve_device
from hloba.normalization import Normalizer
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, gaussian_nll, render_observations
from hloba.models.autoencoder import encode_all, load_autoencoder
from hloba.models.settings import O2LnetTraining
from hloba.models.training import TrainingConfig, fit, training_environment
from hloba.obs.gridded import GriddedObservations, grid_observations, window_observations
from hloba.obs.schema import load_observations

log = logging.getLogger(__name__)


def decoder_channel_weights(weights: Mapping[str, float], channels: Sequence) -> torch.Tensor:
    """Per-channel weights ``(C,)`` of the decoder term, scaled to mean 1 (so that
    ``decoder_weight`` keeps its size): ``weights`` names channels (``specific_humidity``,
    ``geopotential_500``) or variables (all their levels); the channels it does not name weigh 1."""
    names = [c.name for c in channels]
    w = torch.ones(len(channels), dtype=torch.float32)
    for key, value in weights.items():
        hit = [i for i, c in enumerate(channels) if key in (c.name, c.variable)]
        if not hit:
            raise ValueError(f"o2lnet.channel_weights names {key!r}, which is neither a channel nor a variable "
                             f"of the data: use one of {names}")
        if not value > 0:
            raise ValueError(f"o2lnet.channel_weights[{key!r}] = {value} must be > 0")
        w[hit] = float(value)
    return w / w.mean()


def _prepare(ref_paths, obs_paths, normalizer, channels, grid, platforms=None):
    x, times, _, _ = load_years(ref_paths, normalizer, channels)
    df = load_observations(obs_paths, channels, grid, times[0], times[-1])
    obs = grid_observations(df, times, grid, normalizer, platforms)
    obs.runs = torch.as_tensor(trajectory_runs(ref_paths))  # windows stay within one run of the world
    return x, obs


def predict(model: O2Lnet, obs: GriddedObservations, cycles, n_channels, ny, nx, device, keep_prob=None,
            generator=None, keep_cells=None) -> tuple[torch.Tensor, torch.Tensor]:
    """O2Lnet's estimate at ``cycles`` from the observations of its slots (a window of cycles),
    thinned as :func:`hloba.obs.gridded.window_observations` thins."""
    slots = model.cfg.slots
    sample, ch, row, col, val = window_observations(obs, cycles, slots, n_channels, keep_prob, generator, keep_cells)
    rendered = render_observations(sample, ch, row, col, val, len(cycles), n_channels * len(slots), ny, nx)
    return model(rendered.to(device))


def window_architecture(architecture: dict, times) -> dict:
    """O2LnetConfig's keywords from the config's ``o2lnet`` architecture: ``window_hours`` (the
    observations of the cycles of a window that many hours long; absent or null: the analysis
    time's only) becomes the slots of its ``n`` cycles at the data's step, ``(1 - n, ..., 0)`` when
    the window ends at the analysis time; ``window_lead_hours`` (``m`` steps, default 0, less than
    the window) moves its end that far past the analysis time: ``(1 - n + m, ..., m)``, a smoother
    (:class:`hloba.assim.methods.hloba.Hloba` checks the later cycles' observations itself)."""
    architecture = dict(architecture)
    hours = architecture.pop("window_hours", None)
    lead_hours = architecture.pop("window_lead_hours", None) or 0
    if lead_hours and hours is None:
        raise ValueError(f"o2lnet.window_lead_hours {lead_hours:g} needs o2lnet.window_hours (the window it moves): "
                         "set both, or window_lead_hours: 0 with window_hours: null (the paper's one-cycle O2Lnet)")
    if hours is not None:
        step = times[1] - times[0]
        n = window_cycles(hours, step, "o2lnet.window_hours")
        m = window_cycles(lead_hours, step, "o2lnet.window_lead_hours") if lead_hours else 0
        if m >= n:
            raise ValueError(f"o2lnet.window_lead_hours {lead_hours:g} must be shorter than o2lnet.window_hours "
                             f"{hours:g}: the window must hold the analysis time")
        architecture["slots"] = tuple(range(1 - n + m, 1 + m))
    return architecture


def train_o2lnet(
    train_refs: list, train_obs: list, val_refs: list, val_obs: list, autoencoder_path,
    checkpoint_path, report_path, architecture: dict, training: TrainingConfig, options: O2LnetTraining,
    progress: bool = True,
) -> dict:
    device = resolve_device(training.device)
    ae, ae_payload = load_autoencoder(autoencoder_path, device)
    for p in ae.parameters():
        p.requires_grad_(False)
    normalizer = Normalizer.from_state(ae_payload["normalizer"])
    channels, grid = channels_from_state(ae_payload["channels"]), grid_from_state(ae_payload["grid"])
    x_train, obs_train = _prepare(train_refs, train_obs, normalizer, channels, grid)
    x_val, obs_val = _prepare(val_refs, val_obs, normalizer, channels, grid, obs_train.platforms)
    with xr.open_dataset(train_refs[0]) as ds:
        check_matches_data(ae_payload, list_channels(ds), Grid.from_dataset(ds), autoencoder_path)
    weights = decoder_channel_weights(options.channel_weights, channels).to(device)[None, :, None, None]

    def decoder_term(z_o, x):
        return options.decoder_weight * torch.mean(weights * (ae.decode(z_o) - x.to(device)) ** 2)

    z_train = encode_all(ae, x_train)
    z_val = encode_all(ae, x_val)
    cfg = O2LnetConfig(autoencoder=ae.cfg.to_dict(), **window_architecture(architecture, obs_train.times))
    torch.manual_seed(training.seed)
    model = O2Lnet(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    n_ch, (ny, nx) = len(channels), grid.shape
    n_platforms = len(obs_train.platforms)
    log.info("o2lnet: %d parameters, %d training cycles (%d obs), %d validation cycles, platforms %s",
             n_params, len(obs_train), len(obs_train.value), len(obs_val), obs_train.platforms)

    def batch_loss(idx, generator):
        keep = options.min_keep + (1 - options.min_keep) * torch.rand(len(idx), n_platforms, generator=generator)
        keep = keep * (torch.rand(len(idx), n_platforms, generator=generator) >= options.network_dropout)
        if options.thin_by == "station":  # each cell of a network in the whole window, or in none of it
            cells = torch.rand(len(idx), n_platforms, ny, nx, generator=generator) < keep[:, :, None, None]
            z_o, logvar = predict(model, obs_train, idx, n_ch, ny, nx, device, keep_cells=cells)
        else:
            z_o, logvar = predict(model, obs_train, idx, n_ch, ny, nx, device, keep, generator)
        loss = gaussian_nll(z_train[idx].to(device), z_o, logvar)
        if options.decoder_weight:
            loss = loss + decoder_term(z_o, x_train[idx])
        return loss

    val_cycles = torch.linspace(0, len(obs_val) - 1, min(len(obs_val), 256)).long()

    def validation_loss():
        losses = []
        for idx in val_cycles.split(32):
            z_o, logvar = predict(model, obs_val, idx, n_ch, ny, nx, device)
            loss = gaussian_nll(z_val[idx].to(device), z_o, logvar)
            if options.decoder_weight:
                loss = loss + decoder_term(z_o, x_val[idx])
            losses.append(float(loss))
        return float(np.mean(losses))

    history = fit(model, list(model.parameters()), batch_loss, validation_loss, len(obs_train), training,
                  device, "o2lnet", progress)
    model.eval()
    report = evaluate_o2lnet(model, ae, obs_val, x_val, z_val, channels, device)
    report.update({"n_parameters": n_params, "history": history, "platforms": obs_train.platforms,
                   **training_environment(device, training.precision)})
    static = torch.as_tensor(report.pop("static_sigma_o2"))
    save_checkpoint(checkpoint_path, "o2lnet", cfg.to_dict(), model.state_dict(), channels, grid,
                    normalizer.state(), {"history": history, "platforms": obs_train.platforms,
                                         "training": options.to_dict()}, {"static_sigma_o2": static})
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report


@torch.no_grad()
def evaluate_o2lnet(model, ae, obs: GriddedObservations, x, z, channels, device) -> dict:
    """Skill of ``D(z_o)`` against climatology and calibration of ``sigma_o2`` over all cycles."""
    n_ch, ny, nx = x.shape[1:]
    sq_err = torch.zeros(n_ch, dtype=torch.float64)
    sq_clim = torch.zeros(n_ch, dtype=torch.float64)
    ratio_sum, count = 0.0, 0
    latent_sq = torch.zeros(z.shape[1], dtype=torch.float64)
    for idx in torch.arange(len(obs)).split(64):
        z_o, logvar = predict(model, obs, idx, n_ch, ny, nx, device)
        z_o, logvar = z_o.cpu().double(), logvar.cpu().double()
        err = z_o - z[idx].double()
        ratio_sum += float((err**2 * torch.exp(-logvar)).sum())
        count += err.numel()
        latent_sq += (err**2).sum(0)
        x_o = ae.decode(z_o.float().to(device)).cpu().double()
        sq_err += ((x_o - x[idx].double()) ** 2).sum(dim=(0, 2, 3))
        sq_clim += (x[idx].double() ** 2).sum(dim=(0, 2, 3))
    n = len(obs) * ny * nx
    rmse, clim = (sq_err / n).sqrt(), (sq_clim / n).sqrt()
    report = {
        "validation_rmse_over_anomaly_std": {c.name: float(r) for c, r in zip(channels, rmse)},
        "climatology_rmse_over_anomaly_std": {c.name: float(r) for c, r in zip(channels, clim)},
        "rmse_ratio_to_climatology": {c.name: float(r / k) for c, r, k in zip(channels, rmse, clim)},
        "calibration_mean_normalized_squared_error": ratio_sum / count,
        "static_sigma_o2": (latent_sq / len(obs)).float().tolist(),
    }
    for c in channels:
        log.info("o2lnet validation %-26s RMSE %.3f, climatology %.3f, ratio %.3f", c.name,
                 report["validation_rmse_over_anomaly_std"][c.name], report["climatology_rmse_over_anomaly_std"][c.name],
                 report["rmse_ratio_to_climatology"][c.name])
    log.info("o2lnet calibration mean (z_o - z_t)^2 / sigma_o2 = %.3f", report["calibration_mean_normalized_squared_error"])
    return report
