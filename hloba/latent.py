"""The latent analysis file ``results/latent/{year}.nc``: one writer, one reader.

The stream writes it, the uncertainty calibration writes a short one in memory, decoding and
verification read it; its variable names and layout live here only.

Where the file holds ``increment_weight`` (one weight ``g_c`` per channel: HLOBA with
``assimilation.weighted_state: combined``), its analysis is not ``D(z_a)`` but the state the stream
cycled from, ``D(z_b) + g_c (D(z_a) - D(z_b))`` (:func:`weighted_increment`, standardised space):
``z_a`` is then the update's own latent analysis and every reader decodes through
:func:`analysis_weights`. With ``weighted_state: blended`` the file also holds ``kept_background``,
the part of the stream's background that the autoencoder cannot represent and the analysis keeps
(:func:`kept_background`, standardised, one model-space field per cycle, stored as int16 multiples
of :data:`KEPT_QUANTUM`), which readers add
(:func:`decoded_analysis`, :func:`kept_part`). The attribute :data:`AUTOENCODER_PRECISION` says in
which dtype the stream ran the autoencoder (``assimilation.autoencoder_precision``); readers decode
in the same one (:func:`latent_precision`), so that they get the states the stream cycled from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.bands import band_weighted

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
# (time, channel, y, x), standardised: added to that where the stream kept part of its background
# that the autoencoder cannot represent (weighted_state: blended; hloba.latent.kept_background)
KEPT = "kept_background"
# the kept part is stored as whole multiples of KEPT_QUANTUM (int16: |values| up to 8 anomaly std), and
# the stream cycles from the same multiples (quantized_kept), so that the archive decodes its state
KEPT_QUANTUM = 2.0 ** -12
AUTOENCODER_PRECISION = "autoencoder_precision"  # attribute: the autoencoder's dtype in the stream


class LatentFileError(ValueError):
    """A latent file lacks what its reader needs."""


def latent_dataset(fields: Mapping[str, np.ndarray], times, *, rotation: np.ndarray | None = None,
                   spinup: tuple | None = None, attrs: Mapping | None = None,
                   increment_weights: Mapping[str, float] | None = None,
                   kept: tuple[np.ndarray, np.ndarray | None] | None = None) -> xr.Dataset:
    """``fields`` (any of :data:`FIELDS`, ``(time, latent)`` each) at ``times``; ``rotation`` the
    update coordinates' columns (``w = V^T z``) when the update rotated; ``spinup = (z_a, times)``
    or ``(z_a, times, z_b)`` the spin-up cycles' analyses (the seam with the previous year's
    archive; their backgrounds where the analysis is weighted); ``increment_weights``
    ``{channel: g}`` (``g`` a number, or one per octave band: :mod:`hloba.bands`) when the analysis
    is ``D(z_b) + g (D(z_a) - D(z_b))`` (then ``fields`` holds
    ``z_b`` and a spin-up its backgrounds); ``kept = (year's, spin-up's)`` parts that every reader
    adds to the decoded analysis (:data:`KEPT`: the part of the background that a weighted analysis
    keeps beyond the latent combination, the smoother's correction), ``(time, channel, y, x)`` int16
    multiples of :data:`KEPT_QUANTUM` (:func:`quantized_kept`)."""
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
        g = np.asarray(list(increment_weights.values()), np.float64)
        data[WEIGHTS] = (("channel", "band")[: g.ndim], g, {
            "long_name": "weight g of the decoded increment: analysis = D(z_b) + g (D(z_a) - D(z_b))",
            **({"comment": "per octave band of the increment, longest first (hloba.bands)"} if g.ndim > 1 else {})})
        coords["channel"] = list(increment_weights)
    if kept is not None:
        dims = ("time", "channel", "y", "x")
        text = ("kept part added to the decoded analysis (standardised): the part of the background that the "
                "autoencoder cannot represent (weighted_state: blended) and the smoother's correction (smoother_hours)")
        packing = {"quantum": KEPT_QUANTUM, "comment": "standardised value = stored integer * quantum"}
        data[KEPT] = (dims, np.asarray(kept[0], np.int16), {"long_name": text, **packing})
        if "z_a_spinup" in data:
            data[f"{KEPT}_spinup"] = (("spinup_time", *dims[1:]), np.asarray(kept[1], np.int16),
                                      {"long_name": text + " at the spin-up cycles", **packing})
    if rotation is not None:
        data["rotation"] = (("latent", "mode"), np.asarray(rotation),
                            {"long_name": "update coordinates w = V^T z (columns of V)"})
        coords["mode"] = np.arange(rotation.shape[1])
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))


def latent_precision(latent: xr.Dataset) -> torch.dtype:
    """The dtype the stream ran the autoencoder in (:data:`AUTOENCODER_PRECISION`; float32 for files
    that do not record one), for readers to decode in."""
    name = str(latent.attrs.get(AUTOENCODER_PRECISION, "float32"))
    if name not in ("float32", "bfloat16"):
        raise LatentFileError(f"latent file attribute {AUTOENCODER_PRECISION}={name!r} is neither float32 nor "
                              "bfloat16: rerun the stream that wrote it")
    return getattr(torch, name)


def analysis_weights(latent: xr.Dataset) -> np.ndarray | None:
    """The per-channel weights of a weighted analysis (:data:`WEIGHTS`), or ``None`` where the
    analysis is ``D(z_a)``."""
    return latent[WEIGHTS].values if WEIGHTS in latent else None


def decoded_analysis(d_a: torch.Tensor, d_b: torch.Tensor | None, weights,
                     kept: torch.Tensor | None = None) -> torch.Tensor:
    """The analysis a latent file's decodings make: ``d_a = D(z_a)``, or with the file's per-channel
    ``weights`` (:func:`analysis_weights`) ``D(z_b) + g (D(z_a) - D(z_b))`` (``d_b = D(z_b)``, read
    only then), plus the file's ``kept`` background part where it has one (:func:`kept_part`). The
    combination commutes with the per-channel units, so ``d_a, d_b`` may be standardised or
    physical alike (``kept`` as anomalies in the same units, no climatology)."""
    x = d_a if weights is None else weighted_increment(d_b, d_a, torch.as_tensor(weights))
    return x if kept is None else x + torch.as_tensor(kept).to(x.device, x.dtype)


def kept_part(latent: xr.Dataset, index=slice(None), spinup: bool = False) -> np.ndarray | None:
    """The latent file's kept background part (:data:`KEPT`, standardised) at ``index`` of its times
    (``spinup``: of its spin-up times), or ``None`` where it has none."""
    name = f"{KEPT}_spinup" if spinup else KEPT
    if name not in latent:
        return None
    return latent[name].values[index].astype(np.float32) * np.float32(latent[name].attrs.get("quantum", KEPT_QUANTUM))


def weighted_increment(x_b: torch.Tensor, x_a: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``x_b + g_c (x_a - x_b)`` per channel ``c``: the decoded analysis ``x_a`` taken at weight
    ``g_c`` over the decoded background ``x_b``. ``x_b, x_a: (batch, C, ny, nx)``, ``weights: (C,)``
    (1: the analysis, 0: the background), or ``(C, B)``: a weight per octave band of the increment
    (:func:`hloba.bands.band_weighted`): :func:`incremental_state` with the decoded background as
    the base."""
    return incremental_state(x_b, x_b, x_a, weights)


def incremental_state(x_b: torch.Tensor, d_b: torch.Tensor, d_a: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``x_b + g_c (d_a - d_b)`` per channel ``c``: the decoded increment ``d_a - d_b`` (the decoded
    analysis minus the decoded background) taken at weight ``g_c`` and added to the background
    ``x_b`` itself, whose part the autoencoder cannot represent is kept (as an operational
    incremental analysis adds its increment to the full-resolution background). All
    ``(batch, C, ny, nx)`` in one space; the result in ``x_b``'s dtype. ``weights (C, B)``: one per
    channel and octave band of the increment (``assimilation.increment_bands``, :mod:`hloba.bands`)."""
    return x_b + band_weighted((d_a - d_b).to(x_b.dtype), weights)


def kept_background(x_b: torch.Tensor, d_b: torch.Tensor, projection_weights: torch.Tensor) -> torch.Tensor:
    """``(1 - h_c) (x_b - d_b)`` per channel ``c``: the part of the background ``x_b`` that the
    autoencoder cannot represent (``d_b = D(E(x_b))``) kept at weight ``1 - h_c`` (``h (C, B)``:
    ``1 - h_cb`` in each octave band, :mod:`hloba.bands`), rounded to whole
    multiples of :data:`KEPT_QUANTUM` as the latent file stores it (:func:`quantized_kept`).
    ``(batch, C, ny, nx)`` in ``d_b``'s dtype."""
    keep = 1 - torch.as_tensor(projection_weights).to(d_b.device, d_b.dtype)
    return quantized_kept(band_weighted(x_b.to(d_b.dtype) - d_b, keep)).to(d_b.dtype) * KEPT_QUANTUM


def quantized_kept(kept: torch.Tensor) -> torch.Tensor:
    """``kept`` (standardised) in whole multiples of :data:`KEPT_QUANTUM` (about 2.4e-4 of an anomaly
    std), int16, clipped to the int16 range (8 anomaly std); exact for values already on that grid."""
    return (kept.double() / KEPT_QUANTUM).round().clamp(-32767, 32767).to(torch.int16)


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
