"""Figures of a reanalysis year: maps for one date and time series of uncertainty and error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hloba.archive.dataset import archive_states
from hloba.plotting import plt, save_figure


def plot_maps(archive_path, reference_path, date, path, channel_names=None, reference_name: str = "truth") -> None:
    """Reference, analysis, error and decoded std side by side for ``date`` (nearest analysis time);
    one row per channel (``channel_names``, default: all). Without a reference, no reference/error.
    ``reference_name``: the reference's column title, ``truth`` (built-in world) or ``reference``."""
    import xarray as xr

    from hloba.channels import stack_channels

    mean, std, times, channels, grid = archive_states(archive_path)
    k = int(np.abs(times - pd.Timestamp(date)).argmin())
    truth = None
    if reference_path is not None:
        with xr.open_dataset(reference_path) as ref:
            truth = stack_channels(ref.sel(time=[times[k]]).load(), channels)[0]
    names = channel_names or [c.name for c in channels]
    rows = [i for i, c in enumerate(channels) if c.name in names]
    cols = ([reference_name, "analysis", "error", "uncertainty (std)"] if truth is not None
            else ["analysis", "uncertainty (std)"])
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 2.6 * len(rows)), squeeze=False)
    extent = (grid.longitude[0], grid.longitude[-1], grid.latitude[0], grid.latitude[-1])
    for r, c in enumerate(rows):
        fields = {"analysis": mean[k, c], "uncertainty (std)": std[k, c]}
        if truth is not None:
            fields.update({reference_name: truth[c], "error": mean[k, c] - truth[c]})
        lo, hi = np.percentile(np.concatenate([fields["analysis"].ravel()] + ([truth[c].ravel()] if truth is not None else [])), [1, 99])
        err_max = np.abs(fields.get("error", fields["uncertainty (std)"])).max()
        for j, name in enumerate(cols):
            ax = axes[r, j]
            if name in (reference_name, "analysis"):
                im = ax.imshow(fields[name], origin="lower", extent=extent, aspect="auto", vmin=lo, vmax=hi, cmap="viridis")
            elif name == "error":
                im = ax.imshow(fields[name], origin="lower", extent=extent, aspect="auto", vmin=-err_max, vmax=err_max,
                               cmap="RdBu_r")
            else:
                im = ax.imshow(fields[name], origin="lower", extent=extent, aspect="auto", vmin=0,
                               vmax=float(np.percentile(fields[name], 99.5)), cmap="magma")
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"{channels[c].name}: {name}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"reanalysis {times[k]:%Y-%m-%d %H:%M}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_uncertainty_series(archive_path, reference_path, path, reference_name: str = "truth") -> None:
    """Domain-mean decoded std and domain-mean absolute error (against the ``reference_name``)
    against time, per channel (in units of the channel's time-mean std), daily means."""
    import xarray as xr

    from hloba.channels import stack_channels

    mean, std, times, channels, grid = archive_states(archive_path)
    w = grid.area_weights()[None, :, None]
    with xr.open_dataset(reference_path) as ref:
        truth = stack_channels(ref.sel(time=times).load(), channels)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for c, ch in enumerate(channels):
        s = pd.Series((std[:, c] * w).mean(axis=(1, 2)) / w.mean(), index=times).resample("1D").mean()
        e = pd.Series((np.abs(mean[:, c] - truth[:, c]) * w).mean(axis=(1, 2)) / w.mean(), index=times).resample("1D").mean()
        scale = s.mean()
        line, = ax.plot(s.index, s / scale, lw=1, label=ch.name)
        ax.plot(e.index, e / scale / np.sqrt(2 / np.pi), lw=0.7, ls=":", color=line.get_color())
    ax.set_ylabel("domain mean / time-mean std")
    ax.set_title(f"decoded uncertainty (solid) and |analysis - {reference_name}| / sqrt(2/pi) (dotted), daily means")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
