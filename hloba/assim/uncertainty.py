"""Per-channel calibration of the decoded uncertainty (rule calibrate_uncertainty).

The analysis variances are calibrated in the latent space (rule tune_stream); through the
nonlinear decoder the decoded spread of some channels still comes out too small or too large.
On the calibration year (truth known) a short stream with the tuned settings is decoded with
Monte-Carlo samples, and per channel ``factor = RMSE / rms(std)`` is stored; ``decode_year``
multiplies each channel's std by it (``uncertainty.model: factor``). On the same decoded times the
std network of :mod:`hloba.archive.std_model` is fitted (``uncertainty.model: network``, the
default). Reanalysis years never see the truth.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba import __version__
from hloba.archive.decode import decode_latent, decode_means
from hloba.archive.settings import UncertaintySettings
from hloba.archive.std_model import STD_MODEL_FIELDS, fit_std_model, physical_inputs, save_std_model
from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.year import run_period
from hloba.channels import stack_channels
from hloba.io import write_netcdf
from hloba.latent import AUTOENCODER_PRECISION, latent_dataset
from hloba.models.autoencoder import load_autoencoder
from hloba.models.checkpoint import channels_from_state
from hloba.models.training import resolve_precision
from hloba.normalization import Normalizer
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


def std_network_data(latent: xr.Dataset, decoded: dict, truth: np.ndarray, normalizer: Normalizer,
                     latent_shape) -> tuple[np.ndarray, np.ndarray]:
    """The std network's inputs (:func:`hloba.archive.std_model.physical_inputs`) and the squared
    errors it is fitted to (anomaly-std units) at the decoded calibration times."""
    times = pd.DatetimeIndex(latent["time"].values)
    x = physical_inputs(decoded["mean"], decoded["background"], decoded["estimate"], decoded["mc_std"],
                        latent["sigma_o2"].values, latent["sigma_b2"].values, normalizer, times, latent_shape)
    sd = normalizer.anomaly_std.numpy()
    return x, ((decoded["mean"] - truth) / sd[None, :, None, None]) ** 2


def fit_uncertainty_network(latent: xr.Dataset, decoded: dict, truth: np.ndarray, autoencoder, grid, output,
                            network: dict, meta: dict) -> dict:
    """Fit and write the std network (``output``) on decoded calibration times; returns its report.
    ``network``: :func:`hloba.archive.std_model.fit_std_model`'s keywords, with ``precision`` a
    setting of ``uncertainty.network_precision``."""
    ae, payload = load_autoencoder(autoencoder)
    norm = Normalizer.from_state(payload["normalizer"])
    x, err2 = std_network_data(latent, decoded, truth, norm, ae.cfg.latent_shape)
    sd = norm.anomaly_std.numpy()
    periodic = (grid.latitude_period is not None, grid.longitude_period is not None)
    fit = dict(network)
    dtype = resolve_precision(fit.pop("precision", "float32"), torch.device("cpu"), "uncertainty.network_precision")
    model, report = fit_std_model(x, err2, grid.area_weights(), sd, ae.cfg.latent_shape, periodic=periodic,
                                  dtype=dtype, **fit)
    save_std_model(output, model, channels_from_state(payload["channels"]), grid, payload["normalizer"],
                   {**meta, **report})
    log.info("std network of %d member(s) -> %s", len(report["members"]), output)
    return report


def calibration_sample(year: int, inputs: StreamInputs, reference, cfg: StreamConfig, *,
                       samples: int = UncertaintySettings.samples, seed: int = UncertaintySettings.seed,
                       days: float = UncertaintySettings.calibration_days,
                       every: int = UncertaintySettings.calibration_every,
                       run: RunSettings = RunSettings(), means: bool = True,
                       draw_background: bool = False) -> dict:
    """A tuned HLOBA stream over ``days`` of ``year``, every ``every``-th cycle decoded with
    ``samples`` Monte-Carlo draws (``draw_background``: as
    :func:`hloba.archive.decode.decode_latent`): ``{"latent", "mean", "mc_std", "truth", "grid", "channels",
    "first_time", "last_time"}`` and, with ``means``, the decoded ``background`` and ``estimate``
    the std network reads (:data:`hloba.archive.std_model.STD_MODEL_FIELDS`)."""
    cfg = cfg.with_(method="hloba")
    models = method_models(cfg, inputs, run.device)
    result = run_period(year, models, inputs.observations, cfg, days, run)
    first, stop, times = result.first, result.stop, result.times
    sel = slice(first, stop, every)
    rotation = models.space.rotation
    keys = ("z_a", "sigma_a2_update", "z_b", "z_o", "sigma_o2", "sigma_b2", "sigma_b2_update")
    latent = latent_dataset({k: result.fields[k][sel].numpy() for k in keys}, times[sel],
                            rotation=None if rotation is None else rotation.cpu().numpy(),
                            increment_weights=result.weights_by_channel(models.channels),
                            kept=None if result.kept is None else (result.kept[sel].numpy(), None),
                            attrs={AUTOENCODER_PRECISION: models.autoencoder_precision})
    sha = file_sha256(inputs.autoencoder)
    mean, std = decode_latent(latent, inputs.autoencoder, sha, samples, seed, 32, None, False,
                              draw_background=draw_background)
    with xr.open_dataset(reference) as ref:
        truth = stack_channels(ref.sel(time=times[sel]).load(), models.channels)
    out = {"latent": latent, "mean": mean, "mc_std": std, "truth": truth, "grid": models.grid,
           "channels": models.channels, "first_time": str(times[first]), "last_time": str(times[stop - 1])}
    if means:
        out.update(decode_means(latent, STD_MODEL_FIELDS, inputs.autoencoder, sha, seed, 32, None, False))
    return out


def calibrate_uncertainty(year: int, inputs: StreamInputs, reference, output, cfg: StreamConfig, *,
                          samples: int = UncertaintySettings.samples, seed: int = UncertaintySettings.seed,
                          days: float = UncertaintySettings.calibration_days,
                          every: int = UncertaintySettings.calibration_every,
                          run: RunSettings = RunSettings(), model_output=None, network: dict | None = None,
                          draw_background: bool = False) -> xr.Dataset:
    """Rule calibrate_uncertainty: :func:`calibration_sample` scored against ``reference``: the
    per-channel factors written to ``output``; with ``model_output`` the std network is fitted on
    the same times and written there."""
    s = calibration_sample(year, inputs, reference, cfg, samples=samples, seed=seed, days=days, every=every,
                           run=run, means=model_output is not None, draw_background=draw_background)
    latent, mean, std, truth = s["latent"], s["mean"], s["mc_std"], s["truth"]
    factors = uncertainty_factors(mean, std, truth, s["grid"].area_weights())
    names = [c.name for c in s["channels"]]
    log.info("decoded-uncertainty factors (RMSE / rms std): %s",
             ", ".join(f"{n} {f:.3f}" for n, f in zip(names, factors)))
    ds = xr.Dataset(
        {"std_factor": ("channel", factors, {"long_name": "multiplier of the decoded std (RMSE / rms std)"})},
        coords={"channel": names},
        attrs={"hloba_version": __version__, "year": year, "samples": samples, "times": int(len(latent.time)),
               "first_time": s["first_time"], "last_time": s["last_time"]},
    )
    if model_output is not None:
        decoded = {k: s[k] for k in ("mean", "mc_std", *STD_MODEL_FIELDS)}
        fit_uncertainty_network(latent, decoded, truth, inputs.autoencoder, s["grid"], model_output,
                                network or {}, {"year": year, "first_time": s["first_time"],
                                                "last_time": s["last_time"]})
    write_netcdf(ds, output)
    return ds
