"""One year of assimilation as an independent, resumable stream (DESIGN sections 2 and 3).

:func:`run_stream` cycles from ``spinup_days`` before Jan 1 (cold start) to the last cycle of
Dec 31. At each cycle:

1. background ``x_b = M(x_a)``, with the method's running lagged members ``M^k(x_a(t - k dt))``
   (advanced before the analysis, which they do not depend on: :func:`lagged_forecast`), and their
   encodings;
2. quality control in observation space: first-guess check of every observation against
   ``H(x_b)`` (rejections are flagged in the feedback, never dropped silently; withheld
   observations are checked and never used), and the per-channel background variance at the
   observations adapted from O-B;
3. the method's analysis (:mod:`hloba.assim.methods`): latent (decoded here) or model-space
   (encoded here) or none;
4. the next forecast from the analysis.

A cold start from climatology has no background worth weighing: the first cycle's observations are
not checked and the methods treat the background as uninformative. State is checkpointed
atomically every ``checkpoint_every`` cycles; a rerun with the same inputs continues from the last
checkpoint and gives exactly the outputs of an uninterrupted run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from hloba.assim.methods import Analysis, Cycle, Method, build_method
from hloba.assim.models import StreamError, StreamModels
from hloba.assim.observations import cold_start_state, prepare_observations
from hloba.assim.qc_alarm import RejectionAlarm
from hloba.assim.resume import StreamState
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.cycle import latent_variances, observation_background_variance
from hloba.assim.timers import STAGES, StageClock
from hloba.assim.update import first_guess_check
from hloba.forecast import check_forecast_model
from hloba.latent import FIELDS, quantized_kept
from hloba.smoother import SmootherGains, dequantized, smoothing_correction, standardized_increment, with_correction
from hloba.obs.operator import apply_operator
from hloba.obs.withhold import QC_FIRST_GUESS, QC_NOT_ASSIMILATED, QC_USED, QC_WITHHELD
from hloba.timeaxis import cycle_times

log = logging.getLogger(__name__)

DIAGNOSTICS = (
    "n_obs", "n_used", "n_rejected", "innovation_mean", "innovation_var", "obs_innovation_rms",
    "increment_rms", "inflation", "sigma_b2_mean", "sigma_o2_mean", "sigma_a2_mean", "members", "iterations",
    "analysis_memory_mb",
)
COUNTS = ("n_obs", "n_used", "n_rejected", "members", "iterations")
N_REJECTED = DIAGNOSTICS.index("n_rejected")

__all__ = ["DIAGNOSTICS", "STAGES", "StreamError", "StreamResult", "run_stream", "cycle_times"]


@dataclass
class StreamResult:
    """What a stream produced: the latent fields per cycle (spin-up first), named per-cycle
    diagnostics, the feedback of every observation, and the stage timings."""

    times: pd.DatetimeIndex
    first: int  # index of the year's first cycle (the spin-up comes before)
    fields: dict  # FIELDS -> (cycle, n) float32
    diagnostics: torch.Tensor  # (cycle, len(DIAGNOSTICS)); read it with :meth:`diagnostic`
    observations: pd.DataFrame
    background: torch.Tensor  # H(x_b) per observation
    analysis: torch.Tensor  # H(x_a) per observation
    qc: torch.Tensor
    timers: dict
    inflation: torch.Tensor
    n_cycles_run: int  # in this process (less after a resume)
    stop: int  # cycles run in all
    analyses: torch.Tensor | None = None  # (year's cycles run, C, ny, nx) when asked for
    backgrounds: torch.Tensor | None = None  # the same of the backgrounds x_b
    # per channel g where an analysis decodes as D(z_b) + g (D(z_a) - D(z_b)) (hloba.latent.WEIGHTS)
    analysis_weights: torch.Tensor | None = None
    # (cycle, C, ny, nx) int16 multiples of hloba.latent.KEPT_QUANTUM, all cycles: the kept background
    # part added to that (hloba.latent.KEPT)
    kept: torch.Tensor | None = None
    # (cycle, C, ny, nx) int16 in the same quanta: each cycle's standardised increment x_a - x_b, where
    # recorded (keep_increments, or a smoother); the analyses and kept parts above are the smoothed ones
    increments: torch.Tensor | None = None

    def diagnostic(self, name: str) -> np.ndarray:
        """One per-cycle diagnostic (:data:`DIAGNOSTICS`) over all cycles."""
        return self.diagnostics[:, DIAGNOSTICS.index(name)].numpy()

    def diagnostics_table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.diagnostics.numpy(), columns=list(DIAGNOSTICS))
        for col in COUNTS:
            df[col] = df[col].astype(np.int64)
        df.insert(0, "time", self.times)
        df.insert(1, "spinup", np.arange(len(df)) < self.first)
        return df

    def weights_by_channel(self, channels) -> dict | None:
        """``{channel name: g}`` of :attr:`analysis_weights` (for the latent file; ``g`` a list where
        there is a weight per octave band), or ``None``."""
        if self.analysis_weights is None:
            return None
        return {c.name: g for c, g in zip(channels, self.analysis_weights.double().tolist(), strict=True)}


def _check(k: int, time, obs, s: slice, hx_b, cold_first: bool, cfg: StreamConfig, method: Method,
           alarm: RejectionAlarm, b2_channel, floor):
    """First-guess check of cycle ``k``'s observations (or the method's own decisions), the alarm's
    count, and the per-channel background variance adapted from O-B. Returns ``(reject, used,
    b2_channel, normalised)``: ``normalised`` the used observations' O-B over its expected spread."""
    ch, innovation = obs.channel[s], obs.value[s] - hx_b
    spread2 = obs.r2[s] + b2_channel[ch]
    decided = method.qc_decisions(k)
    reject = decided if decided is not None else first_guess_check(
        obs.value[s], hx_b, obs.r2[s], b2_channel[ch], cfg.qc_threshold)
    if cold_first:
        reject = torch.zeros_like(reject)  # no background to check against
    ok = ~reject & ~obs.withheld[s]  # withheld observations are checked, never used
    if decided is None:  # the alarm judges checks against each cycle's own background
        alarm.add(time, ch, reject, innovation, spread2)
    if cfg.adaptive_inflation and not cold_first:
        b2_channel = observation_background_variance(b2_channel, ch[ok], innovation[ok], obs.r2[s][ok],
                                                     cfg.inflation_smoothing, floor)
    return reject, ok, b2_channel, (innovation / torch.sqrt(spread2))[ok]


def _record(state: StreamState, c: Cycle, a: Analysis, z_a, hx_a, reject, normalised, method: Method,
            memory: float) -> None:
    """Write the cycle's latent fields, feedback and diagnostics into ``state``."""
    obs, s = c.obs, c.s
    for name, value in (("z_b", c.z_b), ("z_o", a.z_o), ("z_a", z_a), ("sigma_o2", a.sigma_o2),
                        ("sigma_a2_update", a.sigma_a2_update), ("sigma_b2_update", a.sigma_b2_update)):
        state.fields[name][c.k] = value[0].cpu()
    decided = method.decided_background(c.k)
    state.background[s], state.analysis[s] = (c.hx_b if decided is None else decided).cpu(), hx_a.cpu()
    qc = torch.where(reject, QC_FIRST_GUESS, QC_USED if method.assimilates else QC_NOT_ASSIMILATED)
    state.qc[s] = torch.where(obs.withheld[s], QC_WITHHELD, qc).to(torch.int8).cpu()
    d = a.innovation

    def mean(x):
        return x.mean().item() if x.numel() else float("nan")

    named = {
        "n_obs": s.stop - s.start, "n_used": c.n_used if method.assimilates else 0, "n_rejected": int(reject.sum()),
        "innovation_mean": mean(d), "innovation_var": mean(d.square()),
        "obs_innovation_rms": normalised.square().mean().sqrt().item() if normalised.numel() else float("nan"),
        "increment_rms": (z_a - c.z_b).square().mean().sqrt().item(),
        "inflation": method.inflation.log().mean().exp().item(), "sigma_b2_mean": a.sigma_b2_mean,
        "sigma_o2_mean": a.sigma_o2_mean, "sigma_a2_mean": a.sigma_a2_raw_mean, "members": c.zs.shape[0],
        "iterations": a.iterations, "analysis_memory_mb": memory,
    }
    state.diagnostics[c.k] = torch.tensor([named[n] for n in DIAGNOSTICS], dtype=torch.float64)


def lagged_forecast(forecast, members: torch.Tensor, n_members: int, t) -> torch.Tensor | None:
    """The next cycle's lagged members: ``members[:n_members - 1]`` (the background first) forecast
    one cycle, ``None`` for a method without lagged members. They do not depend on the analysis, so
    the stream runs them before it: ``M(x_b)`` is then at hand for a method that checks the next
    cycle's observations against it (HLOBA's lead), and the analysis's forecast is ``M(x_a)`` alone."""
    if n_members < 2:
        return None
    lagged = members[: n_members - 1]
    return forecast.step(lagged, [t] * lagged.shape[0], 1).double()


def run_stream(
    year: int, models: StreamModels, obs_paths, cfg: StreamConfig, run: RunSettings = RunSettings(), *,
    resume_path=None, fingerprint_value: str = "", max_cycles: int | None = None, keep_analyses: bool = False,
    keep_backgrounds: bool = False, keep_increments: bool = False, recorder=None,
) -> StreamResult:
    """Cycle one year with ``cfg.method``.

    ``resume_path``: where the stream keeps its state checkpoint (deleted by the caller after the
    outputs are written). ``max_cycles`` stops early (tuning, calibration, the comparison).
    ``keep_analyses``, ``keep_backgrounds``: also return the model-space analyses, backgrounds of the
    year's cycles run here. ``keep_increments``: record every cycle's standardised increment
    ``x_a - x_b`` (``StreamResult.increments``), as a stream with a smoother does
    (:func:`stream_smoother`), whose corrections it adds to the kept parts and the analyses at the end.
    ``recorder``: called by a method that records its cycles (HLOBA: :func:`hloba.assim.refine.cycle_recorder`).
    """
    m, dev = models, models.device
    times, first = cycle_times(year, m.interval, cfg.spinup_days, m.phase)
    n_cycles, n_lat = len(times), int(m.sigma_clim2.numel())
    method = build_method(cfg.method, m, cfg)
    method.recorder = recorder
    smoother = stream_smoother(m, cfg, method)
    record_increments = keep_increments or smoother is not None
    stop = n_cycles if max_cycles is None else min(n_cycles, max_cycles)
    # a stream stopped early reads the observations it can use, up to its last window's end (and
    # the later cycles a smoother's last analysis reads)
    last_used = min(n_cycles, -(-stop // method.window) * method.window + method.lead) - 1
    obs = prepare_observations(obs_paths, times, m.channels, m.grid, m.normalizer, dev, cfg.withhold_fraction,
                               cfg.withhold_seed, last=times[last_used])
    log.info("stream %d (%s): %d cycles from %s (%d spin-up), %d observations, device %s",
             year, cfg.method, n_cycles, times[0], first, len(obs.table), dev)
    if not len(obs.table):
        log.warning("stream %d: no observations at all; the analysis is a free run", year)
    resume_path = Path(resume_path) if resume_path else None
    state = StreamState.load(resume_path, fingerprint_value, dev)
    if state is None:
        x0 = cold_start_state(cfg.cold_start, times[0], m.channels, m.grid, m.normalizer).to(dev)
        check_forecast_model(m.forecast, m.channels, x0, times[:1])
        state = StreamState.fresh(x0, m.model_error_var.clone(), FIELDS, n_cycles, n_lat, len(DIAGNOSTICS),
                                  len(obs.table), dict.fromkeys(STAGES, 0.0), method.state())
    else:
        method.load_state(state.method)
        if state.generator is not None and hasattr(m.forecast, "generator"):
            m.forecast.generator.set_state(state.generator)
        log.info("stream %d: resuming from %s at cycle %d (%s)", year, resume_path, state.cycle, times[state.cycle])
    k0, clock = state.cycle, StageClock(dev, state.timers)
    ae, norm = m.autoencoder, m.normalizer
    cold = cfg.cold_start == "climatology"
    running, analyses, backgrounds = [], {}, {}  # normalised O-B since the last log line; kept states
    # a free run's background drifts away by design: only streams that assimilate are judged
    alarm = RejectionAlarm([c.name for c in m.channels], cfg.max_rejected_fraction if method.assimilates
                           else float("inf"), judge_from=times[first])
    for k in tqdm(range(k0, stop), desc=f"assimilate {year}", disable=not run.progress, mininterval=5.0):
        t, members = times[k], state.members
        clock.start()
        with torch.no_grad():  # the lagged members' forecasts do not depend on this cycle's analysis
            ahead = lagged_forecast(m.forecast, members, method.members, t)
        clock.lap("forecast")
        clock.memory.start()
        with torch.no_grad():
            zs = ae.encode(norm.standardize(members, [t] * members.shape[0]))  # (m, n)
            clock.lap("encode")
            s = obs.cycle(k)
            w_k = obs.weights.select(s)
            x_b, hx_b = members[:1], apply_operator(members[:1], w_k)[0]
            cold_first = cold and k == 0
            reject, ok, state.b2_channel, normalised = _check(k, t, obs, s, hx_b, cold_first, cfg, method,
                                                              alarm, state.b2_channel, 0.01 * m.model_error_var)
            c = Cycle(k, times, zs, x_b, obs, s, ok, w_k, hx_b, state.b2_channel, cold_first, clock.lap, state.qc,
                      None if ahead is None else ahead[:1], state.previous)
            clock.lap("qc")
            a = method.analyse(c)
            clock.lap("update")
            if a.x_a is not None and a.z_a is not None:  # both made by the method (hloba's weighted_state: combined)
                x_a, z_a = a.x_a, a.z_a
            elif a.x_a is not None:  # a model-space analysis: its latent record is E(x_a)
                x_a, z_a = a.x_a, ae.encode(norm.standardize(a.x_a, [t]))
            elif a.z_a is not None:
                x_a, z_a = norm.destandardize(ae.decode(a.z_a), [t]), a.z_a
            else:  # no analysis this cycle (free run, or inside a 4D-Var window): the forecast goes on
                x_a, z_a = c.x_b, c.z_b
            hx_a = apply_operator(x_a, w_k)[0]
            clock.lap("decode")
            memory = clock.memory.peak()
            if keep_analyses and k >= first:
                analyses[k] = x_a[0].float().cpu()
            if keep_backgrounds and k >= first:
                backgrounds[k] = c.x_b[0].float().cpu()
            if record_increments:
                if state.increments is None:
                    state.increments = torch.zeros((n_cycles, *x_a.shape[1:]), dtype=torch.int16)
                state.increments[k] = quantized_kept(standardized_increment(x_a[0], c.x_b[0], norm.anomaly_std)).cpu()
            x_next = m.forecast.step(x_a, [t], 1).double()
            state.previous = x_a
            state.members = x_next if ahead is None else torch.cat((x_next, ahead))
            clock.lap("forecast")
        if not bool(torch.isfinite(state.members).all()):
            where = f"last checkpoint {resume_path} kept" if resume_path and resume_path.exists() else "no checkpoint yet"
            raise StreamError(
                f"stream {year}: the forecast model returned non-finite values in the forecast from {t} "
                f"(cycle {k}); {where}. Fix the forecast model and rerun the same command to resume."
            )
        _record(state, c, a, z_a, hx_a, reject, normalised, method, memory)
        if a.kept is not None:  # on the grid of KEPT_QUANTUM already: stored exactly
            if state.kept is None:
                state.kept = torch.zeros((n_cycles, *a.kept.shape[1:]), dtype=torch.int16)
            state.kept[k] = quantized_kept(a.kept[0]).cpu()
        running.append(normalised.square().cpu())
        if (k + 1) % run.log_every == 0 or k + 1 == n_cycles:
            r = torch.cat(running)
            log.info("stream %d cycle %d/%d %s: normalised O-B rms %.3f over %d obs, inflation %.3g..%.3g, "
                     "rejected %d", year, k + 1, n_cycles, t, r.mean().sqrt().item() if r.numel() else float("nan"),
                     r.numel(), method.inflation.min().item(), method.inflation.max().item(),
                     int(state.diagnostics[max(0, k + 1 - run.log_every): k + 1, N_REJECTED].sum()))
            running = []
        if resume_path is not None and (k + 1) % run.checkpoint_every == 0 and (k + 1) % method.window == 0 \
                and k + 1 < n_cycles:
            state.cycle, state.timers, state.method = k + 1, clock.total, method.state()
            if hasattr(m.forecast, "generator"):
                state.generator = m.forecast.generator.get_state()
            state.save(resume_path, fingerprint_value)
    alarm.check()
    clock.start()  # the latent variances of every cycle run so far, counted in the update's time
    for name in ("sigma_b2", "sigma_a2"):
        state.fields[name][:stop] = latent_variances(m.space, state.fields[f"{name}_update"][:stop])
    kept = state.kept
    if smoother is not None and stop > 0:  # every analysis corrected by its own and the next increments
        # in the kept parts' quanta (as stored, clipped), so that the archive decodes the analyses returned here
        kept = with_correction(state.kept, smoothing_correction(dequantized(state.increments[:stop]), smoother), n_cycles)
        correction = dequantized(kept[:stop].int() - (0 if state.kept is None else state.kept[:stop].int()))
        std = norm.anomaly_std.cpu()[:, None, None]
        analyses = {k: (x.double() + correction[k].double() * std).float() for k, x in analyses.items()}
        for k in range(stop):  # the feedback's H(x_a) too: H is linear, the archive's analysis at the observations
            s = obs.cycle(k)
            if s.stop > s.start:
                delta = (correction[k].double() * std)[None].to(dev)
                state.analysis[s] += apply_operator(delta, obs.weights.select(s))[0].cpu()
        log.info("stream %d: analyses smoothed with the increments of %d later cycles", year, smoother.lags)
    clock.lap("update")
    return StreamResult(
        times, first, state.fields, state.diagnostics, obs.table, state.background, state.analysis, state.qc,
        clock.total, method.inflation, stop - k0, stop,
        torch.stack([analyses[k] for k in sorted(analyses)]) if analyses else None,
        torch.stack([backgrounds[k] for k in sorted(backgrounds)]) if backgrounds else None,
        None if method.analysis_weights() is None else method.analysis_weights().cpu(), kept,
        state.increments,
    )


def stream_smoother(models: StreamModels, cfg: StreamConfig, method: Method) -> SmootherGains | None:
    """The smoother's gains a stream applies: the tuned ones (``models.smoother``) of a tuned method
    (HLOBA) with ``assimilation.smoother_hours`` set; ``None`` for every other method and setting."""
    if not method.tuned or cfg.smoother_hours is None:
        return None
    return models.smoother
