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
import torch
import xarray as xr

from hloba import __version__
from hloba.archive.decode import decode_latent
from hloba.archive.settings import UncertaintySettings
from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.year import run_period
from hloba.channels import stack_channels
from hloba.io import write_netcdf
from hloba.latent import latent_dataset
from hloba.runtime import file_sha256
from hloba.scores import rmse

log = logging.getLogger(__name__)


def uncertainty_factors(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, weights) -> np.ndarray:
    """``RMSE / rms(std)`` per channel of ``(time, C, ny, nx)`` arrays (area-weighted)."""
    m, s, t = (torch.from_numpy(np.asarray(a, np.float64)) for a in (mean, std, truth))
    err = rmse(m, t, weights)
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)[None, None, :, None]
    spread = ((s ** 2 * w).mean(dim=(0, 2, 3)) / w.mean()).sqrt()
    return (err / spread.clamp(min=1e-30)).numpy()


def calibrate_uncertainty(year: int, inputs: StreamInputs, reference, output, cfg: StreamConfig, *,
                          samples: int = UncertaintySettings.samples, seed: int = UncertaintySettings.seed,
                          days: float = StreamConfig.tuning_days, every: int = 4,
                          run: RunSettings = RunSettings()) -> xr.Dataset:
    """Rule calibrate_uncertainty: a tuned HLOBA stream over ``days`` of ``year``, every
    ``every``-th cycle decoded with ``samples`` Monte-Carlo draws, scored against ``reference``."""
    cfg = cfg.with_(method="hloba")
    models = method_models(cfg, inputs, run.device)
    result = run_period(year, models, inputs.observations, cfg, days, run)
    first, stop, times = result.first, result.stop, result.times
    sel = slice(first, stop, every)
    rotation = models.space.rotation
    latent = latent_dataset({k: result.fields[k][sel].numpy() for k in ("z_a", "sigma_a2_update")}, times[sel],
                            rotation=None if rotation is None else rotation.cpu().numpy())
    mean, std = decode_latent(latent, inputs.autoencoder, file_sha256(inputs.autoencoder), samples, seed, 32, None,
                              False)
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
