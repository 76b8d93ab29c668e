"""Per-channel calibration of the decoded uncertainty (rule calibrate_uncertainty).

The analysis variances are calibrated in the latent space (rule tune_stream); through the
nonlinear decoder the decoded spread of some channels still comes out too small or too large.
On the calibration year (truth known) a short stream with the tuned settings is decoded with
Monte-Carlo samples, and per channel ``factor = RMSE / rms(std)`` is stored; ``decode_year``
multiplies each channel's std by it. Reanalysis years never see the truth.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.archive.decode import decode_latent
from hloba.assim.stream import StreamConfig, cycle_times, file_sha256, load_stream_models, run_stream
from hloba.assim.tuning import apply_tuning
from hloba.channels import stack_channels
from hloba.io import write_netcdf
from hloba.verify.scores import rmse

log = logging.getLogger(__name__)


def uncertainty_factors(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, weights) -> np.ndarray:
    """``RMSE / rms(std)`` per channel of ``(time, C, ny, nx)`` arrays (area-weighted)."""
    m, s, t = (torch.from_numpy(np.asarray(a, np.float64)) for a in (mean, std, truth))
    err = rmse(m, t, weights)
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)[None, None, :, None]
    spread = ((s ** 2 * w).mean(dim=(0, 2, 3)) / w.mean()).sqrt()
    return (err / spread.clamp(min=1e-30)).numpy()


def calibrate_uncertainty(
    year: int, autoencoder, o2lnet, calibration, tuning, observations, reference, output, *, assimilation: dict,
    forecast: dict, interval_hours: float, world_qg: dict | None = None, emulator=None, samples: int = 16,
    seed: int = 0, days: float = 60.0, every: int = 4, progress: bool = True,
) -> xr.Dataset:
    cfg = StreamConfig(**dict(assimilation, method="hloba"))
    interval = pd.Timedelta(hours=interval_hours)
    models = load_stream_models(autoencoder, o2lnet, calibration, forecast, interval, world_qg, emulator,
                                cfg.device, cfg.rotation)
    if tuning:
        apply_tuning(models, tuning)
    times, first = cycle_times(year, interval, cfg.spinup_days, models.phase)
    stop = min(len(times), first + int(round(pd.Timedelta(days=days) / interval)))
    result = run_stream(year, models, observations, cfg, interval, max_cycles=stop, progress=progress)
    sel = slice(first, stop, every)
    latent = xr.Dataset(
        {"z_a": (("time", "latent"), result["out"]["z_a"][sel].numpy()),
         "sigma_a2_update": (("time", "latent"), result["out"]["sigma_a2_update"][sel].numpy())},
        coords={"time": times[sel]},
    )
    if models.space.rotation is not None:
        latent["rotation"] = (("latent", "mode"), models.space.rotation.cpu().numpy())
    mean, std = decode_latent(latent, autoencoder, file_sha256(autoencoder), samples, seed, 32, None, False)
    with xr.open_dataset(reference) as ref:
        truth = stack_channels(ref.sel(time=times[sel]).load(), models.channels)
    factors = uncertainty_factors(mean, std, truth, models.grid.area_weights())
    names = [c.name for c in models.channels]
    log.info("decoded-uncertainty factors (RMSE / rms std): %s",
             ", ".join(f"{n} {f:.3f}" for n, f in zip(names, factors)))
    ds = xr.Dataset(
        {"std_factor": ("channel", factors, {"long_name": "multiplier of the decoded std (RMSE / rms std)"})},
        coords={"channel": names},
        attrs={"hloba_version": __version__, "year": year, "samples": samples, "times": int(len(latent.time)),
               "first_time": str(times[first]), "last_time": str(times[stop - 1])},
    )
    write_netcdf(ds, output)
    return ds
