"""Everything a stream needs on one device: networks, calibration, forecast model, the tuning.

:func:`method_models` loads what one method uses (the rotation and the tuning for a tuned method
that rotates, the static covariance for one that needs it), asking the method registry rather
than naming methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
import xarray as xr

from hloba.assim.cycle import UpdateSpace
from hloba.assim.methods import REGISTRY
from hloba.assim.oi import StaticCovariance
from hloba.assim.settings import StreamConfig, StreamInputs
from hloba.channels import Channel
from hloba.grid import Grid
from hloba.models.autoencoder import load_autoencoder
from hloba.models.checkpoint import channels_from_state, check_models_agree, grid_from_state
from hloba.models.o2lnet import load_o2lnet
from hloba.models.training import resolve_precision, warn_if_emulated
from hloba.normalization import Normalizer
from hloba.runtime import file_sha256, resolve_device
from hloba.smoother import SmootherGains, smoother_lags


class StreamError(RuntimeError):
    """The stream cannot go on (non-finite forecast, inputs that do not fit)."""


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
    interval: pd.Timedelta = pd.Timedelta(hours=6)  # the cycle step (the forecast model's)
    hashes: dict = field(default_factory=dict)
    # from the tuning stream on the calibration year (rule tune_stream), per inflation group
    inflation_correction: torch.Tensor | None = None
    error_correlation: torch.Tensor | None = None  # of background and O2Lnet errors
    analysis_variance_factor: torch.Tensor | None = None
    observation_variance_factor: torch.Tensor | None = None  # of the observation estimate's variance
    # per channel, the weight of the decoded increment (assimilation.decoded_increment: weighted)
    increment_weights: torch.Tensor | None = None
    # per channel, the weight of the autoencoder's change to the background (weighted_state: blended)
    projection_weights: torch.Tensor | None = None
    smoother: SmootherGains | None = None  # hloba.smoother's gains (assimilation.smoother_hours)
    oi: StaticCovariance | None = None  # method oi: the static model-space covariance
    phase: pd.Timedelta = pd.Timedelta(0)  # cycle times' offset from 00 UTC (the data's, from the calibration)
    o2lnet_dtype: torch.dtype = torch.float32  # of O2Lnet's pass in the stream (assimilation.o2lnet_precision)
    # O2Lnet's climatological prior in update coordinates (assimilation.update: likelihood); None in
    # calibration files written before it was stored
    prior_mean: torch.Tensor | None = None
    prior_var: torch.Tensor | None = None

    @property
    def autoencoder_precision(self) -> str:
        """What ``assimilation.autoencoder_precision`` resolved to here (``float32`` or ``bfloat16``):
        the dtype of the autoencoder's passes in the stream, which the latent file records."""
        return str(getattr(self.autoencoder, "inference_dtype", torch.float32)).removeprefix("torch.")

    @property
    def o2lnet_precision(self) -> str:
        """What ``assimilation.o2lnet_precision`` resolved to here (``float32`` or ``bfloat16``)."""
        return str(self.o2lnet_dtype).removeprefix("torch.")

    def use_static_variance(self, static: torch.Tensor) -> None:
        """Weigh ``static`` (update coordinates) alone as the background's variance: the hybrid
        weights become ``a = 1, b = 0`` (``assimilation.background_variance: cycling``)."""
        self.sigma_clim2 = static.to(self.device, self.sigma_clim2.dtype)
        self.hybrid_a, self.hybrid_b = 1.0, 0.0


def _calibration(path, n: int, names: list[str]) -> xr.Dataset:
    with xr.open_dataset(path) as cal:
        cal = cal.load()
    if int(cal.sizes["latent"]) != n:
        raise StreamError(f"{path} has {cal.sizes['latent']} latent elements, the autoencoder {n}: "
                          "rerun generate_lagged_ensemble")
    if list(cal["channel"].values) != names:
        raise StreamError(f"{path} channels {list(cal['channel'].values)} differ from the models' {names}")
    return cal


def _static_covariance(path, names: list[str], grid: Grid, dev, scale: float) -> StaticCovariance:
    with xr.open_dataset(path) as ds:
        if list(ds["channel"].values) != names:
            raise StreamError(f"{path} channels {list(ds['channel'].values)} differ from the models' "
                              f"{names}: rerun rule oi_covariance")
        return StaticCovariance.from_dataset(ds.load(), grid, dev, scale)


def load_stream_models(inputs: StreamInputs, device: str = "auto", rotation: bool = True,
                       static_covariance: bool = False, oi_b_scale: float = 1.0,
                       o2lnet_precision: str = "float32", autoencoder_precision: str = "float32") -> StreamModels:
    """Load the trained networks and the calibration; build the forecast model; check they fit.

    ``static_covariance``: also load ``inputs.oi_covariance`` (the ``oi`` method's);
    ``o2lnet_precision``: of O2Lnet's pass (``assimilation.o2lnet_precision``);
    ``autoencoder_precision``: of the autoencoder's passes (``assimilation.autoencoder_precision``)."""
    dev = resolve_device(device)
    ae_dtype = resolve_precision(autoencoder_precision, dev, "assimilation.autoencoder_precision")
    warn_if_emulated(ae_dtype, dev, "assimilation.autoencoder_precision")
    ae, payload = load_autoencoder(inputs.autoencoder, dev, ae_dtype)
    ae.requires_grad_(False)  # latent 3D-Var differentiates with respect to z only
    channels, grid = channels_from_state(payload["channels"]), grid_from_state(payload["grid"])
    o2l, o2l_payload = load_o2lnet(inputs.o2lnet, dev)
    check_models_agree(payload, inputs.autoencoder, o2l_payload, inputs.o2lnet)
    names = [c.name for c in channels]
    cal = _calibration(inputs.calibration, ae.cfg.n_latent, names)
    suffix = "_rotated" if rotation else ""
    space = UpdateSpace(torch.as_tensor(cal["rotation"].values, dtype=torch.float32),
                        torch.as_tensor(cal["rotation_block"].values) if "rotation_block" in cal else None
                        ) if rotation else UpdateSpace()
    clim = torch.as_tensor(cal[f"sigma_clim2{suffix}"].values, dtype=torch.float32)
    a, b = float(cal.attrs[f"hybrid_a{suffix}"]), float(cal.attrs[f"hybrid_b{suffix}"])
    s2_mean = space.forward_variance(torch.as_tensor(cal["s2_mean"].values, dtype=torch.float32)[None])[0]
    model_var = torch.as_tensor(cal["lead_rmse"].values[0], dtype=torch.float64).square()
    interval = inputs.forecast.interval
    model = inputs.forecast.build(channels)
    if model.interval != interval:
        raise StreamError(f"forecast model step {model.interval} differs from the cycle interval {interval}")
    if hasattr(model, "to"):
        model = model.to(dev)
    prior_mean = prior_var = None
    if "prior_mean" in cal:
        prior_mean = space.forward(torch.as_tensor(cal["prior_mean"].values, dtype=torch.float32)[None])[0].to(dev)
        prior_var = torch.as_tensor(cal[f"prior_var{suffix}"].values, dtype=torch.float32).to(dev)
    oi_path = inputs.oi_covariance if static_covariance else None  # without it, method oi says so
    o2lnet_dtype = resolve_precision(o2lnet_precision, dev, "assimilation.o2lnet_precision")
    warn_if_emulated(o2lnet_dtype, dev, "assimilation.o2lnet_precision")
    hashes = {f"{k}_sha256": file_sha256(p) for k, p in
              (("autoencoder", inputs.autoencoder), ("o2lnet", inputs.o2lnet), ("calibration", inputs.calibration),
               ("emulator", inputs.forecast.emulator), ("oi_covariance", oi_path)) if p}
    return StreamModels(
        ae, o2l, Normalizer.from_state(payload["normalizer"]), model, channels, grid, space.to(dev),
        clim.to(dev), s2_mean.to(dev), a, b, int(cal.attrs["members"]), model_var.to(dev), dev, interval, hashes,
        oi=_static_covariance(oi_path, names, grid, dev, oi_b_scale) if oi_path else None,
        phase=pd.Timedelta(hours=float(cal.attrs.get("cycle_phase_hours", 0.0))),
        prior_mean=prior_mean, prior_var=prior_var, o2lnet_dtype=o2lnet_dtype,
    )


def apply_tuning(models: StreamModels, path, cfg: StreamConfig) -> StreamModels:
    """Set the tuned factors of ``path`` (rule tune_stream's output) on ``models``; the file must
    have been tuned with ``cfg``'s settings (:func:`check_tuning_settings`)."""
    with xr.open_dataset(path) as ds:
        check_tuning_settings(ds.attrs, cfg, path)
        models.inflation_correction = torch.as_tensor(ds["inflation_correction"].values)
        models.analysis_variance_factor = torch.as_tensor(ds["analysis_variance_factor"].values)
        models.error_correlation = torch.as_tensor(ds["error_correlation"].values)
        if "observation_variance_factor" in ds:  # absent from tuning files written before it existed
            models.observation_variance_factor = torch.as_tensor(ds["observation_variance_factor"].values)
        if "static_variance" in ds:  # assimilation.background_variance: cycling
            static = torch.as_tensor(ds["static_variance"].values)
            if static.shape != models.sigma_clim2.shape:
                raise StreamError(f"{path} holds a static variance of {static.numel()} update coordinates, the "
                                  f"calibration {models.sigma_clim2.numel()}: rerun rule tune_stream")
            models.use_static_variance(static)
        if "increment_weight" in ds:  # assimilation.decoded_increment: weighted
            names = [c.name for c in models.channels]
            if list(ds["channel"].values) != names:
                raise StreamError(f"{path} weighs the increments of channels {list(ds['channel'].values)}, the "
                                  f"models have {names}: rerun rule tune_stream")
            models.increment_weights = torch.as_tensor(ds["increment_weight"].values)
            if "projection_weight" in ds:  # weighted_state: blended
                models.projection_weights = torch.as_tensor(ds["projection_weight"].values)
            elif cfg.weighted_state == "blended":
                raise StreamError(f"{path} has no weights of the autoencoder's change to the background "
                                  "(projection_weight), which weighted_state: blended needs: rerun rule tune_stream")
        elif cfg.decoded_increment == "weighted":
            raise StreamError(f"{path} has no weights of the decoded increment (written before they existed), "
                              "which assimilation.decoded_increment: weighted needs: rerun rule tune_stream")
        models.smoother = tuned_smoother(ds, cfg, path, models.interval)
    return models


def tuned_smoother(ds: xr.Dataset, cfg: StreamConfig, path, interval: pd.Timedelta) -> SmootherGains | None:
    """The smoother's gains of a tuning file (``None`` without ``assimilation.smoother_hours``); an
    error when the file has none or has them for another number of later cycles at the step ``interval``."""
    if cfg.smoother_hours is None:
        return None
    if "smoother_gain" not in ds:
        raise StreamError(f"{path} has no smoother gains, which assimilation.smoother_hours: {cfg.smoother_hours:g} "
                          "needs: rerun rule tune_stream (or set smoother_hours: null)")
    gains = SmootherGains(torch.as_tensor(ds["smoother_gain"].values), torch.as_tensor(ds["smoother_std_factor"].values))
    lags = smoother_lags(cfg.smoother_hours, interval)
    if gains.lags != lags:
        raise StreamError(f"{path} holds smoother gains for {gains.lags} later cycles, assimilation.smoother_hours "
                          f"{cfg.smoother_hours:g} reads {lags}: rerun rule tune_stream")
    return gains


# the settings a tuning file was tuned with (its attributes) that a stream reading it must share
TUNED_SETTINGS = ("rotation", "update", "calibrate_observation_variance", "background_variance",
                  "decoded_increment", "weighted_state", "increment_weight_refits",
                  "increment_weight_step", "increment_bands", "lead_guess")


def tuned_settings(cfg: StreamConfig) -> dict:
    """``cfg``'s :data:`TUNED_SETTINGS` as a tuning file's attributes record them (booleans as 0/1)."""
    values = {k: getattr(cfg, k) for k in TUNED_SETTINGS}
    return {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}


def check_tuning_settings(attrs, cfg: StreamConfig, path) -> None:
    """``StreamError`` naming the settings in which ``cfg`` differs from those the tuning file
    ``path`` (its attributes ``attrs``) was tuned with; files that do not record one pass it."""
    differ = [f"{k}: {attrs[k]} in the file, {getattr(cfg, k)} in this stream" for k, v in tuned_settings(cfg).items()
              if k in attrs and str(attrs[k]) != str(v)]
    if differ:
        raise StreamError(f"{path} was tuned with other settings ({'; '.join(differ)}): tune these settings "
                          "(rule tune_stream, or tune_variant's results/comparison/tuning/{variant}.nc for a "
                          "compared variant)")


def method_models(cfg: StreamConfig, inputs: StreamInputs, device: str = "auto") -> StreamModels:
    """The models a stream of ``cfg.method`` needs, with the tuning when the method is tuned (which
    must have been tuned with ``cfg``'s settings: :func:`apply_tuning`)."""
    method = REGISTRY[cfg.method]
    models = load_stream_models(inputs, device, cfg.rotation and method.rotates, method.needs_static_covariance,
                                cfg.oi_b_scale, cfg.o2lnet_precision, cfg.autoencoder_precision)
    if inputs.tuning and method.tuned:
        apply_tuning(models, inputs.tuning, cfg)
    return models
