"""Train the autoencoder on the training years, early-stop on the validation years, report skill.

The report (JSON, beside the checkpoint) holds per-channel reconstruction RMSE on the validation
years in units of the channel's anomaly std and of its total std, and the latent decorrelation
diagnostic of 6-hour latent differences (pairs of nearby states).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from hloba.io import atomic_path
from hloba.models.autoencoder import Autoencoder, AutoencoderConfig, decode_all, encode_all, reconstruction_loss
from hloba.models.checkpoint import save_checkpoint
from hloba.states import load_years
from hloba.runtime import resolve_device
from hloba.models.diagnostics import latent_decorrelation, rmse_per_channel
from hloba.normalization import Normalizer
from hloba.models.training import training_environment, TrainingConfig, fit

log = logging.getLogger(__name__)


def train_autoencoder(
    train_paths: list, validation_paths: list, normalization_path, checkpoint_path, report_path,
    architecture: dict, training: TrainingConfig, progress: bool = True,
) -> dict:
    """Train, save the checkpoint and the report; return the report."""
    device = resolve_device(training.device)
    with xr.open_dataset(normalization_path) as norm:
        norm = norm.load()
    normalizer = Normalizer.from_dataset(norm)
    x_train, _, channels, grid = load_years(train_paths, normalizer)
    x_val, _, _, _ = load_years(validation_paths, normalizer, channels)
    cfg = AutoencoderConfig(
        channels=len(channels), ny=grid.shape[0], nx=grid.shape[1],
        periodic_lat=grid.latitude_period is not None, periodic_lon=grid.longitude_period is not None,
        **architecture,
    )
    torch.manual_seed(training.seed)
    model = Autoencoder(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("autoencoder: %d parameters, latent %s = %d (compression %.1fx), device %s",
             n_params, cfg.latent_shape, cfg.n_latent, cfg.compression, device)
    val_sel = x_val[torch.linspace(0, len(x_val) - 1, min(len(x_val), 256)).long()]

    def batch_loss(idx, generator):
        x = x_train[idx].to(device)
        return reconstruction_loss(x, model(x))

    def validation_loss():
        return float(np.mean([
            float(reconstruction_loss(b.to(device), model(b.to(device)))) for b in val_sel.split(64)
        ]))

    history = fit(model, list(model.parameters()), batch_loss, validation_loss, len(x_train), training,
                  device, "autoencoder", progress)
    model.eval()
    z_val = encode_all(model, x_val)
    x_hat = decode_all(model, z_val)
    rmse = rmse_per_channel(x_val, x_hat)  # anomaly-std units
    ratio_total = rmse * norm["anomaly_std"].values / norm["std"].values
    report = {
        "n_parameters": n_params,
        "latent_shape": list(cfg.latent_shape),
        "n_latent": cfg.n_latent,
        "compression": cfg.compression,
        "validation_rmse_over_anomaly_std": {c.name: float(r) for c, r in zip(channels, rmse)},
        "validation_rmse_over_std": {c.name: float(r) for c, r in zip(channels, ratio_total)},
        "decorrelation_6h_differences": latent_decorrelation(z_val[1:] - z_val[:-1]),
        "history": history,
        **training_environment(device, training.precision),
    }
    for c, r in zip(channels, rmse):
        log.info("autoencoder validation RMSE %-26s %.4f anomaly std", c.name, r)
    log.info("latent decorrelation: %s", report["decorrelation_6h_differences"])
    save_checkpoint(checkpoint_path, "autoencoder", cfg.to_dict(), model.state_dict(), channels, grid,
                    normalizer.state(), {"history": history, "train_files": [str(p) for p in train_paths]})
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report
