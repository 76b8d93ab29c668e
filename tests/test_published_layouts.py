"""Reanalysis files as they are published (issue 17): each layout written by a fixture, read as is."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hloba.ingest import ReferenceFilesError, ReferenceSpec, open_reference, prepare_reference
from hloba.ingest.quality import DataQualityError
from hloba.testing import cds_style_files, grib_to_netcdf_style_files

GRIB_NAMES = {"msl": "mean_sea_level_pressure", "t": "temperature", "z": "geopotential"}


@pytest.fixture(scope="module")
def grib(tiny_world, tmp_path_factory):
    return grib_to_netcdf_style_files(tmp_path_factory.mktemp("grib_to_netcdf"), tiny_world)


@pytest.fixture(scope="module")
def cds(tiny_world, tmp_path_factory):
    return {kind: cds_style_files(tmp_path_factory.mktemp(f"cds{i}"), tiny_world, longitudes=kind)
            for i, kind in enumerate(("0..360", "-180..180"))}


def test_a_grib_to_netcdf_extract_daily_at_12_utc_is_read_as_published(grib, tmp_path):
    """Short names `t` and `z` next to a `time` dimension, daily at 12 UTC, descending float32
    latitudes, packed 16-bit values: each prepared year holds its 365 steps at 12 UTC, unpacked."""
    spec = {"source": "files", "path": str(grib[0].parent / "*.nc"), "variables": GRIB_NAMES}
    out = {year: tmp_path / f"{year}.nc" for year in (2001, 2002)}
    quality = {year: tmp_path / f"q{year}.csv" for year in out}
    prepare_reference(spec, out, min_size=4, quality=quality, interval_hours=24.0)
    with xr.open_dataset(out[2002]) as ds, xr.open_dataset(grib[1]) as raw:
        times = pd.DatetimeIndex(ds["time"].values)
        assert len(times) == 365 and times[0] == pd.Timestamp("2002-01-01 12:00") and (times.hour == 12).all()
        assert ds.attrs["interval_hours"] == 24.0 and ds.attrs["longitude_periodic"] == 0
        assert list(ds["longitude"].values) == list(np.arange(-10.0, 15.0, 2.0))
        assert list(ds["latitude"].values) == list(np.arange(35.0, 56.0, 2.0))
        assert sorted(ds.data_vars) == sorted(GRIB_NAMES.values())
        # the unpacked file values, flipped to ascending latitudes
        np.testing.assert_allclose(ds["temperature"].values, raw["t"].sel(time=times).values[:, ::-1], rtol=1e-6)
        assert raw["t"].encoding["dtype"] == np.int16 and "scale_factor" in raw["t"].encoding
    assert pd.read_csv(quality[2001])["status"].eq("ok").all()


def test_a_fill_value_in_a_packed_file_is_a_named_gap(grib, tmp_path):
    """A `_FillValue` is decoded to NaN, which the quality gate refuses with the variable and time."""
    path = tmp_path / "data"
    path.mkdir()
    for f in grib:
        with xr.open_dataset(f, mask_and_scale=False) as ds:
            ds = ds.load()
        if f.name == "t.nc":
            ds["t"].values[400, 3, 4] = ds["t"].attrs.get("_FillValue", ds["t"].encoding.get("_FillValue"))
        ds.to_netcdf(path / f.name)
    spec = {"source": "files", "path": str(path / "*.nc"), "variables": GRIB_NAMES}
    with pytest.raises(DataQualityError, match=r"t.nc, year 2002: temperature: 1 NaN values of 52195 "
                                               r"\(first at 2002-02-05 12:00:00\)"):
        prepare_reference(spec, {2002: tmp_path / "2002.nc"}, min_size=4)


def test_cds_files_split_by_variable_and_year_from_03_utc(cds, tmp_path):
    files = cds["0..360"]
    spec = {"source": "files", "path": str(files[0].parent / "*.nc"), "variables": {"z": "geopotential",
                                                                                     "t": "temperature"}}
    out = {2002: tmp_path / "2002.nc"}
    prepare_reference(spec, out, min_size=4)
    with xr.open_dataset(out[2002]) as ds, xr.open_dataset(files[0].parent / "t_2002.nc") as raw:
        times = pd.DatetimeIndex(ds["time"].values)
        assert len(times) == 1460 and times[0] == pd.Timestamp("2002-01-01 03:00") and times[-1] == pd.Timestamp(
            "2002-12-31 21:00")
        assert ds.attrs["longitude_periodic"] == 1 and list(ds["level"].values) == [500.0, 850.0]
        np.testing.assert_array_equal(ds["temperature"].sel(level=850.0).values,
                                      raw["t"].sel(pressure_level=850.0).values[:, ::-1])


@pytest.mark.parametrize(("kind", "box"), [
    ("0..360", [330.0, 30.0]), ("0..360", [-30.0, 30.0]),  # across the prime meridian of 0..360 files
    ("-180..180", [150.0, -150.0]), ("-180..180", [150.0, 210.0]),  # across the date line of -180..180 files
])
def test_a_region_across_the_files_seam_is_one_continuous_box(cds, kind, box):
    files = cds[kind]
    spec = ReferenceSpec(path=str(files[0].parent / "z_2001.nc"), variables={"z": "geopotential"},
                         region={"latitude": [-20, 20], "longitude": box})
    ds, _ = open_reference(spec)
    lon = ds["longitude"].values
    assert len(lon) == 3 and np.allclose(np.diff(lon), 22.5) and ds.attrs["longitude_periodic"] == 0
    west = lon[0] % 360.0
    with xr.open_dataset(files[0].parent / "z_2001.nc") as raw:
        raw_lon = raw["longitude"].values % 360.0
        column = raw["z"].isel(valid_time=0).sel(pressure_level=500.0).isel(
            longitude=int(np.flatnonzero(np.isclose(raw_lon, west))[0])).sel(latitude=slice(20, -20)).values[::-1]
    np.testing.assert_array_equal(ds["geopotential"].isel(time=0).sel(level=500.0).values[:, 0], column)


def test_files_whose_steps_differ_are_named(grib, tmp_path):
    for f in grib:
        with xr.open_dataset(f) as ds:
            ds = ds.load()
        if f.name == "msl.nc":
            ds = ds.isel(time=slice(None, None, 2))
        ds.to_netcdf(tmp_path / f.name)
    with pytest.raises(ReferenceFilesError, match=r"step differently: .*msl.nc every 2 days .*t.nc every 1 days"):
        open_reference(ReferenceSpec(path=str(tmp_path / "*.nc"), variables=GRIB_NAMES))


def test_an_alias_never_renames_a_mapped_variable():
    """ERA5's `t` is temperature, not a time axis; an alias serves only where `time` is absent."""
    from hloba.ingest.layout import rename_coords

    times = pd.date_range("2001-01-01", periods=3, freq="D")
    ds = xr.Dataset({"t": (("time", "lat", "lon"), np.zeros((3, 2, 2)))},
                    coords={"time": times, "lat": [0.0, 1.0], "lon": [0.0, 1.0]})
    out = rename_coords(ds, {}, {"t": "temperature"})
    assert "t" in out.data_vars and list(out.dims) == ["time", "latitude", "longitude"]
    no_time = xr.Dataset({"x": (("t", "lat", "lon"), np.zeros((3, 2, 2)))},
                         coords={"t": times, "lat": [0.0, 1.0], "lon": [0.0, 1.0]})
    assert "time" in rename_coords(no_time, {}).dims
