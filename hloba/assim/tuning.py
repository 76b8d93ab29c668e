"""Tune the stream's variances on a year where the truth is known (rule tune_stream).

The innovation statistics that drive the online inflation assume that background and
observation-estimate errors are independent. In the latent space they are not: both miss the
scales the observations cannot see, and O2Lnet's errors persist from cycle to cycle into the
background, so ``E[(z_o - z_b)^2]`` underestimates ``sigma_b2 + sigma_o2`` (on the built-in world
they correlate by 0.43-0.52 per band; the correlation is measured for the estimate the update
weighs, O2Lnet's posterior or, with ``assimilation.update: likelihood``, its likelihood). Short
streams on the calibration year measure what the innovations cannot, per inflation group of update
coordinates:

0. with ``assimilation.calibrate_observation_variance``, ``observation_variance_factor =
   mean((w_o - w_t)^2) / mean(sigma_o2)`` (``w_t`` the encoded truth in update coordinates), and the
   streams below use it;
1. ``inflation_correction = mean((w_b - w_t)^2) / mean(sigma_b2)``: the background error the
   online inflation misses;
2. with that correction applied, ``analysis_variance_factor = mean((w_a - w_t)^2) / mean(sigma_a2)``:
   the factor that makes the reported analysis variance calibrated;
3. with ``assimilation.background_variance: cycling``, the static variance is refitted to the
   background errors of the stream of step 2 (``mean((w_b - w_t)^2)`` per update coordinate: the
   calibration's comes from 6-hour forecasts from the truth, mostly the model's bias, ten times
   smaller than a cycling background's error on the built-in world), the hybrid weights become
   ``a = 1, b = 0`` (the lagged spread explains nothing of the cycling errors there: NNLS weight
   0.05) and steps 0-2 are run again with it;
4. with ``assimilation.decoded_increment: weighted``, the weight of each channel's decoded increment
   ``D(z_a) - D(z_b)`` is fitted to the last stream's errors (least squares of the truth minus
   ``D(z_b)`` on it, or minus ``x_b`` itself with ``incremental``; with ``blended`` jointly with the
   weight of ``D(z_b) - x_b``, :func:`hloba.assim.update.fit_blend_weights`; in ``[0, 1]``), with
   ``assimilation.increment_weight_refits`` refitted that many times to a stream that used the
   weights before, and a stream that uses the weights refits step 2's factor (its analyses are the
   weighted ones).

Reanalysis streams read them (they never see the truth). The tuning streams are separate from the
reanalysis streams, so years still never read each other's outputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.assim.cycle import group_mean, group_ratio, mode_groups, pooled_correlation
from hloba.assim.models import StreamModels, load_stream_models, tuned_settings
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.stream import StreamResult
from hloba.assim.update import fit_blend_weights, fit_by_band, fit_increment_weights, observation_estimate
from hloba.assim.year import run_period
from hloba.io import write_netcdf
from hloba.smoother import dequantized, fit_smoother, smoother_lags
from hloba.models.autoencoder import decode_all, encode_all
from hloba.states import load_years
from hloba.timeaxis import cycle_times, period_cycles

log = logging.getLogger(__name__)
# the weighted states whose weights are fitted against the truth minus the background itself
KEEPS_BACKGROUNDS = ("incremental", "blended")


def _truth(models: StreamModels, reference_paths, times: pd.DatetimeIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """The truth at ``times``, standardised ``(time, C, ny, nx)``, and encoded ``(time, n)``."""
    x, t, _, _ = load_years(reference_paths, models.normalizer, models.channels)
    index = pd.DatetimeIndex(t).get_indexer(times)
    if (index < 0).any():
        raise ValueError(f"the reference files lack {int((index < 0).sum())} of the tuning period's times "
                         f"(first {times[index < 0][0]}): give the calibration year's reference")
    x = x[torch.as_tensor(index)]
    return x, encode_all(models.autoencoder, x).cpu()


def increment_weights(models: StreamModels, result, sl: slice, x_t: torch.Tensor, blended: bool = False,
                      n_bands: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step 4: per channel, the weight of the decoded increment that fits the truth ``x_t``
    (standardised) best over the cycles ``sl`` of a stream ``result`` (one that took whole
    increments, or with refits one that used the weights of the fit before):
    added to the decoded background ``D(z_b)``, or to the background itself where the stream kept
    its backgrounds (``weighted_state: incremental``). With ``blended`` (the stream kept its
    backgrounds) the weight of the autoencoder's change to the background ``D(z_b) - x_b`` is fitted
    with it (:func:`hloba.assim.update.fit_blend_weights`); returns ``(g, h)``, ``h`` ``None`` unless
    ``blended``, each ``(C, n_bands)`` with more than one octave band (``assimilation.increment_bands``)."""
    ae, dev = models.autoencoder, models.device
    d_b = decode_all(ae, result.fields["z_b"][sl].to(dev)).cpu()
    d_a = decode_all(ae, result.fields["z_a"][sl].to(dev)).cpu()
    area = torch.as_tensor(models.grid.area_weights())
    if result.backgrounds is None:
        return fit_by_band(fit_increment_weights, (d_a - d_b, x_t - d_b), area, n_bands), None
    x_b = models.normalizer.standardize(result.backgrounds.double(), result.times[sl]).cpu()
    if blended:
        h, g = fit_by_band(fit_blend_weights, (d_b - x_b, d_a - d_b, x_t - x_b), area, n_bands)
        return g, h
    return fit_by_band(fit_increment_weights, (d_a - d_b, x_t - x_b), area, n_bands), None


def _estimate_errors(models: StreamModels, cfg: StreamConfig, result, sl: slice, w_t: torch.Tensor):
    """The errors of the estimate the update weighs (O2Lnet's posterior or likelihood), its
    variance in update coordinates and where it is informative, at the observed cycles."""
    observed = torch.isfinite(result.fields["sigma_o2"][sl]).all(dim=1)
    w_o, so2_w = observation_estimate(
        cfg.update, models.space.forward(result.fields["z_o"][sl][observed].to(models.device)),
        models.space.forward_variance(result.fields["sigma_o2"][sl][observed].to(models.device)),
        models.prior_mean, models.prior_var)
    informative = torch.isfinite(so2_w).cpu()
    eo = torch.where(informative, w_o.cpu() - w_t[observed], 0.0)
    return observed, eo, torch.where(informative, so2_w.cpu(), 1.0), informative


def cycling_static_variance(e_b: torch.Tensor, floor: float = 1e-8) -> torch.Tensor:
    """The static background variance per update coordinate from a cycling stream's background
    errors ``e_b = w_b - w_t: (time, n)``: their mean square (bias included, as the calibration's
    ``sigma_clim2`` has it), at least ``floor`` times its mean."""
    v = e_b.double().square().mean(0)
    return v.clamp(min=floor * float(v.mean()))


def tune_stream(year: int, models: StreamModels, obs_paths, reference_paths, cfg: StreamConfig,
                run: RunSettings = RunSettings()) -> dict:
    """Run the tuning streams on ``year`` (``cfg.tuning_days`` after the spin-up); return the factors.

    With ``cfg.calibrate_observation_variance`` a first stream measures the per-group factor of
    the estimate's variance, ``mean(e_o^2) / mean(sigma_o2)`` (the estimate depends on the
    observations only, not on the background), and the correction is measured by a stream that
    uses it, since the online inflation reads ``sigma_o2``.

    With ``cfg.background_variance == "cycling"`` the static variance is then refitted to the
    background errors of the tuned stream (:func:`cycling_static_variance`, the hybrid weights set
    to ``a = 1, b = 0``) and the factors are tuned again with it."""
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    stop = period_cycles(times, first, cfg.tuning_days)
    sl = slice(first, stop)
    x_t, z_t = _truth(models, reference_paths, times[first:stop])
    w_t = models.space.forward(z_t.to(models.device)).cpu()
    tuning, last = _tuning_passes(year, models, obs_paths, cfg, run, sl, z_t, w_t)
    tuning.update(first_time=str(times[first]), last_time=str(times[stop - 1]), background_variance="forecast")
    if cfg.background_variance == "cycling":
        w_b = models.space.forward(last.fields["z_b"][sl].to(models.device)).cpu()
        static = cycling_static_variance(w_b - w_t)
        log.info("static background variance refitted to the tuned stream's background errors: mean %.4g "
                 "(the calibration's %.4g); tuning again with it", float(static.mean()),
                 float(models.hybrid_a * models.sigma_clim2.double().mean()))
        models.use_static_variance(static)
        refit, last = _tuning_passes(year, models, obs_paths, cfg, run, sl, z_t, w_t)
        tuning.update(refit, static_variance=static, background_variance="cycling",
                      latent_rmse_analysis_forecast_variance=tuning["latent_rmse_analysis_pass2"])
    smoothed = cfg.smoother_hours is not None
    if cfg.decoded_increment == "weighted":
        weights, r3 = weighted_passes(year, models, obs_paths, cfg, run, sl, x_t, last, smoothed)
        alpha, _ = _analysis_variance_factor(models, r3, sl, w_t, mode_groups(w_t.shape[1], cfg.inflation_groups),
                                             tuning["n_groups"])
        tuning.update(increment_weights=weights, projection_weights=models.projection_weights,
                      channels=[c.name for c in models.channels],
                      analysis_variance_factor=alpha, latent_rmse_analysis_pass3=_latent_rms(r3, "z_a", sl, z_t))
    if smoothed:  # the smoother's gains, fitted to the last stream (weighted: the one with the final weights)
        stream = r3 if cfg.decoded_increment == "weighted" else run_period(
            year, models, obs_paths, cfg, cfg.tuning_days, run, keep_analyses=True, keep_increments=True)
        gains = fit_smoother(x_t - models.normalizer.standardize(stream.analyses.double(), times[sl]),
                             dequantized(stream.increments[sl]), smoother_lags(cfg.smoother_hours, models.interval),
                             cfg.increment_bands, torch.as_tensor(models.grid.area_weights()))
        log.info("smoother reading %d later cycles: analysis RMSE times %s per channel (cross-validated)",
                 gains.lags, _by_channel(models, gains.std_factor[:, None]))
        tuning.update(smoother_gains=gains, channels=[c.name for c in models.channels])
    return tuning


def weighted_passes(year: int, models: StreamModels, obs_paths, cfg: StreamConfig, run: RunSettings, sl: slice,
                    x_t: torch.Tensor, last: StreamResult, keep_last: bool = False) -> tuple[torch.Tensor, StreamResult]:
    """Step 4: the weights of the decoded increment fitted to the stream ``last`` (which took whole
    increments), then ``cfg.increment_weight_refits`` times refitted to a stream that used the
    weights of the fit before (aiming at weights that the stream they make cannot improve on), each
    refit moving the weights ``cfg.increment_weight_step`` of the way to the refitted ones
    (:func:`damped_weights`: with whole steps humidity's weight alternates between 0 and 0.74 on the
    default world, with half steps it settles at 0.21, docs/streams.md); with ``weighted_state: blended``
    the weights of the autoencoder's change to the background with them (``models.projection_weights``).
    Returns the last weights, which ``models`` then holds, and the stream that used them (with
    ``keep_last`` its analyses and increments kept: the smoother's fit reads them)."""
    blended = cfg.weighted_state == "blended"
    weights, projection = increment_weights(models, last, sl, x_t, blended, cfg.increment_bands)
    log.info("weight of the decoded increment per channel: %s", _by_channel(models, weights, projection))
    for refit in range(cfg.increment_weight_refits + 1):
        models.increment_weights, models.projection_weights = weights, projection
        log.info("tuning pass 3 with the weighted increments%s", f" (refit {refit})" if refit else "")
        last_pass = refit == cfg.increment_weight_refits
        stream = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run,
                            keep_backgrounds=cfg.weighted_state in KEEPS_BACKGROUNDS and not last_pass,
                            keep_analyses=last_pass and keep_last, keep_increments=last_pass and keep_last)
        if last_pass:
            return weights, stream
        refitted, refitted_projection = increment_weights(models, stream, sl, x_t, blended, cfg.increment_bands)
        log.info("weight of the decoded increment refitted to that stream: %s",
                 _by_channel(models, refitted, refitted_projection))
        weights = damped_weights(weights, refitted, cfg.increment_weight_step)
        if blended:
            projection = damped_weights(projection, refitted_projection, cfg.increment_weight_step)
        if cfg.increment_weight_step < 1.0:
            log.info("weight after a step of %g toward it: %s", cfg.increment_weight_step,
                     _by_channel(models, weights, projection))


def damped_weights(before: torch.Tensor, refitted: torch.Tensor, step: float) -> torch.Tensor:
    """``before + step (refitted - before)``: a refit's weights when each refit moves ``step`` of the
    way (1: the refit itself). Where the fit to a stream that used ``g`` falls as ``g`` rises (the
    increments a stream already takes are worth less), whole steps can alternate about the weights
    that such a stream fits again; steps below 1 converge to them."""
    return before + step * (refitted - before)


def _by_channel(models: StreamModels, weights: torch.Tensor, projection: torch.Tensor | None = None) -> str:
    """Each channel's weight, or its weights per octave band longest first (``0.912/0.873/...``)."""
    text = ", ".join(f"{c.name} {'/'.join(f'{x:.3f}' for x in torch.as_tensor(g).reshape(-1).tolist())}"
                     for c, g in zip(models.channels, weights))
    return text if projection is None else f"{text}; of the autoencoder's change: {_by_channel(models, projection)}"


def _analysis_variance_factor(models: StreamModels, result, sl: slice, w_t: torch.Tensor, groups: torch.Tensor,
                              n_groups: int) -> tuple[torch.Tensor, float]:
    """Per group ``mean((w_a - w_t)^2) / mean(sigma_a2)`` of a stream's analyses over the cycles
    ``sl`` (logged), and the mean of the element-wise ratio."""
    w_a = models.space.forward(result.fields["z_a"][sl].to(models.device)).cpu()
    sa2 = result.fields["sigma_a2_update"][sl]
    alpha = group_ratio((w_a - w_t).square(), sa2, groups, n_groups)
    log.info("analysis variance factor per group: %s", np.array2string(alpha.numpy(), precision=3))
    return alpha, float(((w_a - w_t).square() / sa2).mean())


def _latent_rms(result, key: str, sl: slice, z_t: torch.Tensor) -> float:
    """RMS over the cycles ``sl`` of a stream's latent field ``key`` minus the encoded truth."""
    return float((result.fields[key][sl] - z_t).square().mean().sqrt())


def _tuning_passes(year: int, models: StreamModels, obs_paths, cfg: StreamConfig, run: RunSettings, sl: slice,
                   z_t: torch.Tensor, w_t: torch.Tensor):
    """Passes 1 (and 1b) and 2 of :func:`tune_stream` with ``models``' variances: the factors and the
    last stream."""
    first, stop = sl.start, sl.stop
    n = int(models.sigma_clim2.numel())
    groups = mode_groups(n, cfg.inflation_groups)
    n_groups = int(groups.max()) + 1
    models.inflation_correction = None
    models.analysis_variance_factor = None
    models.error_correlation = None
    models.observation_variance_factor = None
    log.info("tuning pass 1 on %d: %d cycles after %d spin-up cycles", year, stop - first, first)
    r1 = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run)
    obs_factor = torch.ones(n_groups, dtype=torch.float64)
    if cfg.calibrate_observation_variance:
        _, eo, so2_w, informative = _estimate_errors(models, cfg, r1, sl, w_t)
        obs_factor = group_ratio(eo.square(), so2_w, groups, n_groups, informative)
        obs_factor = torch.where(obs_factor > 0, obs_factor, 1.0).clamp(1e-2, 1e4)
        models.observation_variance_factor = obs_factor
        log.info("observation-estimate variance factor per group: %s", np.array2string(obs_factor.numpy(), precision=3))
        log.info("tuning pass 1b with it")
        r1 = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run)
    w_b = models.space.forward(r1.fields["z_b"][sl].to(models.device)).cpu()
    correction = group_ratio((w_b - w_t).square(), r1.fields["sigma_b2_update"][sl], groups, n_groups)
    correction = correction.clamp(1e-2, 1e4)
    observed, eo, so2_w, informative = _estimate_errors(models, cfg, r1, sl, w_t)
    eb = torch.where(informative, (w_b - w_t)[observed], 0.0)
    rho = group_mean(eb * eo, groups, n_groups, informative) / (
        group_mean(eb.square(), groups, n_groups, informative)
        * group_mean(eo.square(), groups, n_groups, informative)).sqrt().clamp(min=1e-300)
    pooled_rho = pooled_correlation(eb, eo, informative)
    rho = rho.clamp(0.0, 0.9)
    models.inflation_correction = correction
    models.error_correlation = rho
    log.info("background/estimate error correlation: pooled %.3f, per group %s", pooled_rho,
             np.array2string(rho.numpy(), precision=2))
    log.info("inflation correction per group: %s", np.array2string(correction.numpy(), precision=3))
    log.info("tuning pass 2 with the correction")
    incremental = cfg.decoded_increment == "weighted" and cfg.weighted_state in KEEPS_BACKGROUNDS
    r2 = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run, keep_backgrounds=incremental)
    alpha, mean_ratio = _analysis_variance_factor(models, r2, sl, w_t, groups, n_groups)
    models.analysis_variance_factor = alpha
    # how well the variances the last stream used fit its errors, per group (1 is calibrated)
    w_b2 = models.space.forward(r2.fields["z_b"][sl].to(models.device)).cpu()
    b_ratio = group_ratio((w_b2 - w_t).square(), r2.fields["sigma_b2_update"][sl], groups, n_groups)
    _, eo2, so2_2, inf2 = _estimate_errors(models, cfg, r2, sl, w_t)
    o_ratio = group_ratio(eo2.square(), so2_2 * obs_factor[groups][None], groups, n_groups, inf2)

    return {
        "inflation_correction": correction, "analysis_variance_factor": alpha, "error_correlation": rho,
        "observation_variance_factor": obs_factor, "background_variance_ratio": b_ratio,
        "observation_variance_ratio": o_ratio, "error_correlation_pooled": pooled_rho,
        "informative_fraction": float(informative.double().mean()),
        "n_groups": n_groups, "mean_ratio_before_factor": mean_ratio,
        "latent_rmse_analysis_pass1": _latent_rms(r1, "z_a", sl, z_t),
        "latent_rmse_analysis_pass2": _latent_rms(r2, "z_a", sl, z_t),
        "latent_rmse_background_pass1": _latent_rms(r1, "z_b", sl, z_t),
        "latent_rmse_background_pass2": _latent_rms(r2, "z_b", sl, z_t),
    }, r2


TUNING_FIELDS = {  # per group of update coordinates
    "inflation_correction": "background variance correction to the online inflation",
    "analysis_variance_factor": "calibration factor of the analysis variance",
    "error_correlation": "correlation of latent background and O2Lnet errors",
    "observation_variance_factor": "calibration factor of the observation estimate's variance",
    "background_variance_ratio": "mean (w_b - w_t)^2 / sigma_b2 of the last tuning stream",
    "observation_variance_ratio": "mean (w_o - w_t)^2 / sigma_o2 of the last tuning stream",
}


def tuning_dataset(tuning: dict, year: int, cfg: StreamConfig) -> xr.Dataset:
    data = {name: ("group", tuning[name].numpy(), {"long_name": text}) for name, text in TUNING_FIELDS.items()}
    if "static_variance" in tuning:  # background_variance: cycling; the hybrid weights are then 1 and 0
        data["static_variance"] = ("coordinate", tuning["static_variance"].numpy(), {
            "long_name": "static background error variance per update coordinate, from cycling errors"})
    coords = {"group": np.arange(tuning["n_groups"])}
    def dims(weights):  # (channel,), or (channel, band) per octave band (hloba.bands)
        return ("channel", "band")[: weights.ndim]

    if "increment_weights" in tuning:  # decoded_increment: weighted
        data["increment_weight"] = (dims(tuning["increment_weights"]), tuning["increment_weights"].numpy(), {
            "long_name": "weight of the decoded increment D(z_a) - D(z_b) per channel"})
        coords["channel"] = tuning["channels"]
    if "smoother_gains" in tuning:  # assimilation.smoother_hours
        gains = tuning["smoother_gains"]
        data["smoother_gain"] = (("missing_lags", "smoother_band", "channel", "regressor"), gains.gains.numpy(), {
            "long_name": "smoother gains: per number of missing later cycles and octave band, each channel's "
                         "correction from the increments of lags 0..L (hloba.smoother)"})
        data["smoother_std_factor"] = ("channel", gains.std_factor.numpy(), {
            "long_name": "analysis RMSE of the smoothed over the filter's analyses on the tuning period, cross-validated"})
        coords["channel"] = tuning["channels"]
    if tuning.get("projection_weights") is not None:  # weighted_state: blended
        data["projection_weight"] = (dims(tuning["projection_weights"]), tuning["projection_weights"].numpy(), {
            "long_name": "weight of the autoencoder's change D(z_b) - x_b to the background per channel"})
    return xr.Dataset(
        data, coords=coords,
        attrs={"hloba_version": __version__, "year": year, **tuned_settings(cfg),
               **{k: v for k, v in tuning.items() if isinstance(v, (int, float, str))}},
    )


def tune_stream_file(year: int, inputs: StreamInputs, references, output, cfg: StreamConfig,
                     run: RunSettings = RunSettings()) -> xr.Dataset:
    """Rule tune_stream: the two tuning streams of HLOBA on ``year``, written to ``output``."""
    cfg = cfg.with_(method="hloba")
    if cfg.tuning_days <= 0:
        raise ValueError("assimilation.tuning_days is 0: tuning is switched off, nothing should ask for it")
    models = load_stream_models(inputs, run.device, cfg.rotation, o2lnet_precision=cfg.o2lnet_precision,
                                autoencoder_precision=cfg.autoencoder_precision)
    tuning = tune_stream(year, models, inputs.observations, references, cfg, run)
    ds = tuning_dataset(tuning, year, cfg)
    write_netcdf(ds, output)
    log.info("tuning written to %s: latent analysis rmse %.4f (pass 1) -> %.4f (pass 2)", output,
             tuning["latent_rmse_analysis_pass1"], tuning["latent_rmse_analysis_pass2"])
    return ds
