"""The archive's std from a network that reads where the analysis is likely wrong (issue #16).

The Monte-Carlo std ``D(z_a + V (sigma_w * eps))`` has the right size but little shape: the update
rotation's global modes average away where the observations are, and the lagged spread carries
almost no flow information. ``uncertainty.model: network`` replaces it, per channel and grid
point, by ``exp(s / 2)`` with ``s`` the log error variance a small periodic convolutional network
predicts from what the stream knows at that time:

- the decoded analysis (standardised anomaly), the decoded increment (analysis minus ``D(z_b)``) and the
  decoded O2Lnet-minus-background difference ``D(z_o) - D(z_b)`` (in anomaly-std units);
- the log Monte-Carlo variance of every channel;
- the log background and O2Lnet variances of every latent channel, upsampled to the grid
  (O2Lnet's is large far from the observations).

It is fitted by Gaussian negative log-likelihood of the errors of a stream on the calibration
year (rule calibrate_uncertainty, truth known), keeping the weights of the best validation epoch
(a fifth of the times, in runs spread over the year: :func:`validation_times`), then per channel
one offset of the log variance that makes the rms std equal to the RMSE over all the calibration
times (:func:`calibration_offset`). With the last fifth of the year choosing the epoch, the tiny
world's network stopped at its second epoch (its autumn errs less than the rest of the year) and
gave spread/RMSE 1.13-1.36 on its own calibration year. ``uncertainty.model: factor`` keeps the
former per-channel factor on the Monte-Carlo std (selectable for comparison). Measured in
``scripts/std_model_experiment.py``.

By default two networks are fitted from seeds 0 and 1 and the std comes from the mean of their
log variances (:class:`StdEnsemble`, one offset fitted on that mean); each keeps a moving average
of its weights (``ema``). On the default world's 2011 this raised corr(std, |error|) by
0.012-0.017 in every channel over one network (``scripts/std_ensemble_experiment.py``).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
import torch.nn.functional as F

from hloba.models.checkpoint import load_module, save_checkpoint
from hloba.models.training import step_precision

log = logging.getLogger(__name__)

KIND = "std_model"
EPS = 1e-12
STD_MODEL_FIELDS = {"background": "z_b", "estimate": "z_o"}  # decoded besides the analysis


class StdNet(torch.nn.Module):
    """``(batch, n_in, ny, nx) -> (batch, n_out, ny, nx)`` log error variance (anomaly-std units).

    3 x 3 convolutions; each axis padded periodically where the grid wraps, by repetition where
    it does not."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 32, layers: int = 4,
                 periodic: tuple[bool, bool] = (True, True)) -> None:
        super().__init__()
        self.periodic = tuple(bool(p) for p in periodic)
        sizes = [n_in] + [hidden] * (layers - 1) + [n_out]
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(a, b, 3) for a, b in zip(sizes[:-1], sizes[1:]))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        lat_periodic, lon_periodic = self.periodic
        x = F.pad(x, (1, 1, 0, 0), mode="circular" if lon_periodic else "replicate")
        return F.pad(x, (0, 0, 1, 1), mode="circular" if lat_periodic else "replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(self.pad(x))
            if i < len(self.convs) - 1:
                x = F.gelu(x)
        return x


class StdEnsemble(torch.nn.Module):
    """The mean of its members' log variances (each a :class:`StdNet` fitted from another seed)."""

    def __init__(self, members) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def build_std_net(config: dict) -> StdNet | StdEnsemble:
    def net():
        return StdNet(config["n_in"], config["n_out"], config["hidden"], config["layers"], tuple(config["periodic"]))

    if "members" not in config:  # a single network (written before ensembles existed)
        return net()
    return StdEnsemble([net() for _ in range(config["members"])])


def first_member(net: StdNet | StdEnsemble) -> StdNet:
    return net.members[0] if isinstance(net, StdEnsemble) else net


def std_inputs(anomaly: np.ndarray, increment: np.ndarray, innovation: np.ndarray, mc_std: np.ndarray,
               sigma_o2: np.ndarray, sigma_b2: np.ndarray, latent_shape) -> np.ndarray:
    """The network's inputs ``(time, 4 C + 2 C_latent, ny, nx)`` float32, not yet centred.

    ``anomaly``, ``increment``, ``innovation`` and ``mc_std`` are ``(time, C, ny, nx)`` in
    anomaly-std units; ``sigma_o2``, ``sigma_b2`` are ``(time, n_latent)`` on the latent grid
    ``latent_shape = (C_latent, h, w)``."""
    grid = anomaly.shape[-2:]

    def upsampled_log(v):
        lv = torch.as_tensor(np.log(np.asarray(v, np.float64).reshape(len(v), *latent_shape) + EPS))
        return F.interpolate(lv, size=grid, mode="bilinear", align_corners=False).numpy()

    parts = [anomaly, increment, innovation, np.log(np.asarray(mc_std, np.float64) ** 2 + EPS),
             upsampled_log(sigma_o2), upsampled_log(sigma_b2)]
    return np.concatenate([np.asarray(p, np.float32) for p in parts], axis=1)


def weighted_nll(log_var: torch.Tensor, err2: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (without constants) over area weights ``(1, 1, ny, 1)``."""
    return (weights * (log_var + err2 * torch.exp(-log_var))).mean()


def validation_times(n: int, fraction: float, blocks: int = 25) -> torch.Tensor:
    """``(n,)`` bool: the times that choose the epoch, every ``round(1 / fraction)``-th of ``blocks``
    runs of consecutive times (the last of each group), so that they cover every season of the
    calibration period as the fitted times do; at least one."""
    every = max(2, int(round(1.0 / fraction)))
    length = max(1, n // blocks)
    mask = (torch.arange(n) // length) % every == every - 1
    if not bool(mask.any()):
        mask[-1] = True
    return mask


def fit_std_net(inputs: np.ndarray, err2: np.ndarray, area_weights: np.ndarray, *, epochs: int = 30,
                hidden: int = 32, layers: int = 4, periodic=(True, True), validation_fraction: float = 0.2,
                batch: int = 8, lr: float = 2e-3, seed: int = 0, patience: int = 5,
                dtype: torch.dtype = torch.float32, ema: float = 0.0) -> tuple[StdNet, dict]:
    """Fit :class:`StdNet` on ``inputs`` (centred) against squared errors ``err2`` (anomaly-std
    units, ``(time, C, ny, nx)``); ``validation_fraction`` of the times, in runs spread over the
    period (:func:`validation_times`), choose the epoch, and training stops after ``patience``
    epochs without a better one (or after ``epochs``). ``dtype``: the training steps'
    convolutions (bfloat16 under autocast; weights, optimiser, loss and validation float32).
    ``ema``: the weights validated and kept are an exponential moving average of the steps'
    (``w <- ema w + (1 - ema) w_step``; 0: the last step's).
    Returns the network (eval mode) and a report (per-epoch losses, the best epoch)."""
    if not 0.0 <= ema < 1.0:
        raise ValueError(f"uncertainty.network_ema is {ema}: give a value in [0, 1)")
    if len(inputs) < 5:
        raise ValueError(f"the std network needs at least 5 calibration times, got {len(inputs)}: "
                         "lengthen uncertainty.calibration_days, lower uncertainty.calibration_every or use "
                         "uncertainty.model: factor")
    torch.manual_seed(seed)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    e2 = torch.as_tensor(err2, dtype=torch.float32)
    w = torch.as_tensor(area_weights / np.mean(area_weights), dtype=torch.float32)[None, None, :, None]
    val_mask = validation_times(len(x), validation_fraction)
    x_val, e2_val, x, e2 = x[val_mask], e2[val_mask], x[~val_mask], e2[~val_mask]
    n_val, n_fit = len(x_val), len(x)
    net = StdNet(x.shape[1], e2.shape[1], hidden, layers, periodic)
    with torch.no_grad():
        net.convs[-1].bias.copy_(torch.log(e2.mean(dim=(0, 2, 3)).clamp(min=EPS)))
    averaged = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    best_epoch, best_state, history = -1, None, []
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for idx in torch.randperm(n_fit, generator=g).split(batch):
            with step_precision(torch.device("cpu"), dtype):
                log_var = net(x[idx])
            loss = weighted_nll(log_var.float(), e2[idx], w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for avg, new in zip(averaged.parameters(), net.parameters()):
                    avg.lerp_(new, 1.0 - ema)
            total += float(loss.detach()) * len(idx)
        averaged.eval()
        with torch.no_grad():
            val = float(weighted_nll(averaged(x_val), e2_val, w))
        history.append({"epoch": epoch, "train_nll": total / n_fit, "val_nll": val})
        if best_epoch < 0 or val < history[best_epoch]["val_nll"]:
            best_epoch, best_state = epoch, copy.deepcopy(averaged.state_dict())
        log.info("std network epoch %d/%d: train NLL %.4f, validation NLL %.4f", epoch + 1, epochs, total / n_fit, val)
        if epoch - best_epoch >= patience:
            break
    averaged.load_state_dict(best_state)
    averaged.eval()
    return averaged, {"history": history, "best_epoch": best_epoch, "fit_times": n_fit, "validation_times": n_val}


def physical_inputs(mean, background, estimate, mc_std, sigma_o2, sigma_b2, normalizer, times,
                    latent_shape) -> np.ndarray:
    """:func:`std_inputs` from physical ``(time, C, ny, nx)`` decoded fields and the stream's
    latent variances; ``normalizer``: the autoencoder's :class:`hloba.normalization.Normalizer`."""
    sd = normalizer.anomaly_std.numpy()[None, :, None, None]
    anomaly = normalizer.standardize(torch.as_tensor(np.asarray(mean)), times).numpy()
    return std_inputs(anomaly, (mean - background) / sd, (estimate - background) / sd, mc_std / sd,
                      sigma_o2, sigma_b2, latent_shape)


class StdModel:
    """A fitted network (or ensemble) with its input centring: ``predict`` gives the std in
    physical units."""

    def __init__(self, net: StdNet | StdEnsemble, center: np.ndarray, scale: np.ndarray, anomaly_std: np.ndarray,
                 latent_shape, log_offset: np.ndarray | None = None) -> None:
        self.net = net.eval()
        n_out = first_member(net).convs[-1].out_channels
        offset = np.zeros(n_out) if log_offset is None else np.asarray(log_offset, np.float64)
        self.log_offset = offset.reshape(1, n_out, 1, 1)
        self.latent_shape = tuple(int(v) for v in latent_shape)
        self.center = np.asarray(center, np.float32)[None, :, None, None]
        self.scale = np.asarray(scale, np.float32)[None, :, None, None]
        self.anomaly_std = np.asarray(anomaly_std, np.float64)[None, :, None, None]

    @staticmethod
    def centring(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per input channel mean and std (floored) over times and points."""
        center = inputs.mean(axis=(0, 2, 3), dtype=np.float64)
        scale = np.maximum(inputs.std(axis=(0, 2, 3), dtype=np.float64), 1e-6)
        return center.astype(np.float32), scale.astype(np.float32)

    def standardize(self, inputs: np.ndarray) -> np.ndarray:
        return (inputs - self.center) / self.scale

    @torch.no_grad()
    def log_variance(self, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
        """The network's log error variance (anomaly-std units, before the offset) ``(time, C, ny, nx)``."""
        x = self.standardize(inputs)
        out = [self.net(torch.as_tensor(x[i:i + batch])).numpy() for i in range(0, len(x), batch)]
        return np.concatenate(out).astype(np.float64)

    def predict(self, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
        """Physical std ``(time, C, ny, nx)`` float32 from uncentred :func:`std_inputs`."""
        log_var = self.log_variance(inputs, batch) + self.log_offset
        return (np.exp(0.5 * log_var) * self.anomaly_std).astype(np.float32)


def calibration_offset(log_var: np.ndarray, err2: np.ndarray, area_weights: np.ndarray) -> np.ndarray:
    """Per channel, the constant ``c`` added to ``log_var`` that makes the area-weighted mean of the
    variance equal that of the squared errors ``err2`` (both ``(time, C, ny, nx)``): ``c =
    log(mean_w(err2) / mean_w(exp(log_var)))``, so spread/RMSE is 1 over these times."""
    w = np.asarray(area_weights, np.float64)[None, None, :, None]
    e2 = (np.asarray(err2, np.float64) * w).sum(axis=(0, 2, 3))
    v = (np.exp(np.asarray(log_var, np.float64)) * w).sum(axis=(0, 2, 3))
    return np.log(np.maximum(e2, 1e-300) / np.maximum(v, 1e-300))


def fit_std_model(inputs: np.ndarray, err2: np.ndarray, area_weights: np.ndarray, anomaly_std: np.ndarray,
                  latent_shape, members: int = 1, seed: int = 0, **fit) -> tuple[StdModel, dict]:
    """A :class:`StdModel` fitted on uncentred :func:`std_inputs` against squared errors in
    anomaly-std units (``fit``: :func:`fit_std_net`'s keywords); with ``members > 1`` a
    :class:`StdEnsemble` of that many networks fitted from seeds ``seed, seed + 1, ...``, its
    offset fitted on their mean log variance. Returns it and the fit's report (one per member)."""
    if members < 1:
        raise ValueError(f"uncertainty.network_members is {members}: give at least 1")
    center, scale = StdModel.centring(inputs)
    x = (inputs - center[None, :, None, None]) / scale[None, :, None, None]
    nets, reports = [], []
    for i in range(members):
        net, report = fit_std_net(x, err2, area_weights, seed=seed + i, **fit)
        log.info("std network member %d/%d: best epoch %d of %d (validation NLL %.4f)", i + 1, members,
                 report["best_epoch"] + 1, len(report["history"]), report["history"][report["best_epoch"]]["val_nll"])
        nets.append(net)
        reports.append(report)
    del x
    model = StdModel(nets[0] if members == 1 else StdEnsemble(nets), center, scale, anomaly_std, latent_shape)
    offset = calibration_offset(model.log_variance(inputs), err2, area_weights)
    log.info("std network: calibration offset of the log variance per channel %s",
             np.array2string(offset, precision=3))
    model.log_offset = offset.reshape(model.log_offset.shape)
    return model, {"members": reports, "log_offset": offset.tolist()}


def network_std(model: StdModel, decoded: dict, sigma_o2, sigma_b2, normalizer, times, latent_shape,
                chunk: int = 64) -> np.ndarray:
    """The archive's std ``(time, C, ny, nx)`` from ``decoded`` (``mean``, ``background``,
    ``estimate``, ``mc_std``: physical arrays), a chunk of times at a time."""
    out = np.empty(decoded["mean"].shape, np.float32)
    for i in range(0, len(times), chunk):
        c = slice(i, i + chunk)
        x = physical_inputs(decoded["mean"][c], decoded["background"][c], decoded["estimate"][c],
                            decoded["mc_std"][c], sigma_o2[c], sigma_b2[c], normalizer, times[c], latent_shape)
        out[c] = model.predict(x)
    return out


def save_std_model(path, model: StdModel, channels, grid, normalizer_state: dict, meta: dict) -> None:
    n = first_member(model.net)
    config = {"n_in": n.convs[0].in_channels, "n_out": n.convs[-1].out_channels, "hidden": n.convs[0].out_channels,
              "layers": len(n.convs), "periodic": list(n.periodic), "latent_shape": list(model.latent_shape)}
    if isinstance(model.net, StdEnsemble):
        config["members"] = len(model.net.members)
    save_checkpoint(path, KIND, config, model.net.state_dict(), channels, grid, normalizer_state, meta,
                    tensors={"center": torch.as_tensor(model.center.ravel()),
                             "scale": torch.as_tensor(model.scale.ravel()),
                             "log_offset": torch.as_tensor(model.log_offset.ravel())})


def load_std_model(path) -> tuple[StdModel, dict]:
    net, payload = load_module(path, KIND, build_std_net)
    anomaly_std = payload["normalizer"]["anomaly_std"].numpy()
    offset = payload["log_offset"].numpy() if "log_offset" in payload else None  # absent before it existed
    return StdModel(net, payload["center"].numpy(), payload["scale"].numpy(), anomaly_std,
                    payload["config"]["latent_shape"], offset), payload
