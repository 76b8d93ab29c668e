"""Calibration of the hybrid background error variance from time-lagged forecasts (DESIGN §4).

Notation: truth ``x(t)``, latent truth ``z(t) = E(x(t))``; lagged members
``z_k(t) = E(M^k(x(t - k dt)))``, ``k = 1..K``; the lead-1 forecast is the background.

- ``sigma_clim2 = mean_t (z_1 - z)^2`` (element-wise static variance);
- ``s2(t) = var_k z_k(t)`` (ensemble variance);
- ``(a, b) = NNLS`` fit of ``(z_1 - z)^2`` on ``[sigma_clim2, s2]``, pooled over time and elements;
- the decorrelating rotation: with ``C = mean_t e e^T`` (``e = z_1 - z``) and ``C = V L V^T``,
  ``w = V^T z``; in ``w`` the static variance is ``L`` and the weights are fitted again. A year of
  6-hourly times is fewer samples than latent elements (1460 < 2048 by default), so ``C`` is
  shrunk toward its diagonal with the Schaefer-Strimmer intensity (estimated from the data)
  before the eigendecomposition. With ``rotation_cells = b`` the rotation is local: ``C`` is
  eigendecomposed within each square of ``b x b`` latent cells (all latent channels) and ``V`` is
  block-diagonal up to the order of its columns (modes sorted by variance over all blocks), which
  the stream applies block by block (:class:`hloba.assim.cycle.UpdateSpace`).

The decorrelation of ``e`` is reported before and after rotation on held-out times (the second
half of the period; ``V`` is estimated on the first half) against the sampling floor.

The climatological prior of O2Lnet (``prior_mean = mean_t z``, ``prior_var = var_t z`` and its
variance in ``w``) lets the stream remove that prior from O2Lnet's posterior
(``assimilation.update: likelihood``, :func:`hloba.assim.update.likelihood_estimate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from hloba.models.diagnostics import latent_decorrelation

log = logging.getLogger(__name__)


def shrunk_covariance(e: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Second-moment matrix of ``e: (samples, n)`` shrunk toward its diagonal, and the intensity.

    Correlations ``r_ij`` are shrunk by ``lambda = sum_{i!=j} Var(r_ij) / sum_{i!=j} r_ij^2``
    (Schaefer and Strimmer 2005), with ``Var(r_ij)`` estimated from the per-sample products.
    """
    e = e.double()
    n = e.shape[0]
    scale = e.pow(2).mean(0).sqrt().clamp(min=1e-30)
    x = e / scale
    r = x.T @ x / n
    # sum over i != j of sum_t (x_ti x_tj - r_ij)^2, without forming the (n, n, samples) array
    row_sq = x.pow(2).sum(1)
    total = float((row_sq**2 - x.pow(4).sum(1)).sum()) - n * float((r**2).sum() - (torch.diagonal(r) ** 2).sum())
    var_r = total / (n * (n - 1))
    off = float((r**2).sum() - (torch.diagonal(r) ** 2).sum())
    lam = min(max(var_r / off, 0.0), 1.0) if off > 0 else 1.0
    r_shrunk = (1 - lam) * r + lam * torch.eye(r.shape[0], dtype=r.dtype)
    return scale[:, None] * r_shrunk * scale[None, :], lam


def cell_blocks(latent_shape: tuple[int, int, int], cells: int) -> torch.Tensor:
    """Block index of each latent element (``(channel, y, x)`` flattened): squares of
    ``cells x cells`` latent cells holding every channel, numbered row by row (the last row and
    column of squares smaller where ``cells`` does not divide the latent grid)."""
    if cells < 1:
        raise ValueError(f"ensemble.rotation_cells = {cells}: give a positive number of latent cells, "
                         "or null for one rotation of the whole latent")
    c, h, w = latent_shape
    y, x = torch.meshgrid(torch.arange(h) // cells, torch.arange(w) // cells, indexing="ij")
    return (y * (-(-w // cells)) + x).flatten().repeat(c)


def eigenvectors(cov: torch.Tensor, blocks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of ``cov``; with ``blocks`` (the block
    of each element) of its diagonal blocks only: ``V`` is zero outside them, its columns sorted by
    eigenvalue over all blocks."""
    if blocks is None:
        lam, vectors = torch.linalg.eigh(cov)
    else:
        lam = torch.empty(cov.shape[0], dtype=cov.dtype)
        vectors = torch.zeros_like(cov)
        start = 0
        for b in torch.unique(blocks):
            idx = torch.nonzero(blocks == b).flatten()
            lam_b, v_b = torch.linalg.eigh(cov[idx][:, idx])
            cols = torch.arange(start, start + len(idx))
            lam[cols] = lam_b
            vectors[idx[:, None], cols[None, :]] = v_b
            start += len(idx)
    order = torch.argsort(lam, descending=True)
    return lam[order], vectors[:, order]


def nnls_two(x1: np.ndarray, x2: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Non-negative least squares ``y ~ a x1 + b x2`` with ``a, b >= 0`` (exact, by cases)."""
    x1, x2, y = (np.asarray(v, dtype=np.float64).ravel() for v in (x1, x2, y))
    g = np.array([[x1 @ x1, x1 @ x2], [x1 @ x2, x2 @ x2]])
    r = np.array([x1 @ y, x2 @ y])
    candidates = []
    if abs(np.linalg.det(g)) > 1e-12 * max(g[0, 0] * g[1, 1], 1e-300):
        a, b = np.linalg.solve(g, r)
        if a >= 0 and b >= 0:
            candidates.append((a, b))
    candidates.append((max(r[0], 0.0) / g[0, 0] if g[0, 0] > 0 else 0.0, 0.0))
    candidates.append((0.0, max(r[1], 0.0) / g[1, 1] if g[1, 1] > 0 else 0.0))
    candidates.append((0.0, 0.0))

    def sse(ab):
        a, b = ab
        return float(y @ y - 2 * (a * r[0] + b * r[1]) + a * a * g[0, 0] + 2 * a * b * g[0, 1] + b * b * g[1, 1])

    a, b = min(candidates, key=sse)
    return float(a), float(b)


@dataclass
class LaggedForecasts:
    """Latent truth ``z: (T, n)`` and members ``members: (T, K, n)`` at the valid times ``times``."""

    times: pd.DatetimeIndex
    z: torch.Tensor
    members: torch.Tensor


def lagged_forecasts(model, encode, x: torch.Tensor, times: pd.DatetimeIndex, members: int, batch: int = 32,
                     progress: bool = True) -> LaggedForecasts:
    """Run ``K = members`` steps from every reference state and encode every lead.

    ``x: (T, C, ny, nx)`` physical states at consecutive cycle times; ``encode(x_phys, times)``
    returns latents. Valid times are ``times[K:]`` (every one has all ``K`` members).
    """
    n_t = len(times)
    if n_t <= members:
        raise ValueError(f"{n_t} reference times are too few for {members} lagged members")
    z = encode(x, times)
    latent = torch.full((n_t, members, z.shape[1]), float("nan"))
    bar = tqdm(total=n_t - 1, desc="lagged forecasts", disable=not progress, mininterval=5.0)
    with torch.no_grad():
        for s in range(0, n_t - 1, batch):
            idx = torch.arange(s, min(s + batch, n_t - 1))
            state, valid = x[idx], times[idx.numpy()]
            for k in range(1, members + 1):
                state = model.step(state, valid, 1)
                valid = valid + model.interval
                target = idx + k
                keep = target < n_t
                if keep.any():
                    latent[target[keep], k - 1] = encode(state[keep], valid[keep.numpy()])
            bar.update(len(idx))
    bar.close()
    return LaggedForecasts(times[members:], z[members:], latent[members:])


def lead_rmse(model, x: torch.Tensor, times: pd.DatetimeIndex, max_lead: int, starts: np.ndarray,
              area_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted RMSE per lead (1..max_lead) and channel, of forecasts and of persistence."""
    w = torch.as_tensor(area_weights, dtype=torch.float64)[None, None, :, None]
    starts = starts[starts + max_lead < len(times)]
    err = np.zeros((max_lead, x.shape[1]))
    pers = np.zeros((max_lead, x.shape[1]))
    with torch.no_grad():
        state, valid = x[starts], times[starts]
        for k in range(1, max_lead + 1):
            state = model.step(state, valid, 1)
            valid = valid + model.interval
            truth = x[starts + k].double()
            err[k - 1] = ((state.double() - truth) ** 2 * w).mean(dim=(0, 2, 3)).sqrt().numpy()
            pers[k - 1] = ((x[starts].double() - truth) ** 2 * w).mean(dim=(0, 2, 3)).sqrt().numpy()
    return err, pers


def calibrate(lagged: LaggedForecasts, blocks: torch.Tensor | None = None) -> dict:
    """Static variance, hybrid weights, spread-error correlation, decorrelation and rotation
    (local to ``blocks``, the block of each latent element, when given: :func:`cell_blocks`)."""
    e = (lagged.members[:, 0] - lagged.z).double()  # background (lead-1) errors (T, n)
    e2 = e**2
    s2 = lagged.members.double().var(dim=1)  # (T, n), unbiased over K
    sigma_clim2 = e2.mean(0)
    a, b = nnls_two(sigma_clim2.expand_as(e2).numpy(), s2.numpy(), e2.numpy())
    corr = float(np.corrcoef(s2.numpy().ravel(), e2.numpy().ravel())[0, 1])
    half = len(e) // 2
    cov, _ = shrunk_covariance(e[:half])
    _, vectors = eigenvectors(cov, blocks)
    held_out = e[half:]
    before = latent_decorrelation(held_out)
    after = latent_decorrelation(held_out @ vectors)
    # the rotation used in cycling comes from the whole period; fit the weights in w coordinates
    cov_all, shrinkage = shrunk_covariance(e)
    _, v_all = eigenvectors(cov_all, blocks)
    ew2 = (e @ v_all) ** 2
    lam = ew2.mean(0)  # the realised static variance in w (equals L without shrinkage)
    sw2 = (lagged.members.double() @ v_all).var(dim=1)
    a_w, b_w = nnls_two(lam.expand_as(ew2).numpy(), sw2.numpy(), ew2.numpy())
    z = lagged.z.double()
    prior_mean = z.mean(0)
    return {
        "prior_mean": prior_mean.float(),
        "prior_var": z.var(0).float(),
        "prior_var_rotated": ((z - prior_mean) @ v_all).var(0).float(),
        "sigma_clim2": sigma_clim2.float(),
        "s2_mean": s2.mean(0).float(),
        "hybrid_a": a, "hybrid_b": b,
        "corr_s2_e2": corr,
        "decorrelation_before": before,
        "decorrelation_after_rotation": after,
        "rotation": v_all.float(),
        "rotation_block": None if blocks is None else blocks.clone(),
        "shrinkage": shrinkage,
        "sigma_clim2_rotated": lam.float(),
        "hybrid_a_rotated": a_w, "hybrid_b_rotated": b_w,
        "corr_s2_e2_rotated": float(np.corrcoef(sw2.numpy().ravel(), ew2.numpy().ravel())[0, 1]),
    }
