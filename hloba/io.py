"""File I/O helpers: atomic writes, so that a killed job never leaves a partial file in place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import xarray as xr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Temporary files of ``path`` left by a killed writer (``SIGKILL`` skips the cleanup) are
    removed first: one job writes one output at a time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.part"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def netcdf_encoding(ds: xr.Dataset, complevel: int = 4, time_chunk: int = 124) -> dict:
    """Compressed, time-chunked netCDF4 encoding for every data variable of ``ds``."""
    encoding = {}
    for name, var in ds.data_vars.items():
        enc = {"zlib": True, "complevel": complevel, "shuffle": True}
        if "time" in var.dims:
            enc["chunksizes"] = tuple(
                min(time_chunk, var.sizes[d]) if d == "time" else var.sizes[d] for d in var.dims
            )
        encoding[name] = enc
    if "time" in ds.coords:
        encoding["time"] = {"units": "hours since 1900-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}
    return encoding


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, complevel: int = 4) -> None:
    """Write ``ds`` as compressed netCDF4, atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=netcdf_encoding(ds, complevel))
