"""One year of HLOBA assimilation as an independent, resumable stream (DESIGN sections 2 and 3).

``run_stream`` cycles from ``spinup_days`` before Jan 1 (cold start) to the last cycle of Dec 31:

1. background ``x_b = M(x_a)``, with the running lagged members ``M^k(x_a(t - k dt))``, k = 1..K,
   advanced together in one batch;
2. quality control in observation space: first-guess check of every observation against
   ``H(x_b)`` (rejections are flagged in the feedback, never dropped silently);
3. O2Lnet on the accepted observations -> ``z_o, sigma_o2``;
4. hybrid ``sigma_b2 = lambda (a sigma_clim2 + b s2)`` in update coordinates (optionally the
   decorrelating rotation), with ``lambda`` adapted online from innovation statistics;
5. element-wise update, decode ``x_a = D(z_a)``, next forecast.

The baselines of the comparison (``method``) share every step but the analysis: ``free`` (none),
``l3dvar`` (latent 3D-Var), ``l4dvar`` (latent strong-constraint 4D-Var over windows of
``window_hours`` (whole cycle steps of the data): the analysis at each window's first cycle fits the window's
observations through the forecast model, the other cycles of the window are its forecast
trajectory) and ``oi`` (model-space optimal interpolation, :mod:`hloba.assim.oi`).

A cold start from climatology has no background information worth weighing: the first cycle
takes ``sigma_b2 = inf`` (the analysis is the observation estimate). Until ``K`` lagged members
exist, ``s2`` is the calibration's time-mean ensemble variance.

State is checkpointed atomically every ``checkpoint_every`` cycles; a rerun with the same inputs
continues from the last checkpoint and gives exactly the outputs of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from hloba import __version__
from hloba.assim.cycle import (
    UpdateSpace,
    ensemble_variance,
    inflation_estimate,
    mode_groups,
    observation_background_variance,
    smooth_inflation,
)
from hloba.assim.update import correlated_update, first_guess_check, hybrid_update
from hloba.assim.oi import StaticCovariance, optimal_interpolation
from hloba.assim.qc_alarm import RejectionAlarm
from hloba.assim.var import latent_var, window_observer
from hloba.channels import Channel, stack_channels
from hloba.forecast import build_forecast_model, check_forecast_model
from hloba.grid import Grid
from hloba.io import atomic_path, write_netcdf
from hloba.models.checkpoint import channels_from_state, check_models_agree, grid_from_state
from hloba.models.data import resolve_device
from hloba.models.normalizer import Normalizer
from hloba.models.o2lnet import render_observations
from hloba.models.train_autoencoder import load_autoencoder
from hloba.models.train_o2lnet import load_o2lnet
from hloba.obs.gridded import grid_observations, nearest_cycle
from hloba.obs.operator import apply_operator, interpolation_weights
from hloba.obs.schema import OBS_COLUMNS, load_observations
from hloba.obs.withhold import QC_WITHHELD, withheld_mask
from hloba.timeaxis import year_times

log = logging.getLogger(__name__)

METHODS = ("hloba", "free", "l3dvar", "l4dvar", "oi")
ASSIMILATING = ("hloba", "l3dvar", "l4dvar", "oi")
VARIATIONAL = ("l3dvar", "l4dvar")
QC_USED, QC_FIRST_GUESS, QC_NOT_ASSIMILATED = 0, 1, 2
STAGES = ("forecast", "encode", "qc", "o2lnet", "update", "decode")
DIAGNOSTICS = (
    "n_obs", "n_used", "n_rejected", "innovation_mean", "innovation_var", "obs_innovation_rms",
    "increment_rms", "inflation", "sigma_b2_mean", "sigma_o2_mean", "sigma_a2_mean", "members", "iterations",
    "analysis_memory_mb",
)


class StreamError(RuntimeError):
    """The stream cannot go on (non-finite forecast, inputs that do not fit)."""


@dataclass(frozen=True)
class StreamConfig:
    """The config's ``assimilation`` section."""

    method: str = "hloba"
    spinup_days: float = 30.0
    qc_threshold: float = 4.0  # kappa of the first-guess check
    max_rejected_fraction: float = 0.5  # of a channel's observations over a day, else the stream stops
    withhold_fraction: float = 0.0  # of stations/reports kept out of assimilation (evaluation.withhold)
    withhold_seed: int = 0
    rotation: bool = True  # update in the calibration's decorrelating coordinates
    adaptive_inflation: bool = True
    correlated_gain: bool = False  # gain of correlated errors (else: only the variance accounts for them)
    inflation_groups: int = 32  # bands of update coordinates with their own inflation
    inflation_smoothing: float = 0.05
    inflation_min: float = 0.5
    inflation_max: float = 1.0e4
    checkpoint_every: int = 120  # cycles
    log_every: int = 120  # cycles
    device: str = "auto"
    cold_start: str = "climatology"  # or a netCDF file with one state of the data's channels
    tuning_days: float = 60.0  # length of the tuning streams on the calibration year (0: no tuning)
    var_tolerance: float = 1e-3  # l3dvar/l4dvar: relative gradient tolerance
    var_max_iterations: int = 50  # l3dvar/l4dvar: cost evaluations per analysis
    var_b_scale: float = 1.0  # l3dvar/l4dvar: B = var_b_scale * sigma_clim2
    window_hours: float = 24.0  # l4dvar: length of the assimilation window (a whole number of cycle steps)
    oi_b_scale: float = 1.0  # oi: B = oi_b_scale * the NMC covariance (rule oi_covariance)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"assimilation.method {self.method!r} is not one of {METHODS}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("assimilation.checkpoint_every and log_every must be >= 1")
        if self.window_hours <= 0 or self.var_b_scale <= 0 or self.oi_b_scale <= 0:
            raise ValueError("assimilation.window_hours, var_b_scale and oi_b_scale must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StreamModels:
    """Everything the cycle needs, on one device."""

    autoencoder: torch.nn.Module
    o2lnet: torch.nn.Module | None
    normalizer: Normalizer
    forecast: object
    channels: list[Channel]
    grid: Grid
    space: UpdateSpace
    sigma_clim2: torch.Tensor  # (n,) in update coordinates
    s2_fallback: torch.Tensor  # (n,) in update coordinates
    hybrid_a: float
    hybrid_b: float
    members: int
    model_error_var: torch.Tensor  # (C,) lead-1 forecast error variance, physical units
    device: torch.device
    hashes: dict = field(default_factory=dict)
    # from the tuning stream on the calibration year (rule tune_stream), per inflation group
    inflation_correction: torch.Tensor | None = None
    error_correlation: torch.Tensor | None = None  # of background and O2Lnet errors
    analysis_variance_factor: torch.Tensor | None = None
    oi: StaticCovariance | None = None  # method oi: the static model-space covariance
    phase: pd.Timedelta = pd.Timedelta(0)  # cycle times' offset from 00 UTC (the data's, from the calibration)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_stream_models(autoencoder_path, o2lnet_path, calibration_path, forecast: dict, interval: pd.Timedelta,
                       world_qg: dict | None = None, emulator_path=None, device: str = "auto",
                       rotation: bool = True, oi_covariance=None, oi_b_scale: float = 1.0) -> StreamModels:
    """Load the trained networks and the calibration; build the forecast model; check they fit.

    ``oi_covariance``: rule oi_covariance's file (only the ``oi`` method needs it)."""
    dev = resolve_device(device)
    ae, payload = load_autoencoder(autoencoder_path, dev)
    ae.requires_grad_(False)  # latent 3D-Var differentiates with respect to z only
    channels, grid = channels_from_state(payload["channels"]), grid_from_state(payload["grid"])
    o2l, o2l_payload = load_o2lnet(o2lnet_path, dev)
    check_models_agree(payload, autoencoder_path, o2l_payload, o2lnet_path)
    with xr.open_dataset(calibration_path) as cal:
        cal = cal.load()
    n = ae.cfg.n_latent if hasattr(ae.cfg, "n_latent") else int(cal.sizes["latent"])
    if int(cal.sizes["latent"]) != n:
        raise StreamError(f"{calibration_path} has {cal.sizes['latent']} latent elements, the autoencoder {n}: "
                          "rerun generate_lagged_ensemble")
    names = [c.name for c in channels]
    if list(cal["channel"].values) != names:
        raise StreamError(f"{calibration_path} channels {list(cal['channel'].values)} differ from the models' {names}")
    if rotation:
        space = UpdateSpace(torch.as_tensor(cal["rotation"].values, dtype=torch.float32))
        clim = torch.as_tensor(cal["sigma_clim2_rotated"].values, dtype=torch.float32)
        a, b = float(cal.attrs["hybrid_a_rotated"]), float(cal.attrs["hybrid_b_rotated"])
    else:
        space = UpdateSpace(None)
        clim = torch.as_tensor(cal["sigma_clim2"].values, dtype=torch.float32)
        a, b = float(cal.attrs["hybrid_a"]), float(cal.attrs["hybrid_b"])
    s2_mean = space.forward_variance(torch.as_tensor(cal["s2_mean"].values, dtype=torch.float32)[None])[0]
    model_var = torch.as_tensor(cal["lead_rmse"].values[0], dtype=torch.float64).square()
    model = build_forecast_model(forecast, channels, interval, world=world_qg, emulator_path=emulator_path)
    if model.interval != interval:
        raise StreamError(f"forecast model step {model.interval} differs from the cycle interval {interval}")
    if hasattr(model, "to"):
        model = model.to(dev)
    hashes = {f"{k}_sha256": file_sha256(p) for k, p in
              (("autoencoder", autoencoder_path), ("o2lnet", o2lnet_path), ("calibration", calibration_path),
               ("emulator", emulator_path), ("oi_covariance", oi_covariance)) if p}
    oi = None
    if oi_covariance:
        with xr.open_dataset(oi_covariance) as ds:
            if list(ds["channel"].values) != names:
                raise StreamError(f"{oi_covariance} channels {list(ds['channel'].values)} differ from the models' "
                                  f"{names}: rerun rule oi_covariance")
            oi = StaticCovariance.from_dataset(ds.load(), grid, dev, oi_b_scale)
    return StreamModels(
        ae, o2l, Normalizer.from_state(payload["normalizer"]), model, channels, grid, space.to(dev),
        clim.to(dev), s2_mean.to(dev), a, b, int(cal.attrs["members"]), model_var.to(dev), dev, hashes, oi=oi,
        phase=pd.Timedelta(hours=float(cal.attrs.get("cycle_phase_hours", 0.0))),
    )


def method_models(cfg: StreamConfig, autoencoder, o2lnet, calibration, forecast: dict, interval: pd.Timedelta,
                  world_qg: dict | None = None, emulator=None, tuning=None, oi_covariance=None) -> StreamModels:
    """The models a stream of ``cfg.method`` needs: the rotation and the tuning file for ``hloba``,
    the static covariance for ``oi``."""
    models = load_stream_models(autoencoder, o2lnet, calibration, forecast, interval, world_qg, emulator,
                                cfg.device, cfg.rotation and cfg.method == "hloba",
                                oi_covariance if cfg.method == "oi" else None, cfg.oi_b_scale)
    if tuning and cfg.method == "hloba":
        from hloba.assim.tuning import apply_tuning

        apply_tuning(models, tuning)
    return models


def window_cycles(window_hours: float, interval: pd.Timedelta) -> int:
    """Cycles in a window of ``window_hours`` (``assimilation.window_hours``) at the data's step:
    a window shorter than one step, or not a whole number of steps, is an error naming both."""
    n = pd.Timedelta(hours=window_hours) / interval
    if n < 1 or abs(n - round(n)) > 1e-9:
        raise StreamError(f"assimilation.window_hours {window_hours:g} is not a whole number (>= 1) of the data's "
                          f"{interval / pd.Timedelta(hours=1):g}-hour steps: give a multiple of the step")
    return int(round(n))


def cycle_times(year: int, interval: pd.Timedelta, spinup_days: float,
                phase: pd.Timedelta = pd.Timedelta(0)) -> tuple[pd.DatetimeIndex, int]:
    """All cycle times of the stream and the index of the first cycle of ``year`` (Jan 1 at
    ``phase`` after 00 UTC: the data's own phase, e.g. 12 h for daily data at 12 UTC)."""
    times = year_times(year, interval, phase)
    n_spin = int(math.ceil(pd.Timedelta(days=spinup_days) / interval))
    return pd.date_range(times[0] - n_spin * interval, times[-1], freq=interval), n_spin


@dataclass
class StreamObservations:
    """The stream's observations, sorted by cycle; ``table.iloc[offsets[k]:offsets[k + 1]]`` is cycle k."""

    table: pd.DataFrame
    offsets: np.ndarray
    channel: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    value_std: torch.Tensor  # standardised anomaly (O2Lnet input)
    value: torch.Tensor  # physical
    r2: torch.Tensor  # observation error variance, physical
    weights: object  # InterpolationWeights
    withheld: torch.Tensor  # bool: kept out of assimilation (evaluation.withhold), still checked

    def cycle(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))


def prepare_observations(paths, times: pd.DatetimeIndex, channels, grid: Grid, normalizer: Normalizer,
                         device, withhold_fraction: float = 0.0, withhold_seed: int = 0) -> StreamObservations:
    """Read, validate and assign the observations of the stream's cycles (nearest cycle, +- dt/2)."""
    interval = times[1] - times[0]
    df = load_observations(paths, channels, grid, times[0] - interval / 2, times[-1] + interval / 2)
    gridded = grid_observations(df, times, grid, normalizer)
    # grid_observations keeps and orders rows by cycle with a stable sort: the same order here.
    cyc, keep = nearest_cycle(times, df["time"])
    table = df[keep].iloc[np.argsort(cyc[keep], kind="stable")].reset_index(drop=True)
    if len(table) != len(gridded.value):
        raise StreamError("observation bookkeeping mismatch between the table and the gridded observations")
    channel = table["channel"].to_numpy(np.int64)
    w = interpolation_weights(grid, channel, table["latitude"].to_numpy(float), table["longitude"].to_numpy(float))
    return StreamObservations(
        table, gridded.offsets.numpy(), gridded.channel.to(device), gridded.row.to(device), gridded.col.to(device),
        gridded.value.to(device), torch.as_tensor(np.array(table["value"].to_numpy(float)), device=device),
        torch.as_tensor(table["error_std"].to_numpy(float) ** 2, device=device), w.to(device),
        torch.as_tensor(withheld_mask(table, withhold_fraction, withhold_seed), device=device),
    )


def cold_start_state(cold_start: str, time: pd.Timestamp, channels, grid: Grid, normalizer: Normalizer) -> torch.Tensor:
    """``(1, C, ny, nx)`` physical state: the climatology at ``time``, or the state file's time nearest to it."""
    if cold_start == "climatology":
        return normalizer.climatology([time]).double()
    path = Path(cold_start)
    if not path.exists():
        raise StreamError(f"assimilation.cold_start {cold_start!r}: no such file (use 'climatology' or a netCDF state file)")
    with xr.open_dataset(path) as ds:
        if "time" in ds.dims:
            ds = ds.sel(time=[time], method="nearest")
        else:
            ds = ds.expand_dims("time")
        if Grid.from_dataset(ds).shape != grid.shape:
            raise StreamError(f"cold-start file {path} has grid {Grid.from_dataset(ds).shape}, the models {grid.shape}")
        try:
            x = stack_channels(ds.load(), channels)
        except KeyError as err:
            raise StreamError(f"cold-start file {path} lacks {err}: it must hold every channel of the models") from None
    return torch.from_numpy(x.astype(np.float64))


class _Timers:
    def __init__(self, device: torch.device) -> None:
        self.total = dict.fromkeys(STAGES, 0.0)
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._t = 0.0
        self.memory = AnalysisMemory(device)

    def start(self) -> None:
        self.sync()
        self._t = _time.perf_counter()

    def lap(self, stage: str) -> None:
        self.sync()
        now = _time.perf_counter()
        self.total[stage] += now - self._t
        self._t = now


class AnalysisMemory:
    """Peak memory of one analysis above what was held before it (MiB).

    CUDA: the allocator's peak. CPU (Linux): the resident-set high-water mark, reset through
    ``/proc/self/clear_refs`` before each analysis; NaN where the kernel does not offer that.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._base = 0.0

    @staticmethod
    def _status_kb(key: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return float(line.split()[1])
        raise OSError(key)

    def start(self) -> None:
        try:
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
                self._base = torch.cuda.memory_allocated() / 2**20
            else:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self._base = self._status_kb("VmRSS") / 1024
        except OSError:
            self._base = float("nan")

    def peak(self) -> float:
        try:
            if self.cuda:
                return torch.cuda.max_memory_allocated() / 2**20 - self._base
            return self._status_kb("VmHWM") / 1024 - self._base
        except OSError:
            return float("nan")


def fingerprint(year: int, cfg: StreamConfig, forecast: dict, paths) -> str:
    """Identity of a stream's inputs: a checkpoint is resumed only when this matches."""
    h = hashlib.sha256(json.dumps({"year": year, "config": cfg.to_dict(), "forecast": forecast}, sort_keys=True,
                                  default=str).encode())
    for p in paths:
        if p:
            h.update(file_sha256(p).encode())
    return h.hexdigest()


def _load_resume(path: Path | None, fp: str) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
        log.warning("stream checkpoint %s unreadable (%s): starting from the beginning", path, type(err).__name__)
        return None
    if state.get("fingerprint") != fp:
        log.warning("stream checkpoint %s is from other inputs or settings: starting from the beginning", path)
        return None
    return state


def run_stream(
    year: int, models: StreamModels, obs_paths, cfg: StreamConfig, interval: pd.Timedelta, *,
    resume_path=None, fingerprint_value: str = "", progress: bool = True, max_cycles: int | None = None,
    keep_analyses: bool = False,
) -> dict:
    """Cycle one year; returns arrays and tables for :func:`write_stream_outputs`.

    ``resume_path``: where the stream keeps its state checkpoint (deleted by the caller after the
    outputs are written). ``max_cycles`` stops early (benchmarks, the method comparison).
    ``keep_analyses``: also return the model-space analyses ``x_a`` of the year's cycles run here
    (``analyses``, float32 ``(cycle, C, ny, nx)``; the comparison scores them, whatever the method).
    """
    m, dev = models, models.device
    times, first = cycle_times(year, interval, cfg.spinup_days, m.phase)
    n_cycles, n_lat = len(times), int(m.sigma_clim2.numel())
    obs = prepare_observations(obs_paths, times, m.channels, m.grid, m.normalizer, dev, cfg.withhold_fraction,
                               cfg.withhold_seed)
    log.info("stream %d (%s): %d cycles from %s (%d spin-up), %d observations, device %s",
             year, cfg.method, n_cycles, times[0], first, len(obs.table), dev)
    if not len(obs.table):
        log.warning("stream %d: no observations at all; the analysis is a free run", year)
    K = m.members if cfg.method == "hloba" else 1
    groups = mode_groups(n_lat, cfg.inflation_groups, dev)
    n_groups = int(groups.max()) + 1
    stop = n_cycles if max_cycles is None else min(n_cycles, max_cycles)
    correction = _per_group(m.inflation_correction, n_groups, "inflation_correction", dev)
    alpha = _per_group(m.analysis_variance_factor, n_groups, "analysis_variance_factor", dev)[groups]
    rho = None if m.error_correlation is None else (
        _per_group(m.error_correlation, n_groups, "error_correlation", dev)[groups].float())
    resume_path = Path(resume_path) if resume_path else None
    state = _load_resume(resume_path, fingerprint_value)
    out_names = ("z_b", "z_o", "z_a", "sigma_b2", "sigma_o2", "sigma_a2", "sigma_b2_update", "sigma_a2_update")
    if state is None:
        k0 = 0
        members = cold_start_state(cfg.cold_start, times[0], m.channels, m.grid, m.normalizer).to(dev)
        check_forecast_model(m.forecast, m.channels, members, times[:1])
        inflation = torch.ones(n_groups, dtype=torch.float64, device=dev)
        b2_channel = m.model_error_var.clone()
        out = {k: torch.full((n_cycles, n_lat), float("nan")) for k in out_names}
        diag = torch.full((n_cycles, len(DIAGNOSTICS)), float("nan"), dtype=torch.float64)
        fb_b = torch.full((len(obs.table),), float("nan"), dtype=torch.float64)
        fb_a = fb_b.clone()
        fb_qc = torch.full((len(obs.table),), QC_NOT_ASSIMILATED, dtype=torch.int8)
        timers = dict.fromkeys(STAGES, 0.0)
    else:
        k0 = int(state["cycle"])
        members = state["members"].to(dev)
        inflation = state["inflation"].to(dev)
        b2_channel = state["b2_channel"].to(dev)
        out = {k: state[k] for k in out_names}
        diag, fb_b, fb_a, fb_qc = state["diagnostics"], state["background"], state["analysis"], state["qc"]
        timers = dict(state["timers"])
        if "generator" in state and hasattr(m.forecast, "generator"):
            m.forecast.generator.set_state(state["generator"])
        log.info("stream %d: resuming from %s at cycle %d (%s)", year, resume_path, k0, times[k0])
    clock = _Timers(dev)
    clock.total = timers
    ae, o2l, norm = m.autoencoder, m.o2lnet, m.normalizer
    C, (ny, nx) = len(m.channels), m.grid.shape
    cold = cfg.cold_start == "climatology"
    running = []  # squared obs-space innovations (normalised) since the last log line
    window = window_cycles(cfg.window_hours, interval) if cfg.method == "l4dvar" else 1
    window_reject: dict[int, torch.Tensor] = {}  # l4dvar: QC of the window's later cycles
    analyses = {}
    if cfg.method == "oi" and m.oi is None:
        raise StreamError("method oi needs the static covariance of rule oi_covariance (oi_covariance=...)")
    # a free run's background drifts away by design: only streams that assimilate are judged
    alarm = RejectionAlarm([c.name for c in m.channels], cfg.max_rejected_fraction if cfg.method in ASSIMILATING
                           else float("inf"), judge_from=times[first])
    bar = tqdm(range(k0, stop), desc=f"assimilate {year}", disable=not progress, mininterval=5.0)
    for k in bar:
        t = times[k]
        clock.start()
        clock.memory.start()
        with torch.no_grad():
            zs = ae.encode(norm.standardize(members, [t] * members.shape[0]))  # (m, n)
            z_b = zs[:1]
            clock.lap("encode")
            s = obs.cycle(k)
            x_b = members[:1]
            ch = obs.channel[s]
            w_k = obs.weights.select(s)
            hx_b = apply_operator(x_b, w_k)[0]
            b2_obs = b2_channel[ch]
            from_window = k in window_reject
            if from_window:  # decided at the start of this l4dvar window, against its trajectory
                reject = window_reject.pop(k)
            else:
                reject = first_guess_check(obs.value[s], hx_b, obs.r2[s], b2_obs, cfg.qc_threshold)
            if cold and k == 0:
                reject = torch.zeros_like(reject)  # no background to check against
            ok = ~reject & ~obs.withheld[s]  # withheld observations are checked, never used
            if not from_window:  # the alarm judges checks against each cycle's own background
                alarm.add(t, ch, reject, obs.value[s] - hx_b, obs.r2[s] + b2_obs)
            if cfg.adaptive_inflation and not (cold and k == 0):
                b2_channel = observation_background_variance(
                    b2_channel, ch[ok], (obs.value[s] - hx_b)[ok], obs.r2[s][ok], cfg.inflation_smoothing,
                    0.01 * m.model_error_var)
            clock.lap("qc")
            n_used = int(ok.sum())
            if cfg.method != "hloba" or n_used == 0:
                z_o = torch.zeros_like(z_b)
                sigma_o2 = torch.full_like(z_b, float("inf"))
            else:
                rendered = render_observations(
                    torch.zeros(n_used, dtype=torch.long, device=dev), ch[ok], obs.row[s][ok], obs.col[s][ok],
                    obs.value_std[s][ok], 1, C, ny, nx,
                )
                z_o, logvar = o2l(rendered)
                sigma_o2 = logvar.exp()
            clock.lap("o2lnet")
            w_b, w_o = m.space.forward(z_b), m.space.forward(z_o)
            so2_w = m.space.forward_variance(sigma_o2) if n_used else sigma_o2
            s2_w = ensemble_variance(m.space.forward(zs)) if zs.shape[0] >= max(K, 2) else m.s2_fallback[None]
            sb2_raw = m.hybrid_a * m.sigma_clim2[None] + m.hybrid_b * s2_w
            lam = (inflation * correction)[groups].to(sb2_raw.dtype)
            sb2_w = torch.full_like(sb2_raw, float("inf")) if (cold and k == 0) else lam * sb2_raw
            if rho is None:
                w_a, sa2_w = hybrid_update(w_b, sb2_w, w_o, so2_w)
            else:
                w_a, sa2_w = correlated_update(w_b, sb2_w, w_o, so2_w, rho, cfg.correlated_gain)
            if cfg.adaptive_inflation and cfg.method == "hloba" and not (cold and k == 0) and n_used:
                est = inflation_estimate(w_o - w_b, sb2_raw, so2_w, groups, n_groups)
                inflation = smooth_inflation(inflation, est, cfg.inflation_smoothing, cfg.inflation_min,
                                             cfg.inflation_max)
            z_a = m.space.backward(w_a) if cfg.method == "hloba" else z_b
            iterations, x_a, decode = 0, None, cfg.method == "hloba"
            if cfg.method in VARIATIONAL or cfg.method == "oi":
                sb2_w = cfg.var_b_scale * m.sigma_clim2[None].clone()
                sa2_w = sb2_w.clone()  # no analysis variance from these methods: the static one is reported
            if cfg.method == "l3dvar" and n_used:
                w_ok = w_k.select(ok)
                var = latent_var(
                    z_b.double(), sb2_w.double(),
                    lambda z: apply_operator(norm.destandardize(ae.decode(z.float()), [t]), w_ok)[0],
                    obs.value[s][ok], obs.r2[s][ok], cfg.var_tolerance, cfg.var_max_iterations,
                )
                z_a, iterations, decode = var.z_a.float(), var.iterations, True
            elif cfg.method == "l4dvar" and k % window == 0:
                var, window_reject = _l4dvar_window(k, min(k + window, n_cycles), times, x_b, z_b, ok, w_k, s,
                                                    sb2_w, b2_channel, m, obs, cfg, cold)
                if var is not None:
                    z_a, iterations, decode = var.z_a.float(), var.iterations, True
            elif cfg.method == "oi" and n_used:
                x_a = optimal_interpolation(x_b[0], obs.value[s][ok], obs.r2[s][ok], w_k.select(ok), m.oi,
                                            hx_b[ok])[None]
            clock.lap("update")
            if x_a is not None:  # oi: the analysis is in model space; its latent record is E(x_a)
                z_a = ae.encode(norm.standardize(x_a, [t]))
            elif decode:
                x_a = norm.destandardize(ae.decode(z_a), [t])
            else:  # no analysis this cycle (free run, or inside an l4dvar window): the forecast goes on
                x_a = x_b
            hx_a = apply_operator(x_a, w_k)[0]
            clock.lap("decode")
            analysis_memory = clock.memory.peak()
            if keep_analyses and k >= first:
                analyses[k] = x_a[0].float().cpu()
            nxt = torch.cat((x_a, members[: K - 1])) if K > 1 else x_a
            members = m.forecast.step(nxt, [t] * nxt.shape[0], 1).double()
            clock.lap("forecast")
        if not bool(torch.isfinite(members).all()):
            where = f"last checkpoint {resume_path} kept" if resume_path and resume_path.exists() else "no checkpoint yet"
            raise StreamError(
                f"stream {year}: the forecast model returned non-finite values in the forecast from {t} "
                f"(cycle {k}); {where}. Fix the forecast model and rerun the same command to resume."
            )
        d = (w_o - w_b)[torch.isfinite(so2_w)]
        out["z_b"][k], out["z_o"][k], out["z_a"][k] = z_b[0].cpu(), z_o[0].cpu(), z_a[0].cpu()
        out["sigma_b2"][k] = m.space.backward_variance(sb2_w)[0].cpu() if not (cold and k == 0) else float("inf")
        out["sigma_o2"][k] = sigma_o2[0].cpu()
        sa2_reported = sa2_w * alpha.to(sa2_w.dtype)
        out["sigma_a2"][k] = m.space.backward_variance(sa2_reported)[0].cpu()
        out["sigma_a2_update"][k] = sa2_reported[0].cpu()
        out["sigma_b2_update"][k] = sb2_w[0].cpu()
        fb_b[s], fb_a[s] = hx_b.cpu(), hx_a.cpu()
        qc = torch.where(reject, QC_FIRST_GUESS, QC_USED if cfg.method in ASSIMILATING else QC_NOT_ASSIMILATED)
        fb_qc[s] = torch.where(obs.withheld[s], QC_WITHHELD, qc).to(torch.int8).cpu()
        innov = ((obs.value[s] - hx_b) / torch.sqrt(obs.r2[s] + b2_obs))[ok]
        running.append(innov.square().cpu())
        fin = torch.isfinite(sb2_w)
        diag[k] = torch.tensor([
            s.stop - s.start, n_used if cfg.method in ASSIMILATING else 0, int(reject.sum()),
            d.mean().item() if d.numel() else float("nan"), d.square().mean().item() if d.numel() else float("nan"),
            innov.square().mean().sqrt().item() if innov.numel() else float("nan"),
            (z_a - z_b).square().mean().sqrt().item(), inflation.log().mean().exp().item(),
            sb2_w[fin].mean().item() if bool(fin.any()) else float("inf"),
            so2_w[torch.isfinite(so2_w)].mean().item() if bool(torch.isfinite(so2_w).any()) else float("inf"),
            sa2_w.mean().item(), zs.shape[0], iterations, analysis_memory,
        ], dtype=torch.float64)
        if (k + 1) % cfg.log_every == 0 or k + 1 == n_cycles:
            r = torch.cat(running) if running else torch.zeros(0, dtype=torch.float64)
            log.info("stream %d cycle %d/%d %s: normalised O-B rms %.3f over %d obs, inflation %.3g..%.3g, "
                     "rejected %d", year, k + 1, n_cycles, t, r.mean().sqrt().item() if r.numel() else float("nan"),
                     r.numel(), inflation.min().item(), inflation.max().item(),
                     int(diag[max(0, k + 1 - cfg.log_every): k + 1, 2].sum()))
            running = []
        if (resume_path is not None and (k + 1) % cfg.checkpoint_every == 0 and (k + 1) % window == 0
                and k + 1 < n_cycles):
            st = {"fingerprint": fingerprint_value, "cycle": k + 1, "members": members.cpu(), "inflation": inflation.cpu(),
                  "b2_channel": b2_channel.cpu(),
                  "diagnostics": diag, "background": fb_b, "analysis": fb_a, "qc": fb_qc, "timers": clock.total,
                  **out}
            if hasattr(m.forecast, "generator"):
                st["generator"] = m.forecast.generator.get_state()
            with atomic_path(resume_path) as tmp:
                torch.save(st, tmp)
    bar.close()
    alarm.check()
    return {"times": times, "first": first, "out": out, "diagnostics": diag, "observations": obs.table,
            "background": fb_b, "analysis": fb_a, "qc": fb_qc, "timers": clock.total, "inflation": inflation,
            "n_cycles_run": stop - k0, "stop": stop,
            "analyses": torch.stack([analyses[k] for k in sorted(analyses)]) if analyses else None}


def _l4dvar_window(k: int, end: int, times, x_b, z_b, ok, w_k, s, sigma_b2, b2_channel, m: StreamModels,
                   obs: StreamObservations, cfg: StreamConfig, cold: bool):
    """Latent 4D-Var over cycles ``k..end-1`` (strong constraint, through the forecast model).

    The later cycles' observations are checked against the background trajectory ``M^j(x_b)``;
    returns the minimisation (``None`` without any used observation) and those QC decisions.
    """
    norm, ae, fc = m.normalizer, m.autoencoder, m.forecast
    operators, ys, r2s, rejects = [], [], [], {}
    x = x_b
    for j in range(k, end):
        sj = s if j == k else obs.cycle(j)
        if j == k:
            keep, wj = ok, w_k
        else:
            x = fc.step(x, [times[j - 1]], 1).double()
            wj = obs.weights.select(sj)
            hx = apply_operator(x, wj)[0]
            reject = first_guess_check(obs.value[sj], hx, obs.r2[sj], b2_channel[obs.channel[sj]], cfg.qc_threshold)
            if cold and j == 0:
                reject = torch.zeros_like(reject)
            rejects[j], keep = reject, ~reject & ~obs.withheld[sj]
        if bool(keep.any()):
            w_used = wj.select(keep)
            operators.append(lambda xx, w_used=w_used: apply_operator(xx, w_used)[0])
            ys.append(obs.value[sj][keep])
            r2s.append(obs.r2[sj][keep])
        else:
            operators.append(None)
    if not ys:
        return None, rejects
    observe = window_observer(
        lambda z: norm.destandardize(ae.decode(z.float()), [times[k]]).double(),
        lambda xx, t: fc.step(xx, [t], 1), operators, times[k:end],
    )
    var = latent_var(z_b.double(), sigma_b2.double(), observe, torch.cat(ys), torch.cat(r2s), cfg.var_tolerance,
                     cfg.var_max_iterations)
    return var, rejects


def _per_group(values: torch.Tensor | None, n_groups: int, name: str, device) -> torch.Tensor:
    if values is None:
        return torch.ones(n_groups, dtype=torch.float64, device=device)
    if values.numel() != n_groups:
        raise StreamError(f"the stream tuning has {values.numel()} {name} groups but assimilation.inflation_groups "
                          f"gives {n_groups}: rerun rule tune_stream")
    return values.to(device, torch.float64)


def latent_dataset(result: dict, year: int, cfg: StreamConfig, models: StreamModels, attrs: dict) -> xr.Dataset:
    """The year's cycles (spin-up left out) as ``results/latent/{year}.nc``."""
    first = result["first"]
    times = result["times"][first:]
    long_names = {
        "z_b": "latent background E(x_b)", "z_o": "latent observation estimate from O2Lnet",
        "z_a": "latent analysis", "sigma_b2": "hybrid background error variance (latent)",
        "sigma_o2": "O2Lnet error variance (latent)", "sigma_a2": "analysis error variance (latent, diagonal)",
        "sigma_a2_update": "analysis error variance in update coordinates (diagonal there)",
        "sigma_b2_update": "background error variance in update coordinates",
    }
    data = {k: (("time", "latent"), v[first:].numpy().astype(np.float32), {"long_name": long_names[k]})
            for k, v in result["out"].items()}
    coords = {"time": times, "latent": np.arange(result["out"]["z_a"].shape[1])}
    if first > 0:  # the spin-up's analyses: the seam with the previous year's archive (rule report_seams)
        data["z_a_spinup"] = (("spinup_time", "latent"), result["out"]["z_a"][:first].numpy().astype(np.float32),
                              {"long_name": "latent analysis of the spin-up cycles (before the year)"})
        coords["spinup_time"] = result["times"][:first]
    if models.space.rotation is not None:
        data["rotation"] = (("latent", "mode"), models.space.rotation.cpu().numpy(),
                            {"long_name": "update coordinates w = V^T z (columns of V)"})
        coords["mode"] = np.arange(models.space.rotation.shape[1])
    total = sum(result["timers"].values()) or 1.0
    return xr.Dataset(data, coords=coords, attrs={
        "title": f"hloba latent analyses {year}", "hloba_version": __version__, "method": cfg.method,
        "year": year, "stream_start": str(result["times"][0]), "spinup_days": cfg.spinup_days,
        "spinup_cycles": first, "cold_start": cfg.cold_start, "rotation": int(models.space.rotation is not None),
        "hybrid_a": models.hybrid_a, "hybrid_b": models.hybrid_b, "members": models.members,
        "final_inflation_geometric_mean": float(result["inflation"].log().mean().exp()), "qc_threshold": cfg.qc_threshold,
        "interval_hours": (result["times"][1] - result["times"][0]) / pd.Timedelta(hours=1),
        **{f"seconds_{k}": v for k, v in result["timers"].items()},
        **{f"fraction_{k}": v / total for k, v in result["timers"].items()},
        **models.hashes, **attrs,
    })


def feedback_table(result: dict, year: int) -> pd.DataFrame:
    """Every observation of the year with ``background = H(x_b)``, ``analysis = H(x_a)`` and ``qc``
    (0 used, 1 rejected by the first-guess check, 2 not assimilated: the ``free`` method, 3 withheld
    for verification: ``evaluation.withhold``)."""
    table = result["observations"]
    t = pd.DatetimeIndex(table["time"])
    inside = np.asarray(t.year == year)
    extra = [c for c in table.columns if c not in OBS_COLUMNS and c != "channel"]  # e.g. gross_error
    fb = table.loc[inside, list(OBS_COLUMNS) + extra].copy()
    fb["background"] = result["background"].numpy()[inside]
    fb["analysis"] = result["analysis"].numpy()[inside]
    fb["qc"] = result["qc"].numpy()[inside]
    return fb.reset_index(drop=True)


def diagnostics_table(result: dict) -> pd.DataFrame:
    df = pd.DataFrame(result["diagnostics"].numpy(), columns=list(DIAGNOSTICS))
    for col in ("n_obs", "n_used", "n_rejected", "members", "iterations"):
        df[col] = df[col].astype(np.int64)
    df.insert(0, "time", result["times"])
    df.insert(1, "spinup", np.arange(len(df)) < result["first"])
    return df


def assimilate_year(
    year: int, autoencoder, o2lnet, calibration, observations, latent_path, feedback_path, diagnostics_path,
    *, assimilation: dict, forecast: dict, interval_hours: float, world_qg: dict | None = None, emulator=None,
    tuning=None, oi_covariance=None, resume_dir=None, progress: bool = True,
) -> dict:
    """Rule assimilate_year: run one stream and write its three outputs atomically.

    ``tuning``: rule tune_stream's file (inflation correction, error correlation, analysis
    variance factor); without it the stream relies on the online inflation alone."""
    cfg = StreamConfig(**assimilation)
    interval = pd.Timedelta(hours=interval_hours)
    models = method_models(cfg, autoencoder, o2lnet, calibration, forecast, interval, world_qg, emulator, tuning,
                           oi_covariance)
    fp = fingerprint(year, cfg, forecast, [autoencoder, o2lnet, calibration, emulator, tuning, oi_covariance,
                                           *observations])
    resume_path = Path(resume_dir) / f"{cfg.method}-{year}.pt" if resume_dir else None
    result = run_stream(year, models, observations, cfg, interval, resume_path=resume_path, fingerprint_value=fp,
                        progress=progress)
    ds = latent_dataset(result, year, cfg, models, {"config_sha256": fp})
    write_netcdf(ds, latent_path)
    fb = feedback_table(result, year)
    with atomic_path(feedback_path) as tmp:
        fb.to_parquet(tmp, index=False)
    diag = diagnostics_table(result)
    with atomic_path(diagnostics_path) as tmp:
        diag.to_csv(tmp, index=False, float_format="%.6g")
    if resume_path is not None and resume_path.exists():
        resume_path.unlink()
    cycles = result["n_cycles_run"]
    total = sum(result["timers"].values())
    log.info("stream %d done: %d cycles run here; %s", year, cycles,
             ", ".join(f"{k} {v / max(len(result['times']), 1) * 1e3:.1f} ms" for k, v in result["timers"].items()))
    year_diag = diag[~diag["spinup"]]
    log.info("stream %d: %d observations, %d rejected by QC (%.2f %%), final inflation (geometric mean) %.3g, %.1f s",
             year, int(year_diag["n_obs"].sum()), int(year_diag["n_rejected"].sum()),
             100 * year_diag["n_rejected"].sum() / max(year_diag["n_obs"].sum(), 1),
             float(result["inflation"].log().mean().exp()), total)
    return result
