"""Scores of a stream's latent analyses against the truth (OSSE): decode, compare, calibrate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hloba.latent import analysis_weights, decoded_analysis, kept_part, latent_precision, open_latent
from hloba.states import load_years
from hloba.normalization import Normalizer
from hloba.models.autoencoder import decode_all, encode_all, load_autoencoder
from hloba.scores import latent_calibration, rmse


def decode_physical(ae, normalizer: Normalizer, z: torch.Tensor, times) -> torch.Tensor:
    """Physical states ``D(z)`` destandardised at ``times``: ``(time, C, ny, nx)`` float64."""
    out = []
    times = pd.DatetimeIndex(times)
    for i in range(0, len(z), 256):
        out.append(normalizer.destandardize(decode_all(ae, z[i:i + 256]), times[i:i + 256]))
    return torch.cat(out)


def decode_analysis(ae, normalizer: Normalizer, z_a: torch.Tensor, times, weights=None,
                    z_b: torch.Tensor | None = None, kept=None) -> torch.Tensor:
    """Physical analyses of a latent file's ``z_a``: ``D(z_a)``, or with its per-channel ``weights``
    (:func:`hloba.latent.analysis_weights`) the state the stream cycled from, ``D(z_b) + g (D(z_a) -
    D(z_b))`` (the combination commutes with the per-channel units), plus the file's standardised
    ``kept`` background part where it has one (:func:`hloba.latent.kept_part`)."""
    x_b = None if weights is None else decode_physical(ae, normalizer, z_b, times)
    d_a = decode_physical(ae, normalizer, z_a, times)
    return decoded_analysis(d_a, x_b, weights, physical_anomaly(normalizer, kept))


def physical_anomaly(normalizer: Normalizer, x) -> torch.Tensor | None:
    """Standardised anomalies ``x: (time, C, ny, nx)`` in physical units (no climatology added)."""
    if x is None:
        return None
    return torch.as_tensor(x, dtype=torch.float64) * normalizer.anomaly_std.double()[None, :, None, None]


def truth_on(reference_paths, times: pd.DatetimeIndex, channels) -> torch.Tensor:
    x, t, _, _ = load_years(reference_paths, channels=channels)
    index = pd.DatetimeIndex(t).get_indexer(times)
    if (index < 0).any():
        raise ValueError(f"the reference lacks {int((index < 0).sum())} of the analysis times (first {times[index < 0][0]})")
    return x[torch.as_tensor(index)].double()


def stream_scores(latent_path, reference_paths, autoencoder_path, grid_weights) -> dict:
    """Per channel: RMSE of the decoded analysis (weighted where the file says so:
    :func:`hloba.latent.decoded_analysis`) and background, normalised by the anomaly std;
    monthly analysis RMSE (mean over channels, normalised); latent calibration of ``sigma_a2``."""
    ds = open_latent(latent_path, need=("z_a", "z_b", "sigma_a2"))
    ae, payload = load_autoencoder(autoencoder_path, inference_dtype=latent_precision(ds))  # as the stream ran it
    normalizer = Normalizer.from_state(payload["normalizer"])
    from hloba.models.checkpoint import channels_from_state

    channels = channels_from_state(payload["channels"])
    times = pd.DatetimeIndex(ds["time"].values)
    truth = truth_on(reference_paths, times, channels)
    z_a = torch.as_tensor(ds["z_a"].values)
    z_b = torch.as_tensor(ds["z_b"].values)
    x_b = decode_physical(ae, normalizer, z_b, times)
    x_a = decoded_analysis(decode_physical(ae, normalizer, z_a, times), x_b, analysis_weights(ds),
                           physical_anomaly(normalizer, kept_part(ds)))
    std = normalizer.anomaly_std.double()
    scale = std[None, :, None, None]
    ana = rmse(x_a / scale, truth / scale, grid_weights)
    bkg = rmse(x_b / scale, truth / scale, grid_weights)
    months = times.month.to_numpy()
    monthly = {}
    for mth in np.unique(months):
        sel = torch.as_tensor(np.nonzero(months == mth)[0])
        monthly[int(mth)] = float(rmse(x_a[sel] / scale, truth[sel] / scale, grid_weights).mean())
    z_true = encode_all(ae, normalizer.standardize(truth, times))
    return {
        "channels": [c.name for c in channels],
        "analysis_rmse": ana.numpy(), "background_rmse": bkg.numpy(), "monthly_rmse": monthly,
        "latent_calibration": latent_calibration(z_a, torch.as_tensor(ds["sigma_a2"].values), z_true),
        "method": ds.attrs.get("method"),
    }
