"""Write reference years of the built-in world to netCDF (one file per year, atomically)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from hloba.io import write_netcdf
from hloba.runtime import resolve_device
from hloba.world.simulate import WorldConfig, simulate_years

log = logging.getLogger(__name__)


def write_reference_years(
    config: WorldConfig, paths: Mapping[int, str | os.PathLike], *, device: str = "cpu", progress: bool = True,
    chain: int = 0,
) -> None:
    """Simulate and write each year of ``paths`` (``{year: path}``), one continuous run: chain
    ``chain`` of the world."""
    for year, ds in simulate_years(config, list(paths), device=resolve_device(device), progress=progress, chain=chain):
        write_netcdf(ds, paths[year])
        log.info("wrote %s", paths[year])
