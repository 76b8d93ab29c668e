"""Bring your own data: the user's reference and observation files in the pipeline's layout.

:func:`open_reference` reads netCDF files (a path or glob) or a zarr store and returns one dataset
in the layout of the built-in world's reference files:

- variables renamed by ``variables`` (``{their name: ours}``, e.g. ERA5 ``z: geopotential``); only
  the mapped variables are kept;
- coordinates renamed to ``time``, ``level``, ``latitude``, ``longitude`` (ERA5's ``valid_time`` and
  ``pressure_level``, ``lat``/``lon``, ``plev``, ... are recognised; ``coords`` adds more);
- ``levels`` selected on 3-D variables; 2-D variables (no level) stay single-level channels;
- an optional ``region`` box (a regional subset of, e.g., a global file);
- latitudes ascending (descending files, as ERA5's, are flipped), longitudes ascending;
- the longitude axis is periodic when the grid covers 360 degrees (``periodic: auto``), or as
  ``periodic: true/false`` says; latitude is never periodic;
- the time step is the data's: the most common step; steps that are not whole multiples of it
  are an error, whole multiples are gaps whose missing times are listed and filled by linear
  interpolation in time (or an error with ``fill_missing: false``).

:func:`prepare_reference` writes it as one CF netCDF file per year. :func:`prepare_observations`
turns the user's observation files (parquet, CSV or netCDF in the table of
:mod:`hloba.obs.schema`) into one validated parquet file per year.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hloba.io import atomic_path, write_netcdf
from hloba.timeaxis import cycle_phase, year_times
from hloba.variables import COORD_ATTRS, CF_ATTRS

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


def _open(files: list[str], coords: dict | None = None, variables=()) -> xr.Dataset:
    if len(files) == 1 and files[0].rstrip("/").endswith(".zarr"):
        try:
            return xr.open_zarr(files[0])
        except Exception as err:  # noqa: BLE001 - any backend error becomes one line naming the store
            raise ReferenceFilesError(unreadable_file_message(files[0], err, "reference store")) from None
    check_file_steps(files, coords or {}, variables)
    if len(files) == 1:
        return xr.open_dataset(files[0])
    return xr.open_mfdataset(files, combine="by_coords", compat="no_conflicts")


def _rename_coords(ds: xr.Dataset, extra: dict, variables=()) -> xr.Dataset:
    """Coordinates renamed to time/level/latitude/longitude: ``extra`` (``reference.coords``) first;
    an alias only where the canonical coordinate is absent, and never a data variable or a name
    that ``variables`` maps (ERA5's temperature ``t`` is not a time axis)."""
    names = {}
    for theirs, ours in extra.items():
        if ours not in COORD_ALIASES:
            raise ReferenceFilesError(f"reference.coords: {theirs!r} -> {ours!r}; the targets are {list(COORD_ALIASES)}")
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


def _uniform(values: np.ndarray, name: str) -> None:
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
            times = _rename_coords(one, coords, variables)["time"].values
        if len(times) > 1:
            steps[f] = time_step(pd.DatetimeIndex(np.unique(times)))[0]
    if len(set(steps.values())) > 1:
        (a, step_a), (b, step_b) = next(iter(steps.items())), next((f, s) for f, s in steps.items()
                                                                  if s != next(iter(steps.values())))
        raise ReferenceFilesError(f"the reference files step differently: {a} every {step_a}, {b} every {step_b}; "
                                  "give files on one time axis (resample one of them)")


def open_reference(spec: ReferenceSpec) -> tuple[xr.Dataset, pd.DatetimeIndex]:
    """The user's reference in the pipeline's layout (lazy) and the filled missing times."""
    files = reference_paths(spec.path)
    ds = _rename_coords(_open(files, spec.coords, spec.variables), spec.coords, spec.variables)
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
    _uniform(lat, "latitude")
    _uniform(lon, "longitude")
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
                    _rename_coords(ds, spec.coords, spec.variables)["time"].values).year.isin([year]).any():
                held.append(f)
    return held or list(files)


def prepare_reference(section: dict, outputs: dict, min_size: int = 1, quality: dict | None = None,
                      interval_hours: float | None = None) -> None:
    """Rule prepare_reference: ``outputs`` ``{year: path}`` (one year per job in the workflow);
    ``quality``: ``{year: path}`` of each year's quality table (CSV, :func:`hloba.quality.reference_quality`);
    ``interval_hours``: the cycle interval the workflow was configured with (checked against the data).

    Every year is checked whole (its times, then the quality gate) before its file is written, so
    a bad year never replaces a good file."""
    from hloba.quality import raise_on_errors, reference_quality

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


def _read_observation_file(path) -> pd.DataFrame:
    """One of the user's observation files, its required columns checked; errors name the file."""
    from hloba.obs.schema import OBS_COLUMNS, read_observations
    from hloba.quality import DataQualityError

    try:
        df = read_observations(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader's error becomes one line naming the file
        if str(path) in str(err):
            raise
        raise DataQualityError(unreadable_file_message(path, err, "observation file")) from None
    lacking = [c for c in OBS_COLUMNS if c not in df.columns]
    if lacking:
        raise DataQualityError(f"observation file {path} lacks the column(s) {lacking} (it has "
                                  f"{sorted(map(str, df.columns))}); every file needs {list(OBS_COLUMNS)}")
    return df.assign(file=str(path))


def prepare_observations(pattern: str, reference, year: int, output, quality=None) -> pd.DataFrame:
    """Rule prepare_observations: the user's observations of ``year`` (files matching ``pattern``),
    validated against the prepared reference's channels and grid, as one parquet file.

    Errors, each naming the file, the variable and the year: a file that cannot be read or lacks a
    column; a file none of whose rows is usable (any time); a year without observations (the
    message lists each file's times); a variable whose rows of the year are all dropped or whose
    values do not fit the reference (units). Dropped rows and unobserved channels are warnings
    counted in ``quality`` (CSV, :func:`hloba.quality.observation_quality`)."""
    from hloba.channels import list_channels
    from hloba.grid import Grid
    from hloba.obs.schema import channel_of_observations, validate_observations, write_observations
    from hloba.quality import DataQualityError, observation_quality, raise_on_errors

    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise FileNotFoundError(f"observations.path {pattern!r} matches no files: give a parquet, CSV or netCDF "
                                "path or glob in the observation table's columns (README: your own data)")
    with xr.open_dataset(reference) as ref:
        channels, grid = list_channels(ref), Grid.from_dataset(ref)
        stats = {}
        for c in channels:  # mean and std over time and space: the scale the observations must fit
            field = ref[c.variable] if c.level is None else ref[c.variable].sel(level=c.level)
            stats[c.name] = (float(field.mean()), float(field.std()))
    frames, spans = [], []
    for f in files:
        df = _read_observation_file(f)
        usable, counts = validate_observations(df, channels, grid)
        if not len(usable):
            raise DataQualityError(
                f"observation file {f} contributes no usable observation ({len(df)} rows, dropped "
                f"{({k: v for k, v in counts.items() if v})}): check its variables, levels, positions, values "
                "and error_std against the reference")
        t = pd.to_datetime(df["time"], errors="coerce")
        spans.append(f"{Path(f).name} ({t.min()} to {t.max()})")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    t = pd.to_datetime(df["time"], errors="coerce")
    start = pd.Timestamp(year=year, month=1, day=1)
    end = pd.Timestamp(year=year + 1, month=1, day=1) - pd.Timedelta(1, "ns")
    this_year = df[(t >= start) & (t <= end)].reset_index(drop=True)
    outside = len(df) - len(this_year)
    if not len(this_year):
        raise DataQualityError(f"observations {pattern}: no observation of {year} in the files "
                               f"{'; '.join(spans[:5])}{' ...' if len(spans) > 5 else ''}: every configured year "
                               "needs observations (shifted times?)")
    clean, reasons = validate_observations(this_year, channels, grid, start, end, return_reasons=True)
    table = observation_quality(this_year, reasons, channel_of_observations(this_year["variable"], this_year["level"],
                                                                             channels), channels, stats, year)
    if quality is not None:
        with atomic_path(quality) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    raise_on_errors(table, f"observations of {year}")
    for row in table[table["status"] == "warning"].itertuples():
        log.warning("observations %d, %s %s: %s", year, row.file or "(all files)", row.variable, row.note)
    write_observations(clean.drop(columns=["channel", "file"]), output)
    log.info("wrote %s: %d observations of %d files (%d rows of other years, %d dropped)", output, len(clean),
             len(files), outside, len(this_year) - len(clean))
    return clean


def data_interval_hours(section: dict) -> float:
    """The time step of the user's reference files in hours, read from their time coordinate
    (the first files only), for the workflow's parameters; an explicit ``interval_hours`` wins."""
    if section.get("interval_hours"):
        return float(section["interval_hours"])
    files = reference_paths(section["path"])
    times = []
    for f in files:
        ds = _rename_coords(_open([f]), section.get("coords", {}), section.get("variables", {}))
        times.extend(pd.DatetimeIndex(ds["time"].values[:1000]))
        ds.close()
        if len(times) >= 3:
            break
    step, _ = time_step(pd.DatetimeIndex(sorted(set(times))))
    return step / pd.Timedelta(hours=1)
