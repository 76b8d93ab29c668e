"""The method comparison (rule compare_methods): the same year, observations and forecast model.

Each compared method is a method of the one cycle loop (:func:`hloba.assim.stream.run_stream`),
named in ``comparison.methods``:

=====================  ============================================================
``hloba``              the default HLOBA stream (decorrelating rotation, tuning file)
``hloba_norotation``   HLOBA with the element-wise update in the latent coordinates
``l3dvar``, ``l4dvar``  latent 3D-Var / strong-constraint 4D-Var (static latent B)
``oi``                 model-space optimal interpolation (NMC covariance)
``free``               no assimilation
=====================  ============================================================

:func:`run_method` runs one of them over ``days`` after a spin-up and keeps the model-space
analyses; :func:`scorecard` and :func:`cost_table` put the results side by side.
"""

from __future__ import annotations

import logging
import multiprocessing as mp

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.year import feedback_table, run_period
from hloba.channels import channel_coords, channels_from_coords
from hloba.grid import Grid
from hloba.io import atomic_path, write_netcdf
from hloba.verify.latent import truth_on
from hloba.scores import rmse
from hloba.timeaxis import cycle_times, window_cycles
from hloba.assim.methods import REGISTRY
from hloba.verify.settings import method_settings

log = logging.getLogger(__name__)


def run_in_own_process(target, args: tuple, output) -> xr.Dataset:
    """Run ``target(*args)``, which writes the netCDF file ``output``, in a spawned process and
    return that file loaded: one run's freed memory cannot hide another's peak (benchmarks and
    experiments that compare runs). ``RuntimeError`` naming the exit code when the process fails."""
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"exit {proc.exitcode}")
    with xr.open_dataset(output) as ds:
        return ds.load()


def run_method(name: str, year: int, days: float, inputs: StreamInputs, output, cfg: StreamConfig, *,
               spinup_days: float, run: RunSettings = RunSettings(), feedback_output=None) -> xr.Dataset:
    """Run one compared method from ``spinup_days`` before Jan 1 of ``year`` for ``days`` and
    write its analyses, per-stage seconds and analysis memory to ``output`` (and, with
    ``feedback_output``, the feedback table of the compared period as parquet)."""
    cfg = method_settings(name, cfg.with_(spinup_days=spinup_days))
    models = method_models(cfg, inputs, run.device)
    interval = models.interval
    times, first = cycle_times(year, interval, cfg.spinup_days, models.phase)
    n_days = int(round(pd.Timedelta(days=days) / interval))
    if n_days < 1 or first + n_days > len(times):
        raise ValueError(f"comparison.days {days} must cover at least one cycle and stay inside {year}")
    result = run_period(year, models, inputs.observations, cfg, days, run, keep_analyses=True)
    cycles = first + n_days
    seconds = {k: v / cycles for k, v in result.timers.items()}
    memory = result.diagnostic("analysis_memory_mb")[:cycles]
    iterations = result.diagnostic("iterations")[first:cycles].astype(np.int64)
    grid = models.grid
    # the cycles where latent 4D-Var's windows start (the same times for every method)
    window = window_cycles(cfg.window_hours, interval)
    window_start = (np.arange(first, cycles) % window) == 0
    ds = xr.Dataset(
        {"analysis": (("time", "channel", "latitude", "longitude"), result.analyses.numpy(),
                      {"long_name": f"model-space analysis of method {name}"}),
         "iterations": (("time",), iterations),
         "window_start": (("time",), window_start.astype(np.int8),
                          {"long_name": "first cycle of a latent 4D-Var window (window_hours)"})},
        coords={"time": times[first:cycles], **channel_coords(models.channels),
                "latitude": np.asarray(grid.latitude), "longitude": np.asarray(grid.longitude)},
        attrs={"method": name, "year": year, "days": days, "spinup_days": spinup_days, "hloba_version": __version__,
               **{f"seconds_per_cycle_{k}": v for k, v in seconds.items()},
               "analysis_seconds_per_cycle": sum(v for k, v in seconds.items() if k != "forecast"),
               "analysis_peak_memory_mib": float(np.nanmax(memory)) if np.isfinite(memory).any() else float("nan"),
               "device": str(models.device), "o2lnet_precision": models.o2lnet_precision,
               "autoencoder_precision": models.autoencoder_precision,
               "uses_later_observations": int(REGISTRY[cfg.method].reads_later_observations(models))},
    )
    write_netcdf(ds, output)
    if feedback_output is not None:
        fb = feedback_table(result, year)
        fb = fb[pd.DatetimeIndex(fb["time"]) < times[cycles - 1] + interval / 2]
        with atomic_path(feedback_output) as tmp:
            fb.to_parquet(tmp, index=False)
    log.info("%s: %d cycles, analysis %.1f ms per cycle, peak analysis memory %.1f MiB", name, cycles,
             1e3 * ds.attrs["analysis_seconds_per_cycle"], ds.attrs["analysis_peak_memory_mib"])
    return ds


def scorecard(runs: dict[str, xr.Dataset], reference_paths, anomaly_std: np.ndarray) -> pd.DataFrame:
    """Per method and channel: area-weighted analysis RMSE (physical and in anomaly std) over all
    compared cycles and over the cycles where latent 4D-Var's windows start (``*_window_start``),
    whether the method's analyses read later observations (a smoother), and the ratios to the
    free run's RMSE (when ``free`` was compared) and to ``l4dvar``'s."""
    first = next(iter(runs.values()))
    grid = Grid(first["latitude"].values, first["longitude"].values)
    channels = list(first["channel"].values)
    times = pd.DatetimeIndex(first["time"].values)
    truth = truth_on(reference_paths, times, channels_from_coords(first))
    rows = []
    for name, ds in runs.items():
        if list(ds["channel"].values) != channels or not pd.DatetimeIndex(ds["time"].values).equals(times):
            raise ValueError(f"method {name} was run on other times or channels than {next(iter(runs))}: rerun it")
        analysis = torch.as_tensor(ds["analysis"].values)
        err = rmse(analysis, truth, grid.area_weights())
        starts = torch.as_tensor(ds["window_start"].values.astype(bool)) if "window_start" in ds else None
        err_start = rmse(analysis[starts], truth[starts], grid.area_weights()) if starts is not None and bool(
            starts.any()) else torch.full_like(err, float("nan"))
        for c, e, e0, s in zip(channels, err.numpy(), err_start.numpy(), anomaly_std):
            rows.append({"method": name, "channel": c, "rmse": e, "rmse_normalised": e / s,
                         "rmse_window_start": e0, "rmse_window_start_normalised": e0 / s,
                         "uses_later_observations": bool(ds.attrs.get("uses_later_observations", 0))})
    df = pd.DataFrame(rows)
    for ref in ("free", "l4dvar"):
        if ref in runs:
            base = df[df["method"] == ref].set_index("channel")
            df[f"ratio_to_{ref}"] = df["rmse"] / df["channel"].map(base["rmse"])
            df[f"ratio_to_{ref}_window_start"] = df["rmse_window_start"] / df["channel"].map(base["rmse_window_start"])
    return df


def _per_analysis(iterations: np.ndarray) -> float:
    done = iterations[iterations > 0]
    return float(done.mean()) if done.size else 0.0


def cost_table(runs: dict[str, xr.Dataset]) -> pd.DataFrame:
    """Per method: analysis seconds and peak analysis memory per cycle, and their ratios to ``l4dvar``."""
    df = pd.DataFrame([{
        "method": name, "analysis_ms_per_cycle": 1e3 * ds.attrs["analysis_seconds_per_cycle"],
        "forecast_ms_per_cycle": 1e3 * ds.attrs["seconds_per_cycle_forecast"],
        "analysis_peak_memory_mib": ds.attrs["analysis_peak_memory_mib"],
        "mean_iterations": float(ds["iterations"].mean()),
        # latent 3D/4D-Var: cost-and-gradient evaluations per minimisation (its windows' first cycles)
        "cost_evaluations_per_analysis": _per_analysis(ds["iterations"].values), "device": ds.attrs["device"],
    } for name, ds in runs.items()])
    if "l4dvar" in runs:
        ref = df.set_index("method").loc["l4dvar"]
        df["time_ratio_to_l4dvar"] = df["analysis_ms_per_cycle"] / ref["analysis_ms_per_cycle"]
        df["memory_ratio_to_l4dvar"] = df["analysis_peak_memory_mib"] / ref["analysis_peak_memory_mib"]
    return df


def plot_scorecard(card: pd.DataFrame, path) -> None:
    """Analysis RMSE per channel relative to the free run (or normalised RMSE without one)."""
    from hloba.plotting import plt, save_figure

    column = "ratio_to_free" if "ratio_to_free" in card else "rmse_normalised"
    table = card.pivot(index="method", columns="channel", values=column)
    table = table.loc[[m for m in card["method"].unique() if m != "free"] or list(table.index)]
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 2.5, 0.55 * table.shape[0] + 1.8))
    im = ax.imshow(table.values, cmap="viridis_r", aspect="auto", vmin=0.0, vmax=max(1.0, float(np.nanmax(table.values))))
    for (i, j), v in np.ndenumerate(table.values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v > 0.5 * im.get_clim()[1] else "k", fontsize=8)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index)
    title = "analysis RMSE / free-run RMSE" if column == "ratio_to_free" else "analysis RMSE / anomaly std"
    ax.set_title(f"{title} (lower is better)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, path)


def compare_methods(run_paths, reference_paths, normalization, scorecard_path, cost_path, figure_path) -> pd.DataFrame:
    """Rule compare_methods: scorecard CSV and figure, and the cost table, of the compared runs."""
    runs = {}
    for p in run_paths:
        with xr.open_dataset(p) as ds:
            runs[ds.attrs["method"]] = ds.load()
    first = next(iter(runs.values()))
    with xr.open_dataset(normalization) as norm:
        std = norm["anomaly_std"].sel(channel=list(first["channel"].values)).values
    card = scorecard(runs, reference_paths, std)
    cost = cost_table(runs)
    with atomic_path(scorecard_path) as tmp:
        card.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(cost_path) as tmp:
        cost.to_csv(tmp, index=False, float_format="%.6g")
    plot_scorecard(card, figure_path)
    log.info("analysis RMSE (anomaly std):\n%s",
             card.pivot(index="channel", columns="method", values="rmse_normalised").round(3).to_string())
    log.info("cost:\n%s", cost.round(4).to_string())
    return card
