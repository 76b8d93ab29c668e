"""Checks of a reanalysis archive file against the truth and against the in-cycle analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.archive.dataset import archive_states
from hloba.channels import stack_channels
from hloba.obs.gridded import nearest_cycle
from hloba.obs.operator import apply_operator, interpolation_weights
from hloba.obs.schema import channel_of_observations
from hloba.scores import rmse


def uncertainty_scores(archive_path, reference_path) -> pd.DataFrame:
    """Per channel: RMSE, rms std, spread/RMSE, corr(std, |error|) over points and times, and the
    correlation of the monthly means of std and |error| (the seasonal cycle)."""
    mean, std, times, channels, grid = archive_states(archive_path)
    with xr.open_dataset(reference_path) as ref:
        ref = ref.sel(time=times).load()
    truth = stack_channels(ref, channels)
    w = grid.area_weights()
    m, s, t = (torch.from_numpy(a.astype(np.float64)) for a in (mean, std, truth))
    err = rmse(m, t, w).numpy()
    spread = np.sqrt((np.asarray(std, np.float64) ** 2 * w[None, None, :, None]).mean(axis=(0, 2, 3)) / w.mean())
    rows = []
    month = times.month.to_numpy()
    for c, ch in enumerate(channels):
        e = np.abs(mean[:, c] - truth[:, c]).astype(np.float64)
        sd = std[:, c].astype(np.float64)
        corr = np.corrcoef(sd.ravel(), e.ravel())[0, 1]
        months = np.unique(month)
        me = np.array([e[month == k].mean() for k in months])
        ms = np.array([sd[month == k].mean() for k in months])
        seasonal = np.corrcoef(ms, me)[0, 1] if len(months) > 2 else np.nan
        rows.append({"channel": ch.name, "rmse": err[c], "rms_std": spread[c], "spread_over_rmse": spread[c] / err[c],
                     "corr_std_abs_error": corr, "corr_monthly_std_error": seasonal})
    return pd.DataFrame(rows).set_index("channel")


def in_cycle_difference(archive_path, feedback_path, anomaly_std: np.ndarray) -> float:
    """Largest |H(archive analysis) - H(in-cycle analysis)| over the year's observations, in
    anomaly-std units (the feedback's ``analysis`` column is H of the in-cycle decoded analysis)."""
    mean, _, times, channels, grid = archive_states(archive_path)
    fb = pd.read_parquet(feedback_path)
    ch = channel_of_observations(fb["variable"], fb["level"], channels)
    # each observation's cycle: the nearest analysis time
    ti, _ = nearest_cycle(times, fb["time"])
    w = interpolation_weights(grid, ch, fb["latitude"].to_numpy(float), fb["longitude"].to_numpy(float))
    hx = apply_operator(torch.from_numpy(mean.astype(np.float64)), w, torch.as_tensor(ti)).numpy()
    diff = np.abs(hx - fb["analysis"].to_numpy(float)) / np.asarray(anomaly_std)[ch]
    return float(diff.max())
