"""Diagnostics of a latent space: reconstruction skill and error decorrelation."""

from __future__ import annotations

import numpy as np
import torch


def latent_decorrelation(differences: torch.Tensor | np.ndarray) -> dict[str, float]:
    """How far from diagonal the correlation matrix of latent differences ``(samples, n_latent)`` is.

    ``off_diagonal_energy_fraction`` = sum_{i != j} C_ij^2 / sum_ij C_ij^2. With ``N`` samples even
    independent elements give E[C_ij^2] = 1/N, hence the ``sampling_floor``
    (n - 1) / N / (1 + (n - 1) / N) that a perfectly decorrelated latent would show.
    """
    d = torch.as_tensor(np.asarray(differences), dtype=torch.float64)
    n_samples, n = d.shape
    d = d - d.mean(0)
    std = d.std(0)
    keep = std > 0
    d = d[:, keep] / std[keep]
    corr = (d.T @ d) / (n_samples - 1)
    n = corr.shape[0]
    total = float((corr**2).sum())
    diag = float((torch.diagonal(corr) ** 2).sum())
    off = corr - torch.diag(torch.diagonal(corr))
    ratio = (n - 1) / n_samples
    return {
        "off_diagonal_energy_fraction": (total - diag) / total,
        "sampling_floor": ratio / (1.0 + ratio),
        "max_abs_offdiagonal_correlation": float(off.abs().max()),
        "n_latent": int(n),
        "n_samples": int(n_samples),
    }


def rmse_per_channel(truth: torch.Tensor, estimate: torch.Tensor) -> np.ndarray:
    """Root-mean-square difference per channel of ``(time, C, ny, nx)`` tensors."""
    return ((estimate.double() - truth.double()) ** 2).mean(dim=(0, 2, 3)).sqrt().numpy()
