"""Rule generate_lagged_ensemble: lagged forecasts on the calibration years -> calibration file."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.ensemble.calibration import calibrate, cell_blocks, lagged_forecasts, lead_rmse
from hloba.forecast import ForecastSpec, check_forecast_model
from hloba.io import write_netcdf
from hloba.models.checkpoint import check_matches_data
from hloba.timeaxis import cycle_phase
from hloba.states import load_years
from hloba.normalization import Normalizer
from hloba.models.autoencoder import load_autoencoder

log = logging.getLogger(__name__)


def latent_encoder(ae, normalizer: Normalizer, batch: int = 64):
    device = next(ae.parameters()).device

    @torch.no_grad()
    def encode(x: torch.Tensor, times) -> torch.Tensor:
        times = pd.DatetimeIndex(times)
        out = []
        for i in range(0, len(x), batch):
            xn = normalizer.standardize(x[i:i + batch], times[i:i + batch]).to(device)
            out.append(ae.encode(xn).cpu())
        return torch.cat(out)

    return encode


def generate_lagged_ensemble(
    reference_paths, autoencoder_path, output_path, forecast: ForecastSpec, members: int = 4,
    max_lead_days: float = 5.0, lead_starts: int = 40, rotation_cells: int | None = None,
    figures: dict | None = None, progress: bool = True,
) -> xr.Dataset:
    ae, payload = load_autoencoder(autoencoder_path)
    blocks = None if rotation_cells is None else cell_blocks(ae.cfg.latent_shape, int(rotation_cells))
    normalizer = Normalizer.from_state(payload["normalizer"])
    x, times, channels, grid = load_years(reference_paths)
    check_matches_data(payload, channels, grid, autoencoder_path)
    interval = times[1] - times[0]
    model = forecast.build(channels)
    check_forecast_model(model, channels, x[:2], times[:2])
    if model.interval != interval:
        raise ValueError(f"forecast step {model.interval} differs from the data's cycle interval {interval}")
    encode = latent_encoder(ae, normalizer)
    log.info("lagged ensemble: %d times, K = %d members, forecast model %s", len(times), members,
             forecast.settings["model"])
    lagged = lagged_forecasts(model, encode, x, times, members, progress=progress)
    cal = calibrate(lagged, blocks)
    max_lead = int(round(pd.Timedelta(days=max_lead_days) / interval))
    starts = np.linspace(0, len(times) - max_lead - 1, lead_starts).astype(int)
    err, pers = lead_rmse(model, x, times, max_lead, starts, grid.area_weights())
    log.info("hybrid weights a = %.3f, b = %.3f; corr(s2, e2) = %.3f", cal["hybrid_a"], cal["hybrid_b"], cal["corr_s2_e2"])
    log.info("decorrelation before rotation %s", cal["decorrelation_before"])
    log.info("decorrelation after rotation %s", cal["decorrelation_after_rotation"])
    ds = calibration_dataset(cal, err, pers, interval, channels, lagged.times, forecast.settings, members)
    write_netcdf(ds, output_path)
    if figures:
        from hloba.ensemble.figures import plot_error_growth, plot_sigma_clim_map

        plot_error_growth(ds, normalizer, figures["error_growth"])
        plot_sigma_clim_map(ae, ds, lagged.z[0], grid, channels, figures["sigma_clim_map"])
    return ds


def calibration_dataset(cal: dict, err, pers, interval, channels, valid_times, forecast: dict, members: int) -> xr.Dataset:
    n = len(cal["sigma_clim2"])
    leads = (np.arange(1, err.shape[0] + 1) * interval / pd.Timedelta(hours=1)).astype(float)
    flat, local = {}, {}
    if cal.get("rotation_block") is not None:
        local["rotation_block"] = ("latent", cal["rotation_block"].numpy().astype(np.int32),
                                   {"long_name": "block of latent cells within which the rotation mixes elements"})
    for key in ("decorrelation_before", "decorrelation_after_rotation"):
        for k, v in cal[key].items():
            flat[f"{key}_{k}"] = v
    return xr.Dataset(
        {
            "sigma_clim2": ("latent", cal["sigma_clim2"].numpy(), {"long_name": "static latent background error variance"}),
            "s2_mean": ("latent", cal["s2_mean"].numpy(), {"long_name": "time-mean lagged-ensemble variance"}),
            "rotation": (("latent", "mode"), cal["rotation"].numpy(),
                         {"long_name": "eigenvectors V of the latent background-error covariance (columns)"}),
            "sigma_clim2_rotated": ("mode", cal["sigma_clim2_rotated"].numpy(),
                                    {"long_name": "static background error variance in w = V^T z"}),
            "prior_mean": ("latent", cal["prior_mean"].numpy(), {"long_name": "climatological mean of the encoded states"}),
            "prior_var": ("latent", cal["prior_var"].numpy(), {"long_name": "climatological variance of the encoded states"}),
            "prior_var_rotated": ("mode", cal["prior_var_rotated"].numpy(),
                                  {"long_name": "climatological variance of the encoded states in w = V^T z"}),
            "lead_rmse": (("lead_hours", "channel"), err, {"long_name": "area-weighted forecast RMSE, physical units"}),
            "persistence_rmse": (("lead_hours", "channel"), pers),
            **local,
        },
        coords={"latent": np.arange(n), "mode": np.arange(n), "lead_hours": leads,
                "channel": [c.name for c in channels]},
        attrs={
            "hloba_version": __version__, "forecast_model": forecast["model"], "members": members,
            "hybrid_a": cal["hybrid_a"], "hybrid_b": cal["hybrid_b"], "corr_s2_e2": cal["corr_s2_e2"],
            "hybrid_a_rotated": cal["hybrid_a_rotated"], "hybrid_b_rotated": cal["hybrid_b_rotated"],
            "corr_s2_e2_rotated": cal["corr_s2_e2_rotated"], "n_valid_times": len(valid_times),
            "covariance_shrinkage": cal["shrinkage"],
            "first_valid_time": str(valid_times[0]), "last_valid_time": str(valid_times[-1]),
            "cycle_phase_hours": cycle_phase(pd.DatetimeIndex(valid_times), interval) / pd.Timedelta(hours=1), **flat,
        },
    )
