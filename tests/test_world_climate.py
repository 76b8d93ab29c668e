"""The built-in world's climate is usable (tiny configuration; the default one is checked by
scripts/check_world_climate.py)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from hloba.world.diagnostics import (
    eddy_kinetic_energy,
    error_doubling_time,
    linear_explained_variance,
    max_wind_speed,
    relative_change,
    seasonal_ratio,
)
from hloba.world.qg import QGModel, QGParams, random_initial_state
from hloba.world.simulate import WorldConfig, simulate_years, world_dtype


@pytest.fixture(scope="module")
def two_years():
    # dt 120 min at 32 x 32 has the CFL number of dt 60 at 64 x 64 (within the climate targets);
    # measured with dt 60 / 120: annual EKE change 0.0006 / 0.045, winter/summer 2.70-2.77 / 2.69-2.73,
    # p99 of the maximum wind 50-56 / 52-53 m/s, humidity explained linearly 0.56 / 0.58
    config = WorldConfig(qg=QGParams(nx=32, ny=32, dt_minutes=120.0), spinup_days=180.0, seed=7)
    return list(simulate_years(config, [2001, 2002], progress=False))


def test_years_are_consecutive_calendar_years(two_years):
    (y1, ds1), (y2, ds2) = two_years
    assert (y1, y2) == (2001, 2002)
    assert ds1.sizes["time"] == 365 * 4 and ds2.sizes["time"] == 365 * 4
    assert str(ds1.time.values[0])[:19] == "2001-01-01T00:00:00"
    assert str(ds2.time.values[-1])[:19] == "2002-12-31T18:00:00"


def test_eddy_energy_is_steady_from_year_to_year(two_years):
    annual = [float(eddy_kinetic_energy(ds).mean()) for _, ds in two_years]
    assert relative_change(*annual) < 0.15
    assert 5.0 < annual[0] < 500.0


def test_winter_storms_are_stronger_than_summer(two_years):
    for _, ds in two_years:
        assert seasonal_ratio(eddy_kinetic_energy(ds)) >= 1.5


def test_maximum_winds_are_atmospheric(two_years):
    for _, ds in two_years:
        p99 = np.percentile(max_wind_speed(ds).values, 99)
        assert 15.0 <= p99 <= 80.0


def test_humidity_is_not_a_function_of_the_streamfunctions(two_years):
    _, ds = two_years[0]
    q = ds["specific_humidity"].values
    assert q.min() >= 0.0 and q.max() < 0.03
    # temperature (thickness) is an exact linear function of the geopotentials; humidity is not
    assert linear_explained_variance(ds, "temperature") > 0.999
    assert linear_explained_variance(ds, "specific_humidity") < 0.8


def test_error_doubling_time_default_resolution():
    params = QGParams()
    model = QGModel(params)
    state = random_initial_state(params, 1, torch.Generator().manual_seed(0))
    # 60 days of spin-up (the eddies saturate within a month), ending in winter (day 340); measured
    # doubling times after 45, 60, 90, 120 and 240 days of spin-up: 1.93, 2.23, 2.24, 1.80, 2.16 days
    state = model(state, 280.0, 48 * 60)
    doubling = error_doubling_time(model, state, 340.0, days=35)
    assert 1.0 <= doubling <= 5.0


def test_world_precision_is_checked_and_recorded():
    assert world_dtype(WorldConfig(precision="float32")) == torch.float32
    assert world_dtype(WorldConfig()) == torch.float64
    with pytest.raises(ValueError, match=r"world.precision='float16' is not one of \['float32', 'float64'\]"):
        WorldConfig(precision="float16")
    # a coarse step and twice-daily output (test_world_chains.py's): three whole years in seconds
    config = WorldConfig(qg=QGParams(nx=16, ny=16, dt_minutes=240.0), spinup_days=0.0, output_interval_hours=12.0,
                         precision="float32")
    one = simulate_years(config, [2001], progress=False)
    year, ds = next(one)
    assert year == 2001 and ds.attrs["world_precision"] == "float32"
    assert np.isfinite(ds["geopotential"].values).all()
    with pytest.raises(ValueError, match=r"world.transforms='mkl' is not one of \['torch', 'pocketfft'\]"):
        WorldConfig(transforms="mkl")
    portable = replace(config, precision="float64", transforms="pocketfft")
    with pytest.raises(ValueError, match="pocketfft steps the world on the CPU, not on cuda"):
        next(simulate_years(portable, [2001], device="cuda", progress=False))
    _, ds64 = next(simulate_years(portable, [2001], progress=False))
    _, ds_torch = next(simulate_years(replace(portable, transforms="torch"), [2001], progress=False))
    assert ds64.attrs["world_transforms"] == "pocketfft" and ds_torch.attrs["world_transforms"] == "torch"
    # the same world to rounding over the first days (chaos parts them later)
    early = dict(time=slice(0, 20))
    np.testing.assert_allclose(ds64["geopotential"].isel(early), ds_torch["geopotential"].isel(early), rtol=1e-6)


def test_world_fingerprint_tells_the_stored_values_apart_and_ignores_attributes(repo, two_years, tmp_path):
    """scripts/world_fingerprint.py: the same fields give the same fingerprint whatever the file's
    attributes; one value changed by its last bit gives another."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("world_fingerprint", repo / "scripts/world_fingerprint.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, ds = two_years[0]
    ds.to_netcdf(tmp_path / "a.nc")
    ds.assign_attrs(history="written again later").to_netcdf(tmp_path / "b.nc")
    nudged = ds.copy(deep=True)
    name = sorted(nudged.data_vars)[0]
    values = nudged[name].values
    values.flat[0] = np.nextafter(values.flat[0], np.inf)
    nudged[name].values = values
    nudged.to_netcdf(tmp_path / "c.nc")
    a, b, c = (script.fingerprint(tmp_path / f"{x}.nc") for x in "abc")
    assert a == b and a != c and len(a) == 16
    assert script.transforms(tmp_path / "a.nc") == ds.attrs["world_transforms"]
    ds.drop_attrs().to_netcdf(tmp_path / "d.nc")  # a file from before the attribute
    assert script.transforms(tmp_path / "d.nc") == "torch"
