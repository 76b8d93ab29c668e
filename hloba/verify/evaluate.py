"""Rule evaluate_year: scores of a reanalysis year against the truth and the observations.

Gridded scores (OSSE, the reference is the truth): area-weighted RMSE, bias, anomaly correlation
about the day-of-year climatology, Gaussian CRPS from the analysis and its std, spread/skill,
per channel over the year, each month and each season. Observation space, from the feedback
file: O-B and O-A mean and std per variable and platform, counts used and rejected.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.channels import stack_channels
from hloba.io import atomic_path
from hloba.normalization import climatology_at
from hloba.verify.archive import archive_states
from hloba.verify.scores import anomaly_correlation, bias, gaussian_crps, rmse, spread_skill

log = logging.getLogger(__name__)

SEASONS = {"DJF": (12, 1, 2), "MAM": (3, 4, 5), "JJA": (6, 7, 8), "SON": (9, 10, 11)}


def gridded_scores(mean, std, truth, clim, times: pd.DatetimeIndex, weights, channel_names) -> pd.DataFrame:
    """Scores per channel and period (``year``, ``01``..``12``, seasons) -> long table."""
    m, s, t, c = (torch.from_numpy(np.asarray(a, np.float64)) for a in (mean, std, truth, clim))
    months = times.month.to_numpy()
    periods = {"year": np.ones(len(times), bool)}
    periods.update({f"{k:02d}": months == k for k in np.unique(months)})
    periods.update({name: np.isin(months, ms) for name, ms in SEASONS.items() if np.isin(months, ms).any()})
    rows = []
    for period, sel in periods.items():
        idx = torch.as_tensor(np.nonzero(sel)[0])
        mm, ss, tt, cc = m[idx], s[idx], t[idx], c[idx]
        scores = {
            "rmse": rmse(mm, tt, weights), "bias": bias(mm, tt, weights),
            "acc": anomaly_correlation(mm, tt, cc, weights), "crps": gaussian_crps(mm, ss, tt, weights),
            "spread_skill": spread_skill(ss, mm, tt, weights),
        }
        for i, name in enumerate(channel_names):
            rows.append({"period": period, "channel": name, "n_times": int(sel.sum()),
                         **{k: float(v[i]) for k, v in scores.items()}})
    return pd.DataFrame(rows)


def observation_statistics(feedback: pd.DataFrame) -> pd.DataFrame:
    """O-B and O-A mean and std per variable, level and platform (used observations), and counts."""
    fb = feedback.assign(omb=feedback["value"] - feedback["background"], oma=feedback["value"] - feedback["analysis"])
    fb["level"] = fb["level"].fillna(-1)
    groups = fb.groupby(["variable", "level", "platform"])
    used = fb[fb["qc"] == 0].groupby(["variable", "level", "platform"])
    out = pd.DataFrame({"n": groups.size(), "n_rejected": groups["qc"].apply(lambda q: int((q == 1).sum()))})
    for col in ("omb", "oma"):
        out[f"{col}_mean"] = used[col].mean()
        out[f"{col}_std"] = used[col].std()
    out = out.reset_index()
    out["level"] = out["level"].where(out["level"] >= 0)
    return out


def evaluate_year(reanalysis, reference, feedback, normalization, scores_path, obs_path) -> pd.DataFrame:
    mean, std, times, channels, grid = archive_states(reanalysis)
    with xr.open_dataset(reference) as ref:
        missing = times.difference(pd.DatetimeIndex(ref["time"].values))
        if len(missing):
            raise ValueError(f"{reference} lacks {len(missing)} analysis times (first {missing[0]}): "
                             "evaluate against the reference of the same year")
        truth = stack_channels(ref.sel(time=times).load(), channels)
    names = [c.name for c in channels]
    with xr.open_dataset(normalization) as norm:
        norm = norm.load()
    norm_channels = [str(v) for v in norm["channel"].values]
    clim = climatology_at(norm, times)[:, [norm_channels.index(n) for n in names]]
    scores = gridded_scores(mean, std, truth, clim, times, grid.area_weights(), names)
    with atomic_path(scores_path) as tmp:
        scores.to_csv(tmp, index=False, float_format="%.6g")
    obs = observation_statistics(pd.read_parquet(feedback))
    with atomic_path(obs_path) as tmp:
        obs.to_csv(tmp, index=False, float_format="%.6g")
    year = scores[scores.period == "year"].set_index("channel")
    log.info("year scores:\n%s", year[["rmse", "bias", "acc", "crps", "spread_skill"]].to_string())
    return scores
