"""Write reference years of the built-in world to netCDF (one file per year, atomically)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from hloba.io import write_netcdf
from hloba.world.simulate import WorldConfig, simulate_years

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available: use 'cpu' or 'auto'")
    return torch.device(device)


def write_reference_years(
    config: WorldConfig, paths: Mapping[int, str | os.PathLike], *, device: str = "cpu", progress: bool = True,
) -> None:
    """Simulate and write each year of ``paths`` (``{year: path}``)."""
    for year, ds in simulate_years(config, list(paths), device=resolve_device(device), progress=progress):
        write_netcdf(ds, paths[year])
        log.info("wrote %s", paths[year])
