"""Figures of the calibration: error growth with lead time, decoded static uncertainty."""

from __future__ import annotations

import numpy as np
import torch

from hloba.plotting import plt, save_figure


def plot_error_growth(ds, normalizer, path) -> None:
    """Forecast and persistence RMSE against lead, in units of each channel's anomaly std."""
    std = normalizer.anomaly_std.numpy()
    lead_days = ds["lead_hours"].values / 24.0
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, name in enumerate(ds["channel"].values):
        line, = ax.plot(lead_days, ds["lead_rmse"].values[:, i] / std[i], label=str(name))
        ax.plot(lead_days, ds["persistence_rmse"].values[:, i] / std[i], ls=":", color=line.get_color())
    ax.set_xlabel("lead (days)")
    ax.set_ylabel("RMSE / anomaly std")
    ax.set_title(f"forecast error growth ({ds.attrs['forecast_model']}; dotted: persistence)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


@torch.no_grad()
def plot_sigma_clim_map(ae, ds, z_reference: torch.Tensor, grid, channels, path, samples: int = 32, seed: int = 0) -> None:
    """Std of ``D(z + sqrt(sigma_clim2) eps)`` over samples: the static uncertainty in model space."""
    g = torch.Generator().manual_seed(seed)
    sigma = torch.as_tensor(ds["sigma_clim2"].values).sqrt()
    eps = torch.randn(samples, sigma.numel(), generator=g)
    decoded = ae.decode(z_reference[None] + sigma[None] * eps)
    spread = decoded.std(dim=0).numpy()  # (C, ny, nx), standardised units
    n = len(channels)
    cols = 4
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    lon, lat = np.asarray(grid.longitude), np.asarray(grid.latitude)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        im = ax.pcolormesh(lon, lat, spread[i], shading="auto", cmap="viridis")
        ax.set_title(channels[i].name, fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("static background uncertainty decoded by sampling (anomaly-std units)")
    save_figure(fig, path)
