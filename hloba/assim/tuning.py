"""Tune the stream's variances on a year where the truth is known (rule tune_stream).

The innovation statistics that drive the online inflation assume that background and O2Lnet
errors are independent. In the latent space they are not: both miss the scales the observations
cannot see, so ``E[(z_o - z_b)^2]`` underestimates ``sigma_b2 + sigma_o2`` (on the built-in world
the latent background and O2Lnet errors correlate by about 0.35). Two short streams on the
calibration year measure what the innovations cannot, per inflation group of update coordinates:

1. ``inflation_correction = mean((w_b - w_t)^2) / mean(sigma_b2)``: the background error the
   online inflation misses (``w_t`` the encoded truth in update coordinates);
2. with that correction applied, ``analysis_variance_factor = mean((w_a - w_t)^2 / sigma_a2)``: the
   factor that makes the reported analysis variance calibrated.

Reanalysis streams read both (they never see the truth). The tuning streams are separate from the
reanalysis streams, so years still never read each other's outputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.assim.cycle import mode_groups
from hloba.assim.models import StreamModels, load_stream_models
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.year import run_period
from hloba.io import write_netcdf
from hloba.models.autoencoder import encode_all
from hloba.states import load_years
from hloba.timeaxis import cycle_times, period_cycles

log = logging.getLogger(__name__)


def group_mean(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean over time and over each group's elements: ``(time, n) -> (n_groups,)``."""
    v = values.double()
    total = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, v.sum(0))
    count = torch.bincount(groups, minlength=n_groups).double() * v.shape[0]
    return total / count


def _truth_latent(models: StreamModels, reference_paths, times: pd.DatetimeIndex) -> torch.Tensor:
    x, t, _, _ = load_years(reference_paths, models.normalizer, models.channels)
    index = pd.DatetimeIndex(t).get_indexer(times)
    if (index < 0).any():
        raise ValueError(f"the reference files lack {int((index < 0).sum())} of the tuning period's times "
                         f"(first {times[index < 0][0]}): give the calibration year's reference")
    ae = models.autoencoder
    return encode_all(ae, x[torch.as_tensor(index)]).cpu()


def tune_stream(year: int, models: StreamModels, obs_paths, reference_paths, cfg: StreamConfig,
                run: RunSettings = RunSettings()) -> dict:
    """Run the two tuning streams on ``year`` (``cfg.tuning_days`` after the spin-up); return the factors."""
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    stop = period_cycles(times, first, cfg.tuning_days)
    n = int(models.sigma_clim2.numel())
    groups = mode_groups(n, cfg.inflation_groups)
    n_groups = int(groups.max()) + 1
    z_t = _truth_latent(models, reference_paths, times[first:stop])
    w_t = models.space.forward(z_t.to(models.device)).cpu()
    models.inflation_correction = None
    models.analysis_variance_factor = None
    models.error_correlation = None
    log.info("tuning pass 1 on %d: %d cycles after %d spin-up cycles", year, stop - first, first)
    r1 = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run)
    sl = slice(first, stop)
    w_b = models.space.forward(r1.fields["z_b"][sl].to(models.device)).cpu()
    correction = group_mean((w_b - w_t).square(), groups, n_groups) / group_mean(r1.fields["sigma_b2_update"][sl], groups, n_groups)
    correction = correction.clamp(1e-2, 1e4)
    w_o = models.space.forward(r1.fields["z_o"][sl].to(models.device)).cpu()
    observed = torch.isfinite(r1.fields["sigma_o2"][sl]).all(dim=1)
    eb, eo = (w_b - w_t)[observed], (w_o - w_t)[observed]
    rho = group_mean(eb * eo, groups, n_groups) / (
        group_mean(eb.square(), groups, n_groups) * group_mean(eo.square(), groups, n_groups)).sqrt()
    rho = rho.clamp(0.0, 0.9)
    models.inflation_correction = correction
    models.error_correlation = rho
    log.info("background/O2Lnet error correlation per group: %s", np.array2string(rho.numpy(), precision=2))
    log.info("inflation correction per group: %s", np.array2string(correction.numpy(), precision=3))
    log.info("tuning pass 2 with the correction")
    r2 = run_period(year, models, obs_paths, cfg, cfg.tuning_days, run)
    w_a = models.space.forward(r2.fields["z_a"][sl].to(models.device)).cpu()
    sa2 = r2.fields["sigma_a2_update"][sl]
    alpha = group_mean((w_a - w_t).square(), groups, n_groups) / group_mean(sa2, groups, n_groups)
    mean_ratio = float(((w_a - w_t).square() / sa2).mean())
    models.analysis_variance_factor = alpha
    log.info("analysis variance factor per group: %s", np.array2string(alpha.numpy(), precision=3))

    def rms(result, key):
        return float((result.fields[key][sl] - z_t).square().mean().sqrt())

    return {
        "inflation_correction": correction, "analysis_variance_factor": alpha, "error_correlation": rho,
        "n_groups": n_groups, "mean_ratio_before_factor": mean_ratio,
        "latent_rmse_analysis_pass1": rms(r1, "z_a"), "latent_rmse_analysis_pass2": rms(r2, "z_a"),
        "latent_rmse_background_pass1": rms(r1, "z_b"), "latent_rmse_background_pass2": rms(r2, "z_b"),
        "first_time": str(times[first]), "last_time": str(times[stop - 1]),
    }


def tuning_dataset(tuning: dict, year: int, cfg: StreamConfig) -> xr.Dataset:
    return xr.Dataset(
        {
            "inflation_correction": ("group", tuning["inflation_correction"].numpy(),
                                     {"long_name": "background variance correction to the online inflation"}),
            "analysis_variance_factor": ("group", tuning["analysis_variance_factor"].numpy(),
                                         {"long_name": "calibration factor of the analysis variance"}),
            "error_correlation": ("group", tuning["error_correlation"].numpy(),
                                  {"long_name": "correlation of latent background and O2Lnet errors"}),
        },
        coords={"group": np.arange(tuning["n_groups"])},
        attrs={"hloba_version": __version__, "year": year, "rotation": int(cfg.rotation),
               **{k: v for k, v in tuning.items() if isinstance(v, (int, float, str))}},
    )


def tune_stream_file(year: int, inputs: StreamInputs, references, output, cfg: StreamConfig,
                     run: RunSettings = RunSettings()) -> xr.Dataset:
    """Rule tune_stream: the two tuning streams of HLOBA on ``year``, written to ``output``."""
    cfg = cfg.with_(method="hloba")
    if cfg.tuning_days <= 0:
        raise ValueError("assimilation.tuning_days is 0: tuning is switched off, nothing should ask for it")
    models = load_stream_models(inputs, run.device, cfg.rotation)
    tuning = tune_stream(year, models, inputs.observations, references, cfg, run)
    ds = tuning_dataset(tuning, year, cfg)
    write_netcdf(ds, output)
    log.info("tuning written to %s: latent analysis rmse %.4f (pass 1) -> %.4f (pass 2)", output,
             tuning["latent_rmse_analysis_pass1"], tuning["latent_rmse_analysis_pass2"])
    return ds
