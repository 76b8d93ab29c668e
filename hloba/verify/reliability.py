"""Does the archive's std say where the analysis is wrong? Binned reliability of the decoded std.

Per channel, every grid value of the year (area-weighted) goes into one of ``n_bins`` bins of its
predicted std (equal area-weighted populations); each bin's RMSE is compared with its rms std.
A reliable uncertainty puts the bins on the diagonal; a std with the right size but no shape
puts them on a horizontal line. Per channel the summary gives the correlation of the std with the
absolute error, spread/RMSE and the reliability slope (the least-squares slope of the bins'
RMSE against their rms std, with an intercept: 1 when the std's variations are the error's,
0 when they carry none).

Arrays are ``(time, channel, lat, lon)`` and ``weights: (lat,)`` as in :mod:`hloba.scores`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _channels(mean, std, truth, weights, channel_names):
    """Per channel: name, flat std, flat error and flat area weight (one channel in memory at a time)."""
    w = np.asarray(weights, np.float64)[None, :, None]
    for i, name in enumerate(channel_names):
        s = np.asarray(std[:, i], np.float64)
        e = np.asarray(mean[:, i], np.float64) - np.asarray(truth[:, i], np.float64)
        yield name, s.ravel(), e.ravel(), np.broadcast_to(w, s.shape).ravel()


def weighted_bins(values: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index ``0..n_bins-1`` of each value, bins holding equal shares of the total weight
    (ties go to the same bin, so a bin can be empty when many values are equal)."""
    order = np.argsort(values, kind="stable")
    share = np.cumsum(weights[order]) / weights.sum()
    edges = values[order][np.searchsorted(share, np.arange(1, n_bins) / n_bins)]
    return np.searchsorted(edges, values, side="left")  # a value equal to an edge closes the lower bin


def _bin_rows(name: str, s: np.ndarray, e: np.ndarray, w: np.ndarray, n_bins: int) -> list[dict]:
    bins = weighted_bins(s, w, n_bins)
    rows = []
    for b in range(n_bins):
        sel = bins == b
        if not sel.any():
            continue
        wb = w[sel]
        rows.append({
            "channel": name, "bin": b, "std_min": float(s[sel].min()), "std_max": float(s[sel].max()),
            "weight_share": float(wb.sum() / w.sum()),
            "rms_std": float(np.sqrt(np.average(s[sel] ** 2, weights=wb))),
            "rmse": float(np.sqrt(np.average(e[sel] ** 2, weights=wb))),
        })
    return rows


def fixed_stations(feedback: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(latitude, longitude)`` of the stations that report from one place at several times."""
    g = feedback.groupby("station_id").agg(lat=("latitude", "first"), lon=("longitude", "first"),
                                           n_lat=("latitude", "nunique"), n_lon=("longitude", "nunique"),
                                           n_times=("time", "nunique"))
    g = g[(g["n_lat"] == 1) & (g["n_lon"] == 1) & (g["n_times"] > 1)]
    return g["lat"].to_numpy(np.float64), g["lon"].to_numpy(np.float64)


def station_distance_thirds(grid, latitude, longitude) -> tuple[np.ndarray, np.ndarray]:
    """``(near, far)`` masks ``(ny, nx)``: the third of the grid nearest to the stations and the third
    farthest from them (distance in degrees, periodic where the grid wraps)."""
    lat, lon = np.meshgrid(np.asarray(grid.latitude), np.asarray(grid.longitude), indexing="ij")
    d = np.full(lat.shape, np.inf)
    for la, lo in zip(np.asarray(latitude), np.asarray(longitude)):
        dy, dx = np.abs(lat - la), np.abs(lon - lo)
        if grid.latitude_period:
            dy = np.minimum(dy, grid.latitude_period - dy)
        if grid.longitude_period:
            dx = np.minimum(dx, grid.longitude_period - dx)
        d = np.minimum(d, np.hypot(dy, dx))
    q1, q2 = np.quantile(d, [1 / 3, 2 / 3])
    return d <= q1, d >= q2


def reliability(mean, std, truth, weights, channel_names, n_bins: int = 10,
                thirds: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, summary)``: one row per channel and std bin (the bin's std range, area weight
    share, rms std and RMSE), and per channel corr(std, |error|), spread/RMSE and the reliability
    slope of its bins; with ``thirds`` (:func:`station_distance_thirds`) also the ratios far from /
    near the stations of the rms std and of the RMSE."""
    if n_bins < 2:
        raise ValueError(f"reliability needs at least 2 bins, got {n_bins}")
    rows, summary = [], []
    for name, s, e, w in _channels(mean, std, truth, weights, channel_names):
        bins = pd.DataFrame(_bin_rows(name, s, e, w, n_bins))
        rows.append(bins)
        summary.append({
            "channel": name,
            "corr_std_abs_error": weighted_correlation(s, np.abs(e), w),
            "spread_over_rmse": float(np.sqrt(np.average(s ** 2, weights=w) / np.average(e ** 2, weights=w))),
            "reliability_slope": reliability_slope(bins["rms_std"], bins["rmse"], bins["weight_share"]),
        })
        if thirds is not None:
            near, far = (np.broadcast_to(m, s.reshape(-1, *m.shape).shape).ravel() for m in thirds)

            def ratio(x, near=near, far=far, w=w):
                return float(np.sqrt(np.average(x[far] ** 2, weights=w[far]) / np.average(x[near] ** 2, weights=w[near])))

            summary[-1].update({"std_far_over_near": ratio(s), "rmse_far_over_near": ratio(e)})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summary)


def reliability_slope(rms_std: np.ndarray, rmse: np.ndarray, share: np.ndarray) -> float:
    """Weighted least-squares slope (with an intercept) of the bins' RMSE on their rms std."""
    x, y, w = (np.asarray(a, np.float64) for a in (rms_std, rmse, share))
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    var = np.average((x - xm) ** 2, weights=w)
    return float(np.average((x - xm) * (y - ym), weights=w) / var) if var > 0 else float("nan")


def weighted_correlation(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    am, bm = np.average(a, weights=w), np.average(b, weights=w)
    cov = np.average((a - am) * (b - bm), weights=w)
    den = np.sqrt(np.average((a - am) ** 2, weights=w) * np.average((b - bm) ** 2, weights=w))
    return float(cov / den) if den > 0 else float("nan")


def plot_reliability(table: pd.DataFrame, summary: pd.DataFrame, path, reference_name: str = "truth") -> None:
    """One panel per channel: each bin's RMSE against its rms std, with the diagonal."""
    from hloba.plotting import plt, save_figure

    names = list(summary["channel"])
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.8 * rows), squeeze=False)
    for ax, (_, s) in zip(axes.flat, summary.iterrows()):
        t = table[table["channel"] == s["channel"]]
        top = 1.1 * float(max(t["rms_std"].max(), t["rmse"].max()))
        ax.plot([0, top], [0, top], color="0.6", lw=1, ls="--")
        ax.plot(t["rms_std"], t["rmse"], "o-", ms=3)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_title(f"{s['channel']}\ncorr {s['corr_std_abs_error']:.2f}, slope {s['reliability_slope']:.2f}",
                     fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    fig.supxlabel("predicted std (rms in the bin)", fontsize=9)
    fig.supylabel(f"RMSE against the {reference_name} in the bin", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
