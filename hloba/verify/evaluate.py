"""Rule evaluate_year: scores of a reanalysis year against the truth and the observations.

Gridded scores (OSSE, the reference is the truth): area-weighted RMSE, bias, anomaly correlation
about the day-of-year climatology, Gaussian CRPS from the analysis and its std, spread/skill,
per channel over the year, each month and each season. Observation space, from the feedback
file: O-B and O-A mean and std per variable and platform, counts used and rejected. Reliability:
the archive's std binned against the error (:mod:`hloba.verify.reliability`). Forecast
skill: the forecast model started from the analyses (and, as the model-error floor, from the
truth) at evenly spread times, RMSE and ACC at daily leads.
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
from hloba.archive.dataset import archive_states
from hloba.scores import anomaly_correlation, bias, gaussian_crps, rmse, spread_skill
from hloba.verify.reliability import fixed_stations, plot_reliability, reliability, station_distance_thirds

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


def forecast_skill(model, mean, truth, clim, times: pd.DatetimeIndex, weights, channel_names,
                   max_lead_days: float = 5.0, starts: int = 36, batch: int = 12,
                   reference_name: str = "truth") -> pd.DataFrame:
    """RMSE and ACC per channel of forecasts from the analyses ``mean`` (and from ``truth``) at
    leads of whole days up to ``max_lead_days``, over ``starts`` start times within the year.
    The columns of the forecasts from ``truth`` are ``rmse_from_<reference_name>`` and
    ``acc_from_<reference_name>`` (``truth`` for the built-in world, ``reference`` for files)."""
    interval = times[1] - times[0]
    per_day = pd.Timedelta(days=1) / interval
    if abs(per_day - round(per_day)) > 1e-9 or per_day < 1:
        raise ValueError(f"forecast skill needs whole cycles per day; the analyses are {interval} apart")
    per_day = round(per_day)
    max_lead = int(round(max_lead_days * per_day))
    if len(times) <= max_lead:
        raise ValueError(f"{len(times)} analysis times are too few for forecasts to {max_lead_days} days")
    start = np.unique(np.linspace(0, len(times) - 1 - max_lead, starts).astype(int))
    m, t, c = (torch.from_numpy(np.asarray(a, np.float64)) for a in (mean, truth, clim))
    fc = {(src, d): [] for src in ("analysis", "truth") for d in range(1, max_lead // per_day + 1)}
    with torch.no_grad():
        for i in range(0, len(start), batch):
            s = start[i:i + batch]
            for src, x0 in (("analysis", m), ("truth", t)):
                x = x0[s]
                for lead in range(1, max_lead + 1):
                    x = model.step(x, times[s + lead - 1], 1).double()
                    if lead % per_day == 0:
                        fc[(src, lead // per_day)].append(x)
    rows = []
    for d in range(1, max_lead // per_day + 1):
        idx = torch.as_tensor(start + d * per_day)
        tt, cc = t[idx], c[idx]
        fa, ft = torch.cat(fc[("analysis", d)]), torch.cat(fc[("truth", d)])
        scores = {"rmse": rmse(fa, tt, weights), "acc": anomaly_correlation(fa, tt, cc, weights),
                  f"rmse_from_{reference_name}": rmse(ft, tt, weights),
                  f"acc_from_{reference_name}": anomaly_correlation(ft, tt, cc, weights)}
        for i, name in enumerate(channel_names):
            rows.append({"lead_days": d, "channel": name, "n_starts": len(start),
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


def withheld_statistics(feedback: pd.DataFrame) -> pd.DataFrame:
    """Background and analysis against the withheld observations (``qc == 3``, never assimilated)
    per variable, level and platform: count, RMSE and bias of O-B and O-A, and O-A/O-B RMSE."""
    from hloba.obs.withhold import QC_WITHHELD

    fb = feedback[feedback["qc"] == QC_WITHHELD]
    fb = fb.assign(omb=fb["value"] - fb["background"], oma=fb["value"] - fb["analysis"], level=fb["level"].fillna(-1))
    groups = fb.groupby(["variable", "level", "platform"])
    out = pd.DataFrame({"n": groups.size(), "n_stations": groups["station_id"].nunique()})
    for col in ("omb", "oma"):
        out[f"{col}_rmse"] = groups[col].apply(lambda d: float(np.sqrt(np.mean(np.square(d)))))
        out[f"{col}_bias"] = groups[col].mean()
    out["oma_over_omb"] = out["oma_rmse"] / out["omb_rmse"]
    out = out.reset_index()
    out["level"] = out["level"].where(out["level"] >= 0)
    return out


def pooled_withheld(table: pd.DataFrame, by) -> pd.DataFrame:
    """The rows of :func:`withheld_statistics` pooled over the columns not in ``by``: count and
    RMSE of O-B and O-A (count-weighted mean squares), and their ratio."""
    t = table.assign(level=table["level"].fillna(-1), sq_b=table["n"] * table["omb_rmse"] ** 2,
                     sq_a=table["n"] * table["oma_rmse"] ** 2)
    g = t.groupby(by)[["n", "sq_b", "sq_a"]].sum()
    out = pd.DataFrame({"n": g["n"], "omb_rmse": np.sqrt(g["sq_b"] / g["n"]), "oma_rmse": np.sqrt(g["sq_a"] / g["n"])})
    return out.assign(oma_over_omb=out["oma_rmse"] / out["omb_rmse"])


def withheld_ratio_interval(feedback: pd.DataFrame, by="variable", *, block: str = "1D", n_boot: int = 1000,
                            seed: int = 0, coverage: float = 0.95) -> pd.DataFrame:
    """O-A/O-B RMSE ratio against the withheld observations (``qc == 3``) per ``by`` with a
    block-bootstrap interval: whole blocks of time (``block``, default days) resampled with
    replacement, since on one day the flow's errors are shared by every station. Columns ``n``,
    ``n_blocks``, ``oma_over_omb`` and its ``low`` and ``high`` bounds (``coverage``, central;
    NaN with fewer than two blocks). A ratio whose whole interval lies below 1 shows that the
    analysis fits observations it never saw better than the background did."""
    from hloba.obs.withhold import QC_WITHHELD

    fb = feedback[feedback["qc"] == QC_WITHHELD]
    fb = fb.assign(sq_b=(fb["value"] - fb["background"]) ** 2, sq_a=(fb["value"] - fb["analysis"]) ** 2,
                   block=pd.DatetimeIndex(fb["time"]).floor(block))
    by = [by] if isinstance(by, str) else list(by)
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in fb.groupby(by, dropna=False):
        blocks = group.groupby("block")[["sq_b", "sq_a"]].sum()
        n_blocks = len(blocks)
        ratio = float(np.sqrt(blocks["sq_a"].sum() / blocks["sq_b"].sum()))
        low = high = float("nan")
        if n_blocks >= 2:
            counts = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot)
            boot = np.sqrt((counts @ blocks["sq_a"].to_numpy()) / (counts @ blocks["sq_b"].to_numpy()))
            low, high = np.quantile(boot, [(1 - coverage) / 2, (1 + coverage) / 2])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n": len(group), "n_blocks": n_blocks, "oma_over_omb": ratio,
                     "low": low, "high": high})
    columns = by + ["n", "n_blocks", "oma_over_omb", "low", "high"]
    return pd.DataFrame(rows, columns=columns).infer_objects().set_index(by)


def evaluate_year(reanalysis, reference, feedback, normalization, scores_path, obs_path, forecast_path=None, *,
                  forecast=None,
                  forecast_days: float = 5.0, forecast_starts: int = 36, reference_name: str = "truth",
                  withheld_path=None, withheld_figure=None, reliability_path=None, reliability_figure=None,
                  reliability_bins: int = 10) -> pd.DataFrame:
    """Rule evaluate_year: gridded and observation-space scores; with ``forecast_path`` (and the
    ``forecast`` model, a :class:`hloba.forecast.ForecastSpec`) also the forecast skill from the analyses; with ``withheld_path``
    the scores against the withheld observations (:func:`withheld_statistics` with the 95 %
    interval of O-A/O-B from :func:`withheld_ratio_interval`, and a figure); with
    ``reliability_path`` the binned reliability of the archive's std (:mod:`hloba.verify.reliability`)."""
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
    fb = pd.read_parquet(feedback)
    if reliability_path is not None:
        stations = fixed_stations(fb)
        thirds = station_distance_thirds(grid, *stations) if len(stations[0]) else None
        write_reliability(mean, std, truth, grid.area_weights(), names, reliability_path, reliability_figure,
                          reliability_bins, reference_name, thirds)
    obs = observation_statistics(fb)
    with atomic_path(obs_path) as tmp:
        obs.to_csv(tmp, index=False, float_format="%.6g")
    if withheld_path is not None:
        withheld = withheld_statistics(fb)
        keys = ["variable", "level", "platform"]
        renamed = {"n_blocks": "n_days", "low": "oma_over_omb_low", "high": "oma_over_omb_high"}
        if len(withheld):
            interval = withheld_ratio_interval(fb, keys)[list(renamed)].rename(columns=renamed).reset_index()
            withheld = withheld.merge(interval, on=keys, how="left")
        else:
            withheld = withheld.assign(**{column: pd.Series(dtype=float) for column in renamed.values()})
        with atomic_path(withheld_path) as tmp:
            withheld.to_csv(tmp, index=False, float_format="%.6g")
        if len(withheld):
            log.info("withheld observations (O-B and O-A RMSE):\n%s",
                     withheld[["variable", "level", "platform", "n", "omb_rmse", "oma_rmse"]].to_string(index=False))
        if withheld_figure is not None:
            pooled = withheld_ratio_interval(fb, ["variable", "level"]) if len(withheld) else None
            plot_withheld(withheld, withheld_figure, pooled)
    if forecast_path is not None:
        model = forecast.build(channels)
        skill = forecast_skill(model, mean, truth, clim, times, grid.area_weights(), names, forecast_days,
                               forecast_starts, reference_name=reference_name)
        with atomic_path(forecast_path) as tmp:
            skill.to_csv(tmp, index=False, float_format="%.6g")
        log.info("forecast skill from the analyses (RMSE; from the %s in brackets):\n%s", reference_name,
                 skill.assign(rmse=skill["rmse"].map("{:.4g}".format) + " (" +
                              skill[f"rmse_from_{reference_name}"].map("{:.4g}".format) + ")")
                 .pivot(index="channel", columns="lead_days", values="rmse").to_string())
    year = scores[scores.period == "year"].set_index("channel")
    log.info("year scores:\n%s", year[["rmse", "bias", "acc", "crps", "spread_skill"]].to_string())
    return scores


def write_reliability(mean, std, truth, weights, names, path, figure=None, n_bins: int = 10,
                      reference_name: str = "truth", thirds=None) -> pd.DataFrame:
    """The reliability bins with each channel's summary (corr(std, |error|), spread/RMSE, slope;
    rms std and RMSE far from / near the fixed stations with ``thirds``)."""
    table, summary = reliability(mean, std, truth, weights, names, n_bins, thirds)
    out = table.merge(summary, on="channel")
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g")
    log.info("reliability of the std (%s):\n%s", reference_name, summary.set_index("channel").round(3).to_string())
    if figure is not None:
        plot_reliability(table, summary, figure, reference_name)
    return out


def plot_withheld(table: pd.DataFrame, path, intervals: pd.DataFrame | None = None) -> None:
    """RMSE of background and analysis against the withheld observations per variable and level
    (pooled over platforms), as a fraction of the background's, with the 95 % interval of the
    ratio when ``intervals`` (:func:`withheld_ratio_interval` by variable and level) is given; an
    empty table gives a note."""
    from hloba.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(table):
        g = pooled_withheld(table, ["variable", "level"])
        labels = [v if lev < 0 else f"{v} {lev:g}" for v, lev in g.index]
        x = np.arange(len(g))
        ax.bar(x - 0.2, np.ones(len(g)), 0.4, label="background (O-B)")
        ax.bar(x + 0.2, g["oma_over_omb"], 0.4, label="analysis (O-A)")
        if intervals is not None and len(intervals):
            bounds = intervals.rename(index=lambda v: -1.0 if pd.isna(v) else v, level="level")
            bounds = bounds.reindex(g.index)[["low", "high"]].to_numpy()
            ratio = g["oma_over_omb"].to_numpy()
            ax.errorbar(x + 0.2, ratio, yerr=np.abs(np.stack((ratio - bounds[:, 0], bounds[:, 1] - ratio))),
                        fmt="none", ecolor="black", capsize=3, label="95 % interval (days resampled)")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("RMSE / background RMSE")
        ax.set_ylim(0.0, 1.3)  # room above the bars for the legend
        ax.legend(fontsize=8, loc="upper center", ncol=2)
        ax.set_title(f"against {int(g['n'].sum())} withheld observations")
    else:
        ax.text(0.5, 0.5, "no observation withheld (evaluation.withhold.fraction: 0)", ha="center", va="center")
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path)
