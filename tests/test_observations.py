"""Observation operator, simulated networks, and the reader/validator of user files."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from hloba.channels import Channel, list_channels
from hloba.grid import Grid
from hloba.obs.networks import NetworkConfig, ObservingSystem, simulate_observations
from hloba.obs.operator import apply_operator, interpolation_weights
from hloba.obs.schema import OBS_COLUMNS, load_observations, read_observations, validate_observations
from hloba.testing import synthetic_dataset

LAT = tuple(np.linspace(30.0, 60.0, 11))  # 3 degree spacing
LON = tuple(np.linspace(0.0, 48.0, 13))  # 4 degree spacing


def linear_field(a, b, c, grid):
    lat = np.asarray(grid.latitude)[:, None]
    lon = np.asarray(grid.longitude)[None, :]
    return a + b * lat + c * lon


def test_operator_is_exact_on_linear_fields():
    grid = Grid(LAT, LON)
    x = torch.tensor(np.stack([linear_field(1.0, 2.0, -0.5, grid), linear_field(-3.0, 0.25, 4.0, grid)]))[None]
    rng = np.random.default_rng(0)
    lat = rng.uniform(30.0, 60.0, 200)
    lon = rng.uniform(0.0, 48.0, 200)
    ch = rng.integers(0, 2, 200)
    got = apply_operator(x, interpolation_weights(grid, ch, lat, lon))[0].numpy()
    want = np.where(ch == 0, 1.0 + 2.0 * lat - 0.5 * lon, -3.0 + 0.25 * lat + 4.0 * lon)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_operator_wraps_periodic_longitude():
    lon = tuple(np.arange(0.0, 360.0, 30.0))
    grid = Grid(LAT, lon, longitude_period=360.0)
    field = np.cos(np.deg2rad(np.asarray(lon)))[None, :].repeat(len(LAT), 0)
    x = torch.tensor(field)[None, None]
    w = interpolation_weights(grid, np.zeros(3, int), np.full(3, 45.0), np.array([345.0, -15.0, 705.0]))
    got = apply_operator(x, w)[0].numpy()
    # halfway between 330 (cos = 0.866) and 0 (cos = 1): 0.933, the same from every representation
    np.testing.assert_allclose(got, 0.5 * (np.cos(np.deg2rad(330.0)) + 1.0), atol=1e-12)


def test_operator_is_differentiable_and_batched():
    grid = Grid(LAT, LON)
    x = torch.randn(3, 2, 11, 13, dtype=torch.float64, requires_grad=True)
    w = interpolation_weights(grid, np.array([0, 1]), np.array([31.5, 45.0]), np.array([2.0, 10.0]))
    y = apply_operator(x, w)
    assert y.shape == (3, 2)
    y.sum().backward()
    # weights of each observation sum to one
    np.testing.assert_allclose(x.grad.sum(dim=(1, 2, 3)).numpy(), 2.0)


def test_operator_reads_each_observations_own_time_and_cell():
    grid = Grid(LAT, LON)
    rng = np.random.default_rng(2)
    x = torch.randn(5, 3, 11, 13, dtype=torch.float64)
    lat, lon, ch = rng.uniform(30.0, 60.0, 50), rng.uniform(0.0, 48.0, 50), rng.integers(0, 3, 50)
    t = torch.as_tensor(rng.integers(0, 5, 50), dtype=torch.int32)  # any integer type
    w = interpolation_weights(grid, ch, lat, lon)
    got = apply_operator(x, w, t)
    want = torch.stack([sum(wt[k] * x[int(t[k]), int(ch[k]), int(i[k]), int(j[k])] for i, j, wt in w.neighbours())
                        for k in range(50)])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # the batched form reads the same values: row t of the batch
    torch.testing.assert_close(apply_operator(x, w)[t.long(), torch.arange(50)], got, rtol=0, atol=0)


def test_observations_located_in_chunks_as_at_once():
    from hloba.normalization import Normalizer, compute_normalization
    from hloba.obs.gridded import locate_observations

    times = pd.date_range("2003-01-01", periods=40, freq="6h")
    rng = np.random.default_rng(3)
    ds = synthetic_dataset(times, ny=11, nx=13, fill=lambda n, s, t: rng.normal(0.0, 1.0, s))
    ds = ds.assign_coords(latitude=list(LAT), longitude=list(LON))
    normalizer = Normalizer.from_dataset(compute_normalization(lambda: [ds], n_harmonics=2))
    grid = Grid(LAT, LON)
    n = 1000
    ch = rng.integers(0, len(normalizer.anomaly_std), n)
    lat, lon = rng.uniform(30.0, 60.0, n), rng.uniform(0.0, 48.0, n)
    when = (times[0] + pd.to_timedelta(rng.uniform(0, 240, n), unit="h")).to_numpy()
    whole = locate_observations(normalizer, grid, ch, lat, lon, when, chunk=n)
    for chunk in (1, 7, 333):
        for a, b in zip(whole, locate_observations(normalizer, grid, ch, lat, lon, when, chunk=chunk)):
            np.testing.assert_array_equal(a, b)
    clim, row, col = whole
    # nearest cell: the grid point closest in latitude and in longitude
    np.testing.assert_array_equal(row, np.abs(lat[:, None] - np.asarray(LAT)[None]).argmin(axis=1))
    np.testing.assert_array_equal(col, np.abs(lon[:, None] - np.asarray(LON)[None]).argmin(axis=1))
    # climatology: the harmonic fit evaluated at the observation's time, interpolated bilinearly
    k = 17
    fields = normalizer.climatology(pd.DatetimeIndex([when[k]]))[0, ch[k]].numpy()
    i0 = np.searchsorted(LAT, lat[k]) - 1
    j0 = np.searchsorted(LON, lon[k]) - 1
    fi = (lat[k] - LAT[i0]) / (LAT[i0 + 1] - LAT[i0])
    fj = (lon[k] - LON[j0]) / (LON[j0 + 1] - LON[j0])
    want = ((1 - fi) * ((1 - fj) * fields[i0, j0] + fj * fields[i0, j0 + 1])
            + fi * ((1 - fj) * fields[i0 + 1, j0] + fj * fields[i0 + 1, j0 + 1]))
    assert clim[k] == pytest.approx(want, abs=1e-10)


def test_gridded_observations_sorted_by_cycle_with_their_networks():
    from hloba.normalization import Normalizer
    from hloba.obs.gridded import grid_observations

    grid = Grid(LAT, LON)
    normalizer = Normalizer(torch.tensor([2.0, 4.0]), torch.zeros(3, 2, 11, 13, dtype=torch.float64), 1)
    normalizer.coefficients[0, 1] = 10.0  # channel 1's climatology: 10 everywhere, always
    cycles = pd.date_range("2003-01-01", periods=3, freq="6h")
    df = pd.DataFrame({
        "time": pd.to_datetime(["2003-01-01 12:00", "2003-01-01 01:00", "2003-01-01 06:00", "2003-01-01 20:00",
                                "2003-01-01 05:00", "2003-01-01 02:59"]),
        "channel": [0, 1, 1, 0, 0, 1],
        "latitude": [30.0, 33.0, 59.0, 45.0, 45.0, 45.0], "longitude": [0.0, 5.0, 47.0, 24.0, 24.0, 24.0],
        "value": [1.0, 14.0, 6.0, 3.0, -2.0, 10.0],
        "platform": ["surface", "aircraft", "radiosonde", "surface", "buoy", "aircraft"],
    })
    g = grid_observations(df, cycles, grid, normalizer)
    # 20:00 is more than 3 h from the last cycle: left out; 02:59 goes to 00:00, 05:00 to 06:00
    assert g.offsets.tolist() == [0, 2, 4, 5]
    np.testing.assert_allclose(g.value.numpy(), [(14.0 - 10.0) / 4.0, 0.0, (6.0 - 10.0) / 4.0, -2.0 / 2.0, 0.5])
    assert g.channel.tolist() == [1, 1, 1, 0, 0]
    assert g.row.tolist() == [1, 5, 10, 5, 0] and g.col.tolist() == [1, 6, 12, 6, 0]
    assert g.platforms == ["aircraft", "buoy", "radiosonde", "surface"]  # every kept name, sorted
    assert g.network.tolist() == [0, 0, 2, 1, 3]
    # with the training's platforms, a platform it never saw is -1 ("other")
    g = grid_observations(df, cycles, grid, normalizer, platforms=["aircraft", "surface"])
    assert g.network.tolist() == [0, 0, -1, -1, 1]


@pytest.fixture()
def truth():
    times = pd.date_range("2003-01-01", periods=8, freq="6h")
    rng = np.random.default_rng(1)
    ds = synthetic_dataset(times, ny=11, nx=13, fill=lambda n, s, t: rng.normal(0.0, 1.0, s))
    ds = ds.assign_coords(latitude=list(LAT), longitude=list(LON))
    return ds


def system(gross=0.0, **kw):
    nets = (
        NetworkConfig("radiosonde", "fixed", 5, "all", 12.0),
        NetworkConfig("surface", "fixed", 7, ("geopotential_750",), 6.0),
        NetworkConfig("satellite", "swath", 20, ("temperature",), 6.0, swath_width_deg=10.0),
        NetworkConfig("aircraft", "random", 4, ("geopotential_250", "temperature"), 6.0),
    )
    return ObservingSystem(nets, {"geopotential": 0.5, "temperature": 0.2}, seed=3, gross_error_fraction=gross, **kw)


def test_simulated_networks_follow_their_configuration(truth):
    df = simulate_observations(truth, system(), 2003)
    assert list(df.columns[: len(OBS_COLUMNS)]) == list(OBS_COLUMNS)
    counts = df.groupby("platform").size()
    assert counts["radiosonde"] == 4 * 5 * 3  # launches at 00 and 12 UTC on two days x sites x channels
    assert counts["surface"] == 8 * 7
    assert counts["satellite"] == 8 * 20 and counts["aircraft"] == 8 * 4
    sites = df[df.platform == "radiosonde"].groupby("station_id")[["latitude", "longitude"]].nunique()
    assert (sites == 1).all().all() and len(sites) == 5
    # the swath is a band: its points of one cycle span at most its width in longitude
    sat = df[(df.platform == "satellite") & (df.time == truth.time.values[0])]
    assert sat.longitude.max() - sat.longitude.min() <= 10.0
    assert set(df[df.platform == "surface"].level) == {750.0}
    assert df[df.variable == "temperature"].level.isna().all()
    # noise has the configured error std
    grid = Grid.from_dataset(truth)
    clean, _ = validate_observations(df, list_channels(truth), grid)
    t_idx = pd.DatetimeIndex(truth.time.values).get_indexer(clean.time)
    from hloba.channels import stack_channels
    x = torch.tensor(stack_channels(truth, list_channels(truth)))
    exact = apply_operator(x, interpolation_weights(grid, clean.channel.values, clean.latitude.values,
                                                    clean.longitude.values), torch.as_tensor(t_idx)).numpy()
    z = (clean.value.values - exact) / clean.error_std.values
    assert abs(z.std() - 1.0) < 0.1


def test_same_sites_every_year_new_noise(truth):
    a = simulate_observations(truth, system(), 2003)
    b = simulate_observations(truth, system(), 2004)
    ra, rb = a[a.platform == "radiosonde"], b[b.platform == "radiosonde"]
    np.testing.assert_array_equal(ra.latitude.values, rb.latitude.values)
    assert not np.allclose(ra.value.values, rb.value.values)
    pd.testing.assert_frame_equal(a, simulate_observations(truth, system(), 2003))


def test_gross_errors_are_planted_at_the_configured_rate_and_size(truth):
    df = simulate_observations(truth, system(gross=0.2, gross_error_size=10.0), 2003)
    frac = df.gross_error.mean()
    assert 0.12 < frac < 0.28


def good_rows(n=6):
    return pd.DataFrame({
        "time": pd.Timestamp("2003-01-01 06:00"), "latitude": np.linspace(35, 55, n),
        "longitude": np.linspace(5, 40, n), "level": 250.0, "variable": "geopotential",
        "value": np.arange(n, dtype=float), "error_std": 1.0, "platform": "radiosonde",
        "station_id": [f"s{i}" for i in range(n)],
    })


def test_validator_counts_each_kind_of_bad_row():
    channels = [Channel("geopotential", 250.0), Channel("geopotential", 750.0), Channel("temperature")]
    grid = Grid(LAT, LON)
    bad = []
    nan = good_rows(2).assign(value=np.nan)
    no_platform = good_rows(2).assign(platform=None)  # which network: unknown, so never assimilated
    off = good_rows(3).assign(latitude=80.0)
    unknown = good_rows(4).assign(variable="vorticity")
    wrong_level = good_rows(1).assign(level=500.0)
    late = good_rows(2).assign(time=pd.Timestamp("2004-02-01"))
    sigma = good_rows(2).assign(error_std=0.0)
    dup = good_rows(1)
    bad = [nan, no_platform, off, unknown, wrong_level, late, sigma]
    df = pd.concat([good_rows(), dup, *bad], ignore_index=True)
    clean, counts = validate_observations(df, channels, grid, pd.Timestamp("2003-01-01"), pd.Timestamp("2003-12-31 18:00"))
    assert counts == {"missing value": 4, "unknown variable or level": 5, "off domain": 3, "outside period": 2,
                      "non-positive error_std": 2, "duplicate": 1}
    assert len(clean) == 6
    assert (clean.channel == 0).all()
    # a single-level channel matches its variable at any level
    t = good_rows(2).assign(variable="temperature", level=[np.nan, 500.0])
    clean, counts = validate_observations(t, channels, grid)
    assert list(clean.channel) == [2, 2] and sum(counts.values()) == 0


def test_missing_column_names_it(tmp_path):
    with pytest.raises(ValueError, match="error_std"):
        validate_observations(good_rows().drop(columns="error_std"), [Channel("geopotential", 250.0)], Grid(LAT, LON))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".nc"])
def test_reader_takes_parquet_csv_and_netcdf(tmp_path, suffix, caplog):
    df = pd.concat([good_rows(), good_rows(2).assign(latitude=89.0, station_id=["x", "y"])], ignore_index=True)
    path = tmp_path / f"obs{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        xr.Dataset.from_dataframe(df.rename_axis("obs")).to_netcdf(path)
    assert len(read_observations(path)) == 8
    with caplog.at_level("WARNING"):
        clean = load_observations([path], [Channel("geopotential", 250.0)], Grid(LAT, LON))
    assert len(clean) == 6
    assert "off domain': 2" in caplog.text


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_period_reads_the_same_rows_as_the_whole_file_cut(tmp_path, suffix):
    """Parquet is filtered while read (a month of a year's file), other formats after; the kept
    rows and their order are those of the whole file cut to the period, bounds included."""
    times = pd.date_range("2003-01-01", periods=40, freq="6h")
    df = pd.concat([good_rows(3).assign(time=t, station_id=[f"{k}-{i}" for i in range(3)])
                    for k, t in enumerate(times)], ignore_index=True).sample(frac=1.0, random_state=0)
    path = tmp_path / f"obs{suffix}"
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    start, end = times[5], times[17]
    channels, grid = [Channel("geopotential", 250.0)], Grid(LAT, LON)
    cut = load_observations([path], channels, grid, start, end)
    whole = load_observations([path], channels, grid)
    want = whole[(whole["time"] >= start) & (whole["time"] <= end)].reset_index(drop=True)
    assert len(cut) == 13 * 3 and cut["time"].min() == start and cut["time"].max() == end
    pd.testing.assert_frame_equal(cut, want)
    if suffix == ".parquet":  # read already cut
        assert len(read_observations(path, start, end)) == 13 * 3 and len(read_observations(path)) == 40 * 3
