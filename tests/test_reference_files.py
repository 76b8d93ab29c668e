"""Reference files of the world: CF layout, atomic writes, inversion of the presentation."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from hloba.channels import list_channels
from hloba.io import write_netcdf
from hloba.testing import tiny_world_config
from hloba.world.atmosphere import physical_fields, state_from_fields
from hloba.world.qg import QGModel, random_initial_state
from hloba.world.reference import write_reference_years


# the tiny world at one step per 6-hourly output: the files' layout, not its weather, is the subject
# here (half the time of the tiny world's 120-minute step: a third of the steps)
FILE_WORLD = tiny_world_config(dt_minutes=360.0)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    write_reference_years(FILE_WORLD, {2003: out / "2003.nc", 2004: out / "2004.nc"}, progress=False)
    return out


def test_files_open_with_cf_attributes(reference_dir):
    with xr.open_dataset(reference_dir / "2004.nc") as ds:
        assert ds.sizes["time"] == 366 * 4  # leap year, 6-hourly
        assert list(ds["geopotential"].dims) == ["time", "level", "latitude", "longitude"]
        assert list(ds["level"].values) == [250.0, 750.0]
        expected = {
            "geopotential": ("m2 s-2", "geopotential"),
            "temperature": ("K", "air_temperature"),
            "u_component_of_wind": ("m s-1", "eastward_wind"),
            "v_component_of_wind": ("m s-1", "northward_wind"),
            "specific_humidity": ("kg kg-1", "specific_humidity"),
        }
        for name, (units, standard) in expected.items():
            assert ds[name].attrs["units"] == units
            assert ds[name].attrs["standard_name"] == standard
            assert ds[name].attrs["long_name"]
        assert ds["latitude"].attrs["units"] == "degrees_north"
        assert ds["longitude"].attrs["units"] == "degrees_east"
        assert np.all(np.diff(ds["latitude"].values) > 0)
        assert ds.attrs["Conventions"].startswith("CF-")
        assert len(list_channels(ds)) == 8
        # physically plausible magnitudes
        assert 200.0 < float(ds["temperature"].mean()) < 290.0
        assert 9.0e4 < float(ds["geopotential"].sel(level=250).mean()) < 1.1e5


def test_consecutive_years_join_without_gap(reference_dir):
    with xr.open_mfdataset(sorted(reference_dir.glob("*.nc"))) as ds:
        steps = np.diff(ds["time"].values).astype("timedelta64[h]").astype(int)
        assert set(steps) == {6}
        # continuity: the jump from Dec 31 18:00 to Jan 1 00:00 is like any other 6-hour step
        z = ds["geopotential"].sel(level=250).values
        jumps = np.abs(np.diff(z, axis=0)).mean(axis=(1, 2))
        seam = int(np.argmax(ds["time"].values == np.datetime64("2004-01-01T00:00"))) - 1
        assert jumps[seam] < 3 * np.median(jumps[seam - 20 : seam + 20])


def test_presentation_inverts_to_the_model_state():
    config = tiny_world_config()
    model = QGModel(config.qg)
    state = random_initial_state(config.qg, 2, torch.Generator().manual_seed(0))
    state = model(state, 0.0, 200)
    fields = physical_fields(model, state, 30.0)
    back = state_from_fields(model, fields["geopotential"], fields["specific_humidity"], 30.0)
    assert torch.allclose(back[:, :2], state[:, :2], rtol=0, atol=1e-9 * state[:, :2].abs().max())
    # winds are the streamfunction's gradient: a wind field from the round trip agrees
    again = physical_fields(model, back, 30.0)
    assert torch.allclose(again["u_component_of_wind"], fields["u_component_of_wind"], atol=1e-8)


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path):
    ds = xr.Dataset({"a": ("time", np.arange(3.0))}, coords={"time": pd.date_range("2000", periods=3, freq="6h")})
    target = tmp_path / "out.nc"

    class Boom(Exception):
        pass

    bad = ds.copy()
    bad["b"] = ("time", np.array([object(), object(), object()]))  # cannot be encoded
    with pytest.raises(Exception):
        write_netcdf(bad, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_netcdf(ds, target)
    with xr.open_dataset(target) as back:
        np.testing.assert_array_equal(back["a"].values, ds["a"].values)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_same_seed_same_bytes(reference_dir, tmp_path):
    """The same configuration writes the same file again, whether or not later years are asked for
    (the module's files were written as 2003 and 2004 together)."""
    write_reference_years(FILE_WORLD, {2003: tmp_path / "2003.nc"}, progress=False)
    with xr.open_dataset(tmp_path / "2003.nc") as a, xr.open_dataset(reference_dir / "2003.nc") as b:
        xr.testing.assert_identical(a, b)
