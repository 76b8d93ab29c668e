"""The latent analysis file ``results/latent/{year}.nc``: one writer, one reader.

The stream writes it, the uncertainty calibration writes a short one in memory, decoding and
verification read it; its variable names and layout live here only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
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


class LatentFileError(ValueError):
    """A latent file lacks what its reader needs."""


def latent_dataset(fields: Mapping[str, np.ndarray], times, *, rotation: np.ndarray | None = None,
                   spinup: tuple[np.ndarray, object] | None = None, attrs: Mapping | None = None) -> xr.Dataset:
    """``fields`` (any of :data:`FIELDS`, ``(time, latent)`` each) at ``times``; ``rotation`` the
    update coordinates' columns (``w = V^T z``) when the update rotated; ``spinup = (z_a, times)``
    the spin-up cycles' analyses (the seam with the previous year's archive)."""
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
    if rotation is not None:
        data["rotation"] = (("latent", "mode"), np.asarray(rotation),
                            {"long_name": "update coordinates w = V^T z (columns of V)"})
        coords["mode"] = np.arange(rotation.shape[1])
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))


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
