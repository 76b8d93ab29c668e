"""Scores of gridded estimates against a truth, area-weighted over the grid.

Arrays are ``(time, channel, lat, lon)``; ``weights: (lat,)`` area weights with mean 1
(:meth:`hloba.grid.Grid.area_weights`). Results are per channel unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _w(weights, x: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64, device=x.device)
    return w[None, None, :, None] / w.mean()


def area_mean(x: torch.Tensor, weights, dims=(0, 2, 3)) -> torch.Tensor:
    """Area-weighted mean over ``dims`` (time and grid by default) -> per channel."""
    w = _w(weights, x).expand_as(x)
    return (x.double() * w).sum(dim=dims) / w.sum(dim=dims)


def rmse(estimate: torch.Tensor, truth: torch.Tensor, weights, dims=(0, 2, 3)) -> torch.Tensor:
    return area_mean((estimate.double() - truth.double()).square(), weights, dims).sqrt()


def bias(estimate: torch.Tensor, truth: torch.Tensor, weights, dims=(0, 2, 3)) -> torch.Tensor:
    return area_mean(estimate.double() - truth.double(), weights, dims)


def anomaly_correlation(estimate: torch.Tensor, truth: torch.Tensor, climatology: torch.Tensor, weights,
                        dims=(0, 2, 3)) -> torch.Tensor:
    """Uncentred anomaly correlation coefficient about ``climatology`` (same shape)."""
    a, b = estimate.double() - climatology.double(), truth.double() - climatology.double()
    return area_mean(a * b, weights, dims) / (area_mean(a * a, weights, dims) * area_mean(b * b, weights, dims)).sqrt()


def gaussian_crps(mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor, weights, dims=(0, 2, 3)) -> torch.Tensor:
    """CRPS of ``N(mean, std^2)`` against ``truth``; ``std = 0`` gives the absolute error."""
    mean, std, truth = mean.double(), std.double(), truth.double()
    err = (truth - mean).abs()
    s = std.clamp(min=1e-300)
    z = (truth - mean) / s
    normal = torch.distributions.Normal(0.0, 1.0)
    crps = s * (z * (2 * normal.cdf(z) - 1) + 2 * normal.log_prob(z).exp() - 1 / math.sqrt(math.pi))
    return area_mean(torch.where(std > 0, crps, err), weights, dims)


def spread_skill(std: torch.Tensor, mean: torch.Tensor, truth: torch.Tensor, weights, dims=(0, 2, 3)) -> torch.Tensor:
    """Ratio of the rms predicted std to the RMSE (1 for a calibrated uncertainty)."""
    return area_mean(std.double().square(), weights, dims).sqrt() / rmse(mean, truth, weights, dims)


def latent_calibration(z_a: torch.Tensor, sigma_a2: torch.Tensor, z_true: torch.Tensor) -> float:
    """Mean of ``(z_a - z_true)^2 / sigma_a2`` (1 for calibrated latent analysis variances)."""
    ok = torch.isfinite(sigma_a2) & (sigma_a2 > 0)
    return float(((z_a - z_true).square()[ok] / sigma_a2[ok]).mean())
