"""File layouts as published: coordinate and variable names, regions, the time axis and its gaps."""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


log = logging.getLogger(__name__)


COORD_ALIASES = {
    "time": ("time", "valid_time", "t", "date"),
    "level": ("level", "pressure_level", "isobaricInhPa", "plev", "lev", "pressure"),
    "latitude": ("latitude", "lat", "y_lat"),
    "longitude": ("longitude", "lon", "x_lon"),
}
# ERA5 / WeatherBench-2 short names -> the pipeline's names (a user's mapping takes precedence)
ERA5_NAMES = {
    "z": "geopotential", "t": "temperature", "u": "u_component_of_wind", "v": "v_component_of_wind",
    "q": "specific_humidity", "msl": "mean_sea_level_pressure", "t2m": "2m_temperature",
    "u10": "10m_u_component_of_wind", "v10": "10m_v_component_of_wind",
}


class ReferenceFilesError(ValueError):
    """The user's reference files do not fit the configuration."""


def reference_paths(pattern: str) -> list[str]:
    """The files (or the zarr store) that ``reference.path`` names."""
    p = Path(pattern)
    if p.suffix == ".zarr" or (p.is_dir() and ((p / ".zgroup").exists() or (p / "zarr.json").exists())):
        if not p.exists():
            raise ReferenceFilesError(f"reference.path {pattern!r}: no such zarr store")
        return [str(p)]
    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise ReferenceFilesError(f"reference.path {pattern!r} matches no files: give a netCDF path or glob, "
                                  "or a .zarr store")
    return files


def unreadable_file_message(path, err: Exception, what: str = "reference file") -> str:
    """One line naming a file that cannot be read and the likely cause."""
    p = Path(path)
    if p.is_file() and p.stat().st_size == 0:
        cause = "it is empty (0 bytes): an interrupted download or copy"
    elif p.is_file():
        cause = f"it is truncated or not in a format it claims ({type(err).__name__}: {str(err)[:120]})"
    else:
        cause = f"{type(err).__name__}: {str(err)[:120]}"
    return f"{what} {path} cannot be read: {cause}; replace it and rerun"


def open_files(files: list[str], coords: dict | None = None, variables=()) -> xr.Dataset:
    if len(files) == 1 and files[0].rstrip("/").endswith(".zarr"):
        try:
            return xr.open_zarr(files[0])
        except Exception as err:  # noqa: BLE001 - any backend error becomes one line naming the store
            raise ReferenceFilesError(unreadable_file_message(files[0], err, "reference store")) from None
    check_file_steps(files, coords or {}, variables)
    if len(files) == 1:
        return xr.open_dataset(files[0])
    return xr.open_mfdataset(files, combine="by_coords", compat="no_conflicts")


def rename_coords(ds: xr.Dataset, extra: dict, variables=()) -> xr.Dataset:
    """Coordinates renamed to time/level/latitude/longitude: ``extra`` (``reference.coords``) first;
    an alias only where the canonical coordinate is absent, and never a data variable or a name
    that ``variables`` maps (ERA5's temperature ``t`` is not a time axis)."""
    names = {}
    for theirs, ours in extra.items():
        if ours not in COORD_ALIASES:
            raise ReferenceFilesError(f"reference.coords: {theirs!r} -> {ours!r}; the targets are "
                                      f"{list(COORD_ALIASES)}")
        if theirs in ds.variables or theirs in ds.dims:
            names[theirs] = ours
    for ours, aliases in COORD_ALIASES.items():
        if ours in names.values() or ours in ds.dims or ours in ds.coords:
            continue
        for a in aliases:
            if a != ours and a not in variables and a not in ds.data_vars and (a in ds.dims or a in ds.coords):
                names[a] = ours
                break
    ds = ds.rename(names)
    for need in ("time", "latitude", "longitude"):
        if need not in ds.dims:
            raise ReferenceFilesError(
                f"the reference files have no {need!r} dimension (dimensions {list(ds.dims)}): map yours with "
                f"reference.coords, e.g. {{my_name: {need}}}")
    return ds


def check_uniform(values: np.ndarray, name: str) -> None:
    if len(values) < 2:
        raise ReferenceFilesError(f"the reference has {len(values)} {name} point(s): a grid needs at least 2")
    d = np.diff(values)
    if not np.allclose(d, d[0], rtol=1e-4, atol=1e-6):
        raise ReferenceFilesError(f"{name} spacing of the reference is not uniform ({d.min():g} to {d.max():g} "
                                  "degrees): regrid to a regular grid first")


def subset_region(ds: xr.Dataset, region: dict) -> xr.Dataset:
    """The box ``{latitude: [south, north], longitude: [west, east]}`` (inclusive, degrees) of a
    dataset with ascending coordinates; longitudes may be given in -180..180 or 0..360."""
    unknown = set(region) - {"latitude", "longitude"}
    if unknown:
        raise ReferenceFilesError(f"reference.region: unknown keys {sorted(unknown)}; use latitude and longitude")
    out = ds
    if "latitude" in region:
        south, north = sorted(float(v) for v in region["latitude"])
        out = out.sel(latitude=slice(south, north))
    if "longitude" in region:
        west, east = (float(v) for v in region["longitude"])
        lon = out["longitude"].values
        if lon.max() > 180.0 and min(west, east) < 0.0:  # the files use 0..360, the box -180..180
            west, east = west % 360.0, east % 360.0
        elif lon.min() < 0.0 and max(west, east) > 180.0:  # the files use -180..180, the box 0..360
            west, east = (west + 180.0) % 360.0 - 180.0, (east + 180.0) % 360.0 - 180.0
        keep = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
        out = out.isel(longitude=np.flatnonzero(keep))
        if west > east:  # across the date line / the files' seam: continuous longitudes
            lon = out["longitude"].values
            out = out.assign_coords(longitude=np.where(lon >= west, lon - 360.0, lon)).sortby("longitude")
    if out.sizes["latitude"] == 0 or out.sizes["longitude"] == 0:
        raise ReferenceFilesError(f"reference.region {region} holds no grid points of the files "
                                  f"(latitude {float(ds.latitude.min())}..{float(ds.latitude.max())}, longitude "
                                  f"{float(ds.longitude.min())}..{float(ds.longitude.max())})")
    return out


def time_step(times: pd.DatetimeIndex) -> tuple[pd.Timedelta, pd.DatetimeIndex]:
    """The data's step (the most common one) and the missing times on its regular axis.

    Steps that are not whole multiples of the most common step are an error naming them."""
    if len(times) < 2:
        raise ReferenceFilesError(f"the reference has {len(times)} time(s): at least two are needed")
    steps = pd.Series(np.diff(times.as_unit("ns").asi8))
    step = int(steps.mode().iloc[0])
    if step <= 0:
        raise ReferenceFilesError("the reference has repeated times")
    odd = steps[steps % step != 0]
    if len(odd):
        where = times[odd.index[0]]
        raise ReferenceFilesError(
            f"the reference's time steps are not uniform: most are {pd.Timedelta(step)}, but "
            f"{len(odd)} are not a multiple of it (first {pd.Timedelta(int(odd.iloc[0]))} after {where}); "
            "give data on one regular time axis")
    full = pd.date_range(times[0], times[-1], freq=pd.Timedelta(step))
    return pd.Timedelta(step), full.difference(times)


def fill_missing_times(ds: xr.Dataset, missing: pd.DatetimeIndex) -> xr.Dataset:
    """Insert ``missing`` times (inside the data's span) by linear interpolation in time between the
    nearest available times before and after; lazy, so large datasets are not loaded."""
    if not len(missing):
        return ds
    times = pd.DatetimeIndex(ds["time"].values)
    after = times.searchsorted(missing)
    prev, nxt = times[after - 1], times[after]
    w = xr.DataArray(np.asarray((missing - prev) / (nxt - prev), dtype=float), dims="time")
    filled = ds.sel(time=prev).drop_vars("time") * (1 - w) + ds.sel(time=nxt).drop_vars("time") * w
    filled = filled.assign_coords(time=missing)
    for name in ds.data_vars:
        filled[name] = filled[name].astype(ds[name].dtype)
        filled[name].attrs = ds[name].attrs
    return xr.concat([ds, filled], dim="time").sortby("time")


def check_file_steps(files: list[str], coords: dict, variables: dict) -> None:
    """Each file opens (an error names the one a backend cannot read: xarray's message does not),
    and the files of one reference share one time step (an error names two that differ)."""
    steps = {}
    for f in files:
        try:
            one = xr.open_dataset(f)
        except Exception as err:  # noqa: BLE001 - any backend error becomes one line naming the file
            raise ReferenceFilesError(unreadable_file_message(f, err)) from None
        with one:
            times = rename_coords(one, coords, variables)["time"].values
        if len(times) > 1:
            steps[f] = time_step(pd.DatetimeIndex(np.unique(times)))[0]
    if len(set(steps.values())) > 1:
        (a, step_a), (b, step_b) = next(iter(steps.items())), next((f, s) for f, s in steps.items()
                                                                  if s != next(iter(steps.values())))
        raise ReferenceFilesError(f"the reference files step differently: {a} every {step_a}, {b} every {step_b}; "
                                  "give files on one time axis (resample one of them)")
