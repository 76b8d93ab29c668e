"""The latent analysis file ``results/latent/{year}.nc``: one writer, one reader.

The stream writes it, the uncertainty calibration writes a short one in memory, decoding and
verification read it; its variable names and layout live here only.

Where the file holds ``increment_weight`` (one weight ``g_c`` per channel: HLOBA with
``assimilation.weighted_state: combined``), its analysis is not ``D(z_a)`` but the state the stream
cycled from, ``D(z_b) + g_c (D(z_a) - D(z_b))`` (:func:`weighted_increment`, standardised space):
``z_a`` is then the update's own latent analysis and every reader decodes through
:func:`analysis_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr

FIELDS = {
    "z_b": "latent background E(x_b)",
    "z_o": "latent observation estimate from O2Lnet",
    "z_a": "latent analysis",
    "sigma_b2": "hybrid background error variance (latent)",
    "sigma_o2": "O2Lnet error variance (latent)",
    "sigma_a2": "analysis error variance (latent, diagonal)",
    "sigma_a2_update": "analysis error variance in update coordinates (diagonal there)",
    "sigma_b2_update": "background error variance in update coordinates",
}
DECODED = ("z_a", "sigma_a2_update")  # what decoding reads
WEIGHTS = "increment_weight"  # per channel: the analysis decodes as D(z_b) + g (D(z_a) - D(z_b))


class LatentFileError(ValueError):
    """A latent file lacks what its reader needs."""


def latent_dataset(fields: Mapping[str, np.ndarray], times, *, rotation: np.ndarray | None = None,
                   spinup: tuple | None = None, attrs: Mapping | None = None,
                   increment_weights: Mapping[str, float] | None = None) -> xr.Dataset:
    """``fields`` (any of :data:`FIELDS`, ``(time, latent)`` each) at ``times``; ``rotation`` the
    update coordinates' columns (``w = V^T z``) when the update rotated; ``spinup = (z_a, times)``
    or ``(z_a, times, z_b)`` the spin-up cycles' analyses (the seam with the previous year's
    archive; their backgrounds where the analysis is weighted); ``increment_weights``
    ``{channel: g}`` when the analysis is ``D(z_b) + g (D(z_a) - D(z_b))`` (then ``fields`` holds
    ``z_b`` and a spin-up its backgrounds)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"latent fields {unknown} are not among {sorted(FIELDS)}")
    data = {k: (("time", "latent"), np.asarray(v, np.float32), {"long_name": FIELDS[k]}) for k, v in fields.items()}
    n = next(iter(data.values()))[1].shape[1]
    coords = {"time": pd.DatetimeIndex(times), "latent": np.arange(n)}
    if spinup is not None and len(spinup[1]):
        data["z_a_spinup"] = (("spinup_time", "latent"), np.asarray(spinup[0], np.float32),
                              {"long_name": "latent analysis of the spin-up cycles (before the year)"})
        coords["spinup_time"] = pd.DatetimeIndex(spinup[1])
        if len(spinup) > 2 and spinup[2] is not None:
            data["z_b_spinup"] = (("spinup_time", "latent"), np.asarray(spinup[2], np.float32),
                                  {"long_name": "latent background of the spin-up cycles"})
    if increment_weights is not None:
        if "z_b" not in fields or (spinup is not None and len(spinup[1]) and (len(spinup) < 3 or spinup[2] is None)):
            raise ValueError("a weighted analysis needs its backgrounds z_b (and the spin-up's) in the latent file")
        data[WEIGHTS] = (("channel",), np.asarray(list(increment_weights.values()), np.float64),
                         {"long_name": "weight g of the decoded increment: analysis = D(z_b) + g (D(z_a) - D(z_b))"})
        coords["channel"] = list(increment_weights)
    if rotation is not None:
        data["rotation"] = (("latent", "mode"), np.asarray(rotation),
                            {"long_name": "update coordinates w = V^T z (columns of V)"})
        coords["mode"] = np.arange(rotation.shape[1])
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))


def analysis_weights(latent: xr.Dataset) -> np.ndarray | None:
    """The per-channel weights of a weighted analysis (:data:`WEIGHTS`), or ``None`` where the
    analysis is ``D(z_a)``."""
    return latent[WEIGHTS].values if WEIGHTS in latent else None


def decoded_analysis(d_a: torch.Tensor, d_b: torch.Tensor | None, weights) -> torch.Tensor:
    """The analysis a latent file's decodings make: ``d_a = D(z_a)``, or with the file's per-channel
    ``weights`` (:func:`analysis_weights`) ``D(z_b) + g (D(z_a) - D(z_b))`` (``d_b = D(z_b)``, read
    only then). The combination commutes with the per-channel units, so ``d_a, d_b`` may be
    standardised or physical alike."""
    return d_a if weights is None else weighted_increment(d_b, d_a, torch.as_tensor(weights))


def weighted_increment(x_b: torch.Tensor, x_a: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``x_b + g_c (x_a - x_b)`` per channel ``c``: the decoded analysis ``x_a`` taken at weight
    ``g_c`` over the decoded background ``x_b``. ``x_b, x_a: (batch, C, ny, nx)``, ``weights: (C,)``
    (1: the analysis, 0: the background): :func:`incremental_state` with the decoded background as
    the base."""
    return incremental_state(x_b, x_b, x_a, weights)


def incremental_state(x_b: torch.Tensor, d_b: torch.Tensor, d_a: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``x_b + g_c (d_a - d_b)`` per channel ``c``: the decoded increment ``d_a - d_b`` (the decoded
    analysis minus the decoded background) taken at weight ``g_c`` and added to the background
    ``x_b`` itself, whose part the autoencoder cannot represent is kept (as an operational
    incremental analysis adds its increment to the full-resolution background). All
    ``(batch, C, ny, nx)`` in one space; the result in ``x_b``'s dtype."""
    g = torch.as_tensor(weights).to(x_b.device, x_b.dtype)[None, :, None, None]
    return x_b + g * (d_a - d_b).to(x_b.dtype)


def open_latent(path, need=DECODED) -> xr.Dataset:
    """The latent file at ``path``, loaded; an error names the file and what it lacks."""
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError) as err:
        raise LatentFileError(f"latent file {path} cannot be read ({err}): rerun assimilate_year") from None
    missing = [k for k in need if k not in ds]
    if missing:
        raise LatentFileError(f"latent file {path} lacks {missing}: rerun assimilate_year")
    return ds
