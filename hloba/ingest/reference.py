"""The user's reference files -> one CF netCDF file per year in the pipeline's layout."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from hloba.ingest.layout import (
    ERA5_NAMES, ReferenceFilesError, check_uniform, fill_missing_times, open_files, reference_paths, rename_coords,
    subset_region, time_step,
)
from hloba.io import atomic_path, write_netcdf
from hloba.timeaxis import cycle_phase, year_times
from hloba.variables import COORD_ATTRS, CF_ATTRS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSpec:
    """The config's ``reference`` section for ``source: files``."""

    path: str
    variables: dict = field(default_factory=dict)  # their name -> ours
    coords: dict = field(default_factory=dict)  # their name -> time | level | latitude | longitude
    levels: tuple | None = None  # levels of the 3-D variables to keep (the files' units, hPa)
    region: dict | None = None  # {latitude: [south, north], longitude: [west, east]} subset, degrees
    periodic: str | bool = "auto"  # longitude periodic: auto (covers 360 degrees) | true | false
    fill_missing: bool = True
    min_size: int = 1  # smallest number of points per side (from the autoencoder's patch)
    source: str = "files"

    def __post_init__(self) -> None:
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))

    @classmethod
    def from_config(cls, section: dict, min_size: int = 1) -> "ReferenceSpec":
        return cls(**section, min_size=min_size)


def open_reference(spec: ReferenceSpec) -> tuple[xr.Dataset, pd.DatetimeIndex]:
    """The user's reference in the pipeline's layout (lazy) and the filled missing times."""
    files = reference_paths(spec.path)
    ds = rename_coords(open_files(files, spec.coords, spec.variables), spec.coords, spec.variables)
    mapping = {**{k: v for k, v in ERA5_NAMES.items() if k not in spec.variables and v not in spec.variables.values()},
               **spec.variables}
    wanted = spec.variables or {k: v for k, v in ERA5_NAMES.items() if k in ds.data_vars}
    if not wanted:
        raise ReferenceFilesError(f"no variables to take from {spec.path}: map them with reference.variables, "
                                  f"e.g. {{z: geopotential}}; the files hold {sorted(ds.data_vars)}")
    missing = [v for v in wanted if v not in ds.data_vars]
    if missing:
        raise ReferenceFilesError(f"reference.variables names {missing}, which the files {spec.path!r} do not hold; "
                                  f"they hold {sorted(map(str, ds.data_vars))}")
    ds = ds[list(wanted)].rename({k: mapping[k] for k in wanted})
    extra = [d for d in ds.dims if d not in ("time", "level", "latitude", "longitude")]
    for d in extra:  # e.g. ERA5's number / expver of size 1
        if ds.sizes[d] != 1:
            raise ReferenceFilesError(f"the reference has a dimension {d!r} of size {ds.sizes[d]}: select one "
                                      "member/version before (only time, level, latitude, longitude are used)")
        ds = ds.isel({d: 0}, drop=True)
    if "level" in ds.dims:
        available = [float(v) for v in ds["level"].values]
        if spec.levels is not None:
            lost = [lv for lv in spec.levels if not np.isclose(available, lv).any()]
            if lost:
                raise ReferenceFilesError(f"reference.levels {lost} are not in the files; their levels are {available}")
            ds = ds.sel(level=[available[int(np.argmin(np.abs(np.asarray(available) - lv)))] for lv in spec.levels])
        ds = ds.sortby("level").assign_coords(level=ds["level"].astype(float))
    drop = [c for c in ds.coords if c not in ("time", "level", "latitude", "longitude")]
    ds = ds.drop_vars(drop)
    ds = ds.sortby("latitude").sortby("longitude")
    if spec.region:
        ds = subset_region(ds, spec.region)
    lat, lon = ds["latitude"].values.astype(float), ds["longitude"].values.astype(float)
    check_uniform(lat, "latitude")
    check_uniform(lon, "longitude")
    if min(len(lat), len(lon)) < spec.min_size:
        raise ReferenceFilesError(
            f"the reference domain is {len(lat)} x {len(lon)} points: the autoencoder (autoencoder.patch) needs at "
            f"least {spec.min_size} points per side; use a larger domain or a smaller patch")
    dlon = float(lon[1] - lon[0])
    covers = abs(dlon * len(lon) - 360.0) < 0.5 * abs(dlon)
    periodic = covers if spec.periodic == "auto" else bool(spec.periodic)
    if periodic and not covers:
        log.warning("reference.periodic is true but the grid covers %.1f degrees of longitude", dlon * len(lon))
    times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        log.warning("the reference repeats %d times: the first of each is kept", int(times.duplicated().sum()))
        ds = ds.isel(time=~times.duplicated())
    ds = ds.sortby("time")
    step, missing_times = time_step(pd.DatetimeIndex(ds["time"].values))
    if len(missing_times):
        listed = ", ".join(str(t) for t in missing_times[:10]) + (" ..." if len(missing_times) > 10 else "")
        if not spec.fill_missing:
            raise ReferenceFilesError(f"the reference lacks {len(missing_times)} time steps of {step}: {listed}; "
                                      "supply them or set reference.fill_missing: true")
        log.warning("the reference lacks %d time steps of %s, filled by linear interpolation in time: %s",
                    len(missing_times), step, listed)
        ds = fill_missing_times(ds, missing_times)
    ds.attrs = {
        "source_files": ", ".join(files[:20]) + (" ..." if len(files) > 20 else ""),
        "longitude_periodic": int(periodic), "latitude_periodic": 0,
        "interval_hours": step / pd.Timedelta(hours=1),
    }
    if periodic:
        ds.attrs["longitude_period_degrees"] = 360.0 if covers else dlon * len(lon)
    return ds, missing_times


def year_of_reference(ds: xr.Dataset, year: int, missing: pd.DatetimeIndex) -> xr.Dataset:
    """One whole year of the prepared reference: every step of the data's own phase in ``year``
    (Jan 1 00 UTC, or 12 UTC for daily data at 12 UTC, ..., to the last step of Dec 31)."""
    step = pd.Timedelta(hours=float(ds.attrs["interval_hours"]))
    times = pd.DatetimeIndex(ds["time"].values)
    expected = year_times(year, step, cycle_phase(times, step))
    have = expected.isin(times)
    if not have.all():
        span = f"{times[0]} to {times[-1]}"
        raise ReferenceFilesError(f"year {year} is not complete in the reference files ({span}, step {step}): "
                                  f"{int((~have).sum())} of its {len(expected)} times are outside them; "
                                  "configure only years the files cover whole")
    out = ds.sel(time=expected)
    for name in out.data_vars:
        out[name] = out[name].astype(np.float32)
        attrs = dict(CF_ATTRS.get(name, {}))
        attrs = {**attrs, **{k: v for k, v in ds[name].attrs.items() if k in ("units", "long_name", "standard_name")}}
        out[name].attrs = attrs or {"long_name": name.replace("_", " ")}
    for c in ("time", "level", "latitude", "longitude"):
        if c in out.coords:
            out[c].attrs.update(COORD_ATTRS[c])
    filled = missing[missing.year == year]
    out.attrs = {**ds.attrs, "Conventions": "CF-1.8", "title": f"hloba reference {year} (prepared from files)",
                 "filled_times": ", ".join(str(t) for t in filled) or "none"}
    return out


def files_of(files: list[str], year: int, names: set, spec: ReferenceSpec) -> list[str]:
    """The files among ``files`` that hold times of ``year`` and one of the variable ``names``
    (their or our name); all of ``files`` when none can be told apart."""
    held = []
    for f in files:
        if f.rstrip("/").endswith(".zarr"):
            return list(files)
        with xr.open_dataset(f) as ds:
            if names & set(map(str, ds.data_vars)) and pd.DatetimeIndex(
                    rename_coords(ds, spec.coords, spec.variables)["time"].values).year.isin([year]).any():
                held.append(f)
    return held or list(files)


def prepare_reference(section: dict, outputs: dict, min_size: int = 1, quality: dict | None = None,
                      interval_hours: float | None = None) -> None:
    """Rule prepare_reference: ``outputs`` ``{year: path}`` (one year per job in the workflow);
    ``quality``: ``{year: path}`` of each year's quality table (CSV, :func:`hloba.ingest.quality.reference_quality`);
    ``interval_hours``: the cycle interval the workflow was configured with (checked against the data).

    Every year is checked whole (its times, then the quality gate) before its file is written, so
    a bad year never replaces a good file."""
    from hloba.ingest.quality import raise_on_errors, reference_quality

    spec = ReferenceSpec.from_config({k: v for k, v in section.items() if k != "interval_hours"}, min_size)
    ds, missing = open_reference(spec)
    if interval_hours is not None and abs(ds.attrs["interval_hours"] - interval_hours) > 1e-6:
        raise ReferenceFilesError(f"the reference files step by {ds.attrs['interval_hours']} h, but the workflow "
                                  f"was configured for {interval_hours} h (reference.interval_hours): remove it or fix it")
    log.info("reference %s: %s, step %s, grid %d x %d (%s), variables %s", spec.path,
             f"{ds['time'].values[0]} to {ds['time'].values[-1]}", pd.Timedelta(hours=ds.attrs['interval_hours']),
             ds.sizes["latitude"], ds.sizes["longitude"], "periodic" if ds.attrs["longitude_periodic"] else "regional",
             list(ds.data_vars))
    years = {int(y): p for y, p in outputs.items()}
    for year in years:  # check every year's times before writing any
        year_of_reference(ds[[]].assign_coords(time=ds["time"]), year, missing)
    files = reference_paths(spec.path)
    quality = {int(y): p for y, p in (quality or {}).items()}
    for year, path in sorted(years.items()):
        out = year_of_reference(ds, year, missing).load()
        table = reference_quality(out, year, missing[missing.year == year])
        if year in quality:
            with atomic_path(quality[year]) as tmp:
                table.to_csv(tmp, index=False, float_format="%.6g")
        bad = table[table["status"] == "error"]
        if len(bad):
            theirs = {k for k, v in {**ERA5_NAMES, **spec.variables}.items() if v == bad.iloc[0]["variable"]}
            held = files_of(files, year, theirs | {str(bad.iloc[0]["variable"])}, spec)
            raise_on_errors(table, f"reference {', '.join(held[:3])}{' ...' if len(held) > 3 else ''}, year {year}")
        for row in table[table["status"] == "warning"].itertuples():
            log.warning("reference %d, %s %s: %s", year, row.variable, "" if pd.isna(row.level) else row.level, row.note)
        write_netcdf(out, path)
        log.info("wrote %s", path)


def data_interval_hours(section: dict) -> float:
    """The time step of the user's reference files in hours, read from their time coordinate
    (the first files only), for the workflow's parameters; an explicit ``interval_hours`` wins."""
    if section.get("interval_hours"):
        return float(section["interval_hours"])
    files = reference_paths(section["path"])
    times = []
    for f in files:
        ds = rename_coords(open_files([f]), section.get("coords", {}), section.get("variables", {}))
        times.extend(pd.DatetimeIndex(ds["time"].values[:1000]))
        ds.close()
        if len(times) >= 3:
            break
    step, _ = time_step(pd.DatetimeIndex(sorted(set(times))))
    return step / pd.Timedelta(hours=1)


def reference_interval_hours(config: Mapping) -> float | int:
    """Hours between reference states (cycles): the built-in world's output interval, or the
    time step of the user's reference files (``reference.source: files``)."""
    reference = config.get("reference", {}) or {}
    if reference.get("source", "builtin") == "builtin":
        return config.get("world", {}).get("output_interval_hours", 6)  # as configured (a param: keep its type)
    return data_interval_hours(reference)
