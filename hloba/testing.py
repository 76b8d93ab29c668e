"""Factories for tests: tiny worlds and tiny datasets with known statistics."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hloba.variables import COORD_ATTRS, cf_attrs
from hloba.world.qg import QGParams
from hloba.world.simulate import WorldConfig


# what a copy of the workflow holds: the tests and benchmarks run pipelines in copies, never in the checkout
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "config", "envs", "profiles", "hloba")


def copy_workflow(repo: Path, dest: Path) -> Path:
    """A copy of the workflow of the checkout ``repo`` (no results) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules a ``python -X importtime`` run imported, read from its stderr."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:")}


def tiny_world_config(nx: int = 16, ny: int = 16, dt_minutes: float = 120.0, spinup_days: float = 30.0, seed: int = 1) -> WorldConfig:
    """A coarse world that simulates a year in seconds (coarser physics, same code)."""
    return WorldConfig(qg=QGParams(nx=nx, ny=ny, dt_minutes=dt_minutes), spinup_days=spinup_days, seed=seed)


def synthetic_dataset(
    times: pd.DatetimeIndex, ny: int = 4, nx: int = 5, levels=(250.0, 750.0), fill=None,
) -> xr.Dataset:
    """A dataset in the reference layout; ``fill(name, shape, times)`` gives each variable's values."""
    lat = np.linspace(30.0, 60.0, ny)
    lon = np.linspace(0.0, 40.0, nx)
    fill = fill or (lambda name, shape, t: np.zeros(shape))
    data = {
        "geopotential": (("time", "level", "latitude", "longitude"), fill("geopotential", (len(times), len(levels), ny, nx), times)),
        "temperature": (("time", "latitude", "longitude"), fill("temperature", (len(times), ny, nx), times)),
    }
    ds = xr.Dataset(
        {k: xr.Variable(d, v, cf_attrs(k)) for k, (d, v) in data.items()},
        coords={
            "time": ("time", times, COORD_ATTRS["time"]),
            "level": ("level", np.asarray(levels), COORD_ATTRS["level"]),
            "latitude": ("latitude", lat, COORD_ATTRS["latitude"]),
            "longitude": ("longitude", lon, COORD_ATTRS["longitude"]),
        },
    )
    return ds


def tiny_world_years(years=(2001, 2002), seed: int = 3) -> dict:
    """``{year: dataset}`` of the tiny world (in memory)."""
    from hloba.world.simulate import simulate_years

    return {year: ds.load() for year, ds in simulate_years(tiny_world_config(seed=seed), list(years), progress=False)}


def era5_style_files(out_dir, kind: str, years=(2001, 2002), seed: int = 3, world: dict | None = None) -> list:
    """Write the tiny world's years as a user would bring them, one netCDF file per year.

    ``kind="global"``: 6-hourly, ERA5 short names and coordinates (``valid_time``,
    ``pressure_level`` 500, 700, 850 hPa: 700 is there to be selected away, descending
    ``latitude``), 3-D ``z, u, v, t, q`` (the world's two levels; t and q made 3-D), an
    ERA5-style ``number`` dimension of size 1, longitudes covering 360 degrees (periodic), and an
    odd number of latitudes (15). ``kind="regional"``: daily, 2-D surface-like fields only
    (``msl``, ``t2m``, ``u10``, ``v10``), descending latitudes, a 13 x 15 region (not periodic).
    ``world``: the output of :func:`tiny_world_years` to reuse. Returns the paths.
    """
    if kind not in ("global", "regional"):
        raise ValueError(f"kind must be 'global' or 'regional', got {kind!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for year, ds in (world or tiny_world_years(years, seed)).items():
        if kind == "global":
            ds = ds.isel(latitude=slice(0, 15))
            lat = np.linspace(-70.0, 70.0, 15)[::-1]  # ERA5 order: north first
            lon = np.arange(16) * 22.5
            def three_levels(up, low, middle):
                stacked = xr.concat([up, middle, low], dim="level")
                return stacked.assign_coords(level=[500.0, 700.0, 850.0]).transpose(
                    "time", "level", "latitude", "longitude")

            def world(name, level):
                return ds[name].sel(level=level, drop=True)

            z_up, z_low = world("geopotential", 250.0), world("geopotential", 750.0)
            u_up, u_low = world("u_component_of_wind", 250.0), world("u_component_of_wind", 750.0)
            v_up, v_low = world("v_component_of_wind", 250.0), world("v_component_of_wind", 750.0)
            t, q = ds["temperature"], ds["specific_humidity"]
            # the world's geopotential anomalies about each labelled level's typical value (500, 700,
            # 850 hPa: 55000, 29500, 14500 m2 s-2), so that the quality gate sees Earth-like values
            z_mid = 0.5 * (z_up + z_low)
            user = xr.Dataset({
                "z": three_levels(z_up - z_up.mean() + 55000.0, z_low - z_low.mean() + 14500.0,
                                  z_mid - z_mid.mean() + 29500.0),
                "u": three_levels(u_up, u_low, 0.5 * (u_up + u_low)),
                "v": three_levels(v_up, v_low, 0.5 * (v_up + v_low)),
                "t": three_levels(t - 10.0, t + 10.0, t),
                "q": three_levels(0.4 * q, q, 0.7 * q),
            })
            user = user.isel(latitude=slice(None, None, -1)).assign_coords(latitude=lat, longitude=lon)
            user = user.rename({"time": "valid_time", "level": "pressure_level"}).expand_dims(number=[0])
        else:
            ds = ds.isel(time=slice(None, None, 4), latitude=slice(1, 14), longitude=slice(0, 15))
            lat = np.linspace(30.0, 54.0, 13)[::-1]
            lon = np.linspace(-10.0, 18.0, 15)
            z750 = ds["geopotential"].sel(level=750.0, drop=True)
            user = xr.Dataset({
                "msl": 101325.0 + 1.2 * (z750 - z750.mean()),
                "t2m": ds["temperature"] + 15.0,
                "u10": 0.7 * ds["u_component_of_wind"].sel(level=750.0, drop=True),
                "v10": 0.7 * ds["v_component_of_wind"].sel(level=750.0, drop=True),
            })
            user = user.isel(latitude=slice(None, None, -1)).assign_coords(latitude=lat, longitude=lon)
            user = user.rename({"time": "valid_time"})
        for name in user.data_vars:
            user[name] = user[name].astype(np.float32)
        user.attrs = {"Conventions": "CF-1.6", "institution": "a test's ERA5-style file"}
        path = out / f"era5_{'global_6h' if kind == 'global' else 'regional_daily'}_{year}.nc"
        user.to_netcdf(path)
        paths.append(path)
    return paths


def packed_int16_encoding(da: xr.DataArray, fill_value: int = -32767) -> dict:
    """netCDF encoding that packs ``da`` into 16-bit integers with ``scale_factor``/``add_offset``
    and a ``_FillValue``, as ECMWF's grib_to_netcdf writes."""
    lo, hi = float(da.min()), float(da.max())
    scale = (hi - lo) / 65530.0 or 1.0
    return {"dtype": "int16", "scale_factor": scale, "add_offset": (hi + lo) / 2.0, "_FillValue": fill_value}


def grib_to_netcdf_style_files(out_dir, world: dict | None = None, years=(2001, 2002), seed: int = 3) -> list:
    """The tiny world's years as a published extract written by ECMWF's grib_to_netcdf (CF-1.6).

    One file per variable holding every year (``msl.nc``, ``t.nc``, ``z.nc``): mean sea level
    pressure, temperature at 850 hPa and geopotential at 500 hPa as 2-D fields; dimension ``time``,
    daily at 12 UTC, stored as int32 hours since 1900-01-01; ``latitude`` descending (55..35 N) and
    ``longitude`` (-10..14 E) in float32, a western-European box of 11 x 13 points; values packed
    as 16-bit integers with ``scale_factor``, ``add_offset`` and ``_FillValue``. Returns the paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = world or tiny_world_years(years, seed)
    parts = []
    for ds in world.values():
        day = ds.isel(time=slice(2, None, 4), latitude=slice(2, 13), longitude=slice(1, 14))  # 12 UTC
        parts.append(day)
    ds = xr.concat(parts, dim="time")
    lat = np.linspace(55.0, 35.0, 11).astype(np.float32)
    lon = np.linspace(-10.0, 14.0, 13).astype(np.float32)
    z750, z250 = (ds["geopotential"].sel(level=lev, drop=True) for lev in (750.0, 250.0))
    fields = {
        "msl": (101325.0 + 1.2 * (z750 - z750.mean()), "Pa", "air_pressure_at_mean_sea_level", "Mean sea level pressure"),
        "t": (ds["temperature"] + 25.0, "K", "air_temperature", "Temperature"),
        "z": (z250 - z250.mean() + 55000.0, "m**2 s**-2", "geopotential", "Geopotential"),
    }
    paths = []
    for name, (values, units, standard_name, long_name) in fields.items():
        values = values.isel(latitude=slice(None, None, -1)).assign_coords(latitude=lat, longitude=lon)
        var = values.astype(np.float64).assign_attrs(units=units, standard_name=standard_name, long_name=long_name)
        user = xr.Dataset({name: var})
        user["latitude"].attrs = {"units": "degrees_north", "long_name": "latitude"}
        user["longitude"].attrs = {"units": "degrees_east", "long_name": "longitude"}
        user.attrs = {"Conventions": "CF-1.6", "history": "grib_to_netcdf-2.28.1: a test's published extract"}
        path = out / f"{name}.nc"
        user.to_netcdf(path, encoding={
            name: packed_int16_encoding(var),
            "time": {"units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian", "dtype": "int32"},
            "latitude": {"dtype": "float32", "_FillValue": None}, "longitude": {"dtype": "float32", "_FillValue": None},
        })
        paths.append(path)
    return paths


def cds_style_files(out_dir, world: dict | None = None, years=(2001, 2002), seed: int = 3, phase_hours: float = 3.0,
                    longitudes: str = "0..360") -> list:
    """The tiny world's years as files from the new Climate Data Store, split by variable and by
    year at once (``z_2001.nc``, ``t_2001.nc``, ...): ``valid_time`` 6-hourly from ``phase_hours``
    UTC, ``pressure_level`` 500 and 850 hPa, ``latitude`` descending, ``longitude`` covering
    360 degrees in ``0..360`` (0, 22.5, ..., 337.5) or ``-180..180`` (-180, ..., 157.5), scalar
    ``number`` and ``expver`` coordinates, float32 values. Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = world or tiny_world_years(years, seed)
    lat = np.linspace(70.0, -70.0, 15)
    lon = np.arange(16) * 22.5 if longitudes == "0..360" else np.arange(16) * 22.5 - 180.0
    paths = []
    for year, ds in world.items():
        ds = ds.isel(latitude=slice(0, 15)).isel(latitude=slice(None, None, -1))
        ds = ds.assign_coords(latitude=lat, longitude=lon, time=ds["time"].values + pd.Timedelta(hours=phase_hours))
        z = xr.concat([ds["geopotential"].sel(level=250.0) - ds["geopotential"].sel(level=250.0).mean() + 55000.0,
                       ds["geopotential"].sel(level=750.0) - ds["geopotential"].sel(level=750.0).mean() + 14500.0],
                      dim="level")
        t = xr.concat([ds["temperature"] - 20.0, ds["temperature"] + 25.0], dim="level")
        for name, values in (("z", z), ("t", t)):
            values = values.assign_coords(level=[500.0, 850.0]).transpose("time", "level", "latitude", "longitude")
            user = xr.Dataset({name: values.astype(np.float32)}).rename({"time": "valid_time", "level": "pressure_level"})
            user = user.assign_coords(number=0, expver=("valid_time", np.full(user.sizes["valid_time"], "0001")))
            user.attrs = {"Conventions": "CF-1.7", "institution": "European Centre for Medium-Range Weather Forecasts"}
            path = out / f"{name}_{year}.nc"
            user.to_netcdf(path)
            paths.append(path)
    return paths


TINY_NETWORKS = {
    "seed": 7,
    "error_std": {"geopotential": 50.0, "temperature": 0.8, "u_component_of_wind": 1.5,
                  "v_component_of_wind": 1.5, "specific_humidity": 0.0005},
    "networks": {
        "radiosonde": {"kind": "fixed", "count": 12, "channels": "all", "interval_hours": 12},
        "surface": {"kind": "fixed", "count": 20, "channels": ["geopotential_750", "temperature"]},
    },
}
TINY_FORECAST = {"model": "qg", "perturb": {"drag_timescale_days": 2.5, "shear_m_s": 6.6}, "seed": 11}


def untrained_checkpoints(reference_path, normalization_path, out_dir, seed: int = 0,
                          latent_channels: int = 4, patch: int = 2, slots: tuple = (0,)) -> tuple:
    """An autoencoder and an O2Lnet (reading the cycles ``slots``) with seeded random weights, saved
    as checkpoints of the reference's channels and grid: the stream's mechanics in seconds (no skill
    is expected)."""
    import torch

    from hloba.channels import list_channels
    from hloba.grid import Grid
    from hloba.models.autoencoder import Autoencoder, AutoencoderConfig
    from hloba.models.checkpoint import save_checkpoint
    from hloba.models.o2lnet import O2Lnet, O2LnetConfig
    from hloba.normalization import Normalizer

    out = Path(out_dir)
    with xr.open_dataset(reference_path) as ds:
        channels, grid = list_channels(ds), Grid.from_dataset(ds)
    with xr.open_dataset(normalization_path) as norm:
        normalizer = Normalizer.from_dataset(norm.load())
    torch.manual_seed(seed)
    cfg = AutoencoderConfig(len(channels), *grid.shape, latent_channels=latent_channels, patch=patch, width=16,
                            blocks=1, periodic_lat=grid.latitude_period is not None,
                            periodic_lon=grid.longitude_period is not None)
    ae = Autoencoder(cfg)
    o2l_cfg = O2LnetConfig(cfg.to_dict(), width=16, blocks=1, slots=slots)
    o2l = O2Lnet(o2l_cfg)
    paths = out / "autoencoder.pt", out / "o2lnet.pt"
    save_checkpoint(paths[0], "autoencoder", cfg.to_dict(), ae.state_dict(), channels, grid, normalizer.state())
    save_checkpoint(paths[1], "o2lnet", o2l_cfg.to_dict(), o2l.state_dict(), channels, grid, normalizer.state(),
                    tensors={"static_sigma_o2": torch.ones(cfg.n_latent)})
    return paths


def tiny_stream_inputs(out_dir, year: int = 2002, seed: int = 3, networks: dict | None = None):
    """Everything a stream of ``year`` reads, built in-process in seconds: one tiny-world year,
    its normalisation and simulated observations, untrained networks (:func:`untrained_checkpoints`)
    and the lagged-ensemble calibration of the built-in forecast model. Returns
    ``(StreamInputs, {name: path})`` with the reference and normalisation among the paths."""
    from hloba.assim.settings import StreamInputs
    from hloba.ensemble.generate import generate_lagged_ensemble
    from hloba.forecast import ForecastSpec
    from hloba.normalization import write_normalization
    from hloba.obs.networks import write_simulated_observations
    from hloba.world.reference import write_reference_years

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = tiny_world_config(spinup_days=10.0, seed=seed)
    paths = {"reference": out / f"reference-{year}.nc", "normalization": out / "normalization.nc",
             "observations": out / f"obs-{year}.parquet", "calibration": out / "calibration.nc"}
    write_reference_years(world, {year: paths["reference"]}, progress=False)
    write_normalization([paths["reference"]], paths["normalization"], n_harmonics=1)
    write_simulated_observations(paths["reference"], paths["observations"], networks or TINY_NETWORKS, year)
    paths["autoencoder"], paths["o2lnet"] = untrained_checkpoints(paths["reference"], paths["normalization"], out)
    forecast = ForecastSpec(TINY_FORECAST, world.output_interval_hours,
                            {"nx": world.qg.nx, "ny": world.qg.ny, "dt_minutes": world.qg.dt_minutes})
    generate_lagged_ensemble([paths["reference"]], paths["autoencoder"], paths["calibration"], forecast, members=3,
                             max_lead_days=1.0, lead_starts=4, progress=False)
    inputs = StreamInputs(str(paths["autoencoder"]), str(paths["o2lnet"]), str(paths["calibration"]),
                          (str(paths["observations"]),), forecast)
    return inputs, paths
