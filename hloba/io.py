"""File I/O helpers: atomic writes, so that a killed job never leaves a partial file in place."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
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
    for name in ("time", "spinup_time"):
        if name in ds.coords:
            encoding[name] = {"units": "hours since 1900-01-01 00:00:00", "calendar": "proleptic_gregorian",
                              "dtype": "int64"}
    return encoding


class OutputError(OSError):
    """An output cannot be written; the message names the file and the likely cause."""


MIN_FREE_BYTES = 64 * 2**20  # below this the disk counts as full when a write fails


def write_failure_cause(path: str | os.PathLike, err: BaseException) -> str:
    """The likely cause of a failed write of ``path``: a full disk, permissions, or the error itself
    (netCDF reports a full disk as ``NetCDF: HDF error``)."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if isinstance(err, OSError) and err.errno == errno.ENOSPC or (free is not None and free < MIN_FREE_BYTES):
        return f"the disk is full ({free or 0} bytes free in {folder}): free space and rerun"
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        return f"{blocking} is a file where a folder is needed: move it away"
    if isinstance(err, PermissionError) or not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}"
    return f"{type(err).__name__}: {err}"


def check_writable(paths) -> None:
    """Before long work: every output's folder can be made and written to (an error names the first
    that cannot), so a read-only results folder fails at once, not after hours."""
    for path in paths:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise OutputError(f"cannot write {path}: {write_failure_cause(path, err)}") from None


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, complevel: int = 4) -> None:
    """Write ``ds`` as compressed netCDF4, atomically; a failed write names the file and its cause."""
    try:
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=netcdf_encoding(ds, complevel))
    except (OSError, RuntimeError) as err:
        raise OutputError(f"writing {path} failed: {write_failure_cause(path, err)}") from err
