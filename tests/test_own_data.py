"""Bring your own data (issue 9): ERA5-style files through config alone, and clear errors."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from conftest import TINY_CORES, copy_workflow, merged_config

from hloba.ingest import ReferenceFilesError, ReferenceSpec, open_reference, prepare_reference, time_step
from hloba.testing import era5_style_files

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(scope="module")
def era5(tiny_world, tmp_path_factory):
    base = tmp_path_factory.mktemp("era5")
    return {kind: era5_style_files(base / kind, kind, world=tiny_world) for kind in ("global", "regional")}


def _era5_like(tmp_path, times, ny=6, nx=8, levels=(500.0, 850.0), lat_desc=True):
    lat = np.linspace(60, 30, ny) if lat_desc else np.linspace(30, 60, ny)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"z": (("valid_time", "pressure_level", "latitude", "longitude"),
               rng.standard_normal((len(times), len(levels), ny, nx)).astype(np.float32)),
         "t2m": (("valid_time", "latitude", "longitude"), rng.standard_normal((len(times), ny, nx)).astype(np.float32))},
        coords={"valid_time": times, "pressure_level": list(levels), "latitude": lat, "longitude": np.arange(nx) * 2.0},
    )
    path = tmp_path / "user.nc"
    ds.to_netcdf(path)
    return path, ds


def test_era5_layout_is_normalised(era5, tmp_path):
    """Names mapped, levels selected, latitudes flipped, the number dimension dropped, the step and
    the periodicity taken from the data."""
    spec = {"source": "files", "path": str(era5["global"][0].parent / "*.nc"), "levels": [500, 850],
            "variables": {"z": "geopotential", "t": "temperature", "u": "u_component_of_wind",
                          "v": "v_component_of_wind", "q": "specific_humidity"}}
    out = {2001: tmp_path / "2001.nc", 2002: tmp_path / "2002.nc"}
    quality = {year: tmp_path / f"quality_{year}.csv" for year in out}
    prepare_reference(spec, out, min_size=8, quality=quality, interval_hours=6.0)
    with xr.open_dataset(out[2002]) as ds, xr.open_dataset(era5["global"][1]) as raw:
        assert list(ds["level"].values) == [500.0, 850.0]
        assert np.all(np.diff(ds["latitude"].values) > 0) and ds.sizes["latitude"] == 15
        assert ds.attrs["longitude_periodic"] == 1 and ds.attrs["longitude_period_degrees"] == 360.0
        assert ds.attrs["interval_hours"] == 6.0 and ds.sizes["time"] == 365 * 4
        assert ds["geopotential"].dims == ("time", "level", "latitude", "longitude")
        # the values are the file's, flipped: north-most row of the file is the last row here
        np.testing.assert_array_equal(ds["geopotential"].sel(level=850.0).values[:, -1],
                                      raw["z"].isel(number=0).sel(pressure_level=850.0).values[:, 0])
        assert ds["geopotential"].attrs["units"] == "m2 s-2"
    table = pd.read_csv(quality[2002])  # the quality gate: every channel ok, nothing filled
    assert len(table) == 10 and table["status"].eq("ok").all() and table["filled_times"].eq(0).all()


def test_missing_steps_are_reported_and_filled(tmp_path):
    times = pd.date_range("2001-01-01", "2001-12-31", freq="D")
    gap = times.delete([40, 41, 200])
    path, ds = _era5_like(tmp_path, gap)
    spec = ReferenceSpec(path=str(path), variables={"z": "geopotential"}, levels=(500.0,))
    out, missing = open_reference(spec)
    assert list(missing) == [times[40], times[41], times[200]]
    assert out.sizes["time"] == 365 and out.attrs["interval_hours"] == 24.0
    filled = out["geopotential"].sel(time=times[40], level=500.0).values
    ds = ds.sortby("latitude")  # the file's latitudes descend; the prepared ones ascend
    before, after = (ds["z"].sel(valid_time=t, pressure_level=500.0).values for t in (times[39], times[42]))
    np.testing.assert_allclose(filled, before + (after - before) / 3, rtol=1e-5, atol=1e-5)
    with pytest.raises(ReferenceFilesError, match="lacks 3 time steps"):
        open_reference(ReferenceSpec(path=str(path), variables={"z": "geopotential"}, fill_missing=False))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"variables": {"msl": "mean_sea_level_pressure"}}, r"names \['msl'\], which the files .* do not hold; they hold \['t2m', 'z'\]"),
        ({"variables": {"z": "geopotential"}, "levels": [500, 700]}, r"reference.levels \[700.0\] are not in the files; their levels are \[500.0, 850.0\]"),
        ({"variables": {"z": "geopotential"}, "min_size": 8}, r"domain is 6 x 8 points: the autoencoder .* needs at least 8 points per side"),
    ],
)
def test_clear_errors_for_bad_files(tmp_path, spec, message):
    path, _ = _era5_like(tmp_path, pd.date_range("2001-01-01", periods=10, freq="6h"))
    with pytest.raises(ReferenceFilesError, match=message):
        open_reference(ReferenceSpec(path=str(path), **spec))


def test_non_uniform_time_steps_are_named():
    times = pd.DatetimeIndex(["2001-01-01 00:00", "2001-01-01 06:00", "2001-01-01 12:00", "2001-01-01 21:00",
                              "2001-01-02 00:00", "2001-01-02 06:00"])
    with pytest.raises(ReferenceFilesError, match=r"not uniform: most are 0 days 06:00:00.*first 0 days 09:00:00 after 2001-01-01 12:00"):
        time_step(times)
    step, missing = time_step(times.delete(3))
    assert step == pd.Timedelta(hours=6) and list(missing) == [pd.Timestamp("2001-01-01 18:00")]


def test_an_incomplete_year_is_named(tmp_path):
    path, _ = _era5_like(tmp_path, pd.date_range("2001-03-01", "2001-12-31", freq="D"))
    with pytest.raises(ReferenceFilesError, match="year 2001 is not complete"):
        prepare_reference({"source": "files", "path": str(path), "variables": {"t2m": "2m_temperature"}},
                          {2001: tmp_path / "out.nc"})
    assert not (tmp_path / "out.nc").exists()


def test_a_path_matching_nothing_and_the_qg_model_are_refused(tmp_path, repo):
    with pytest.raises(ReferenceFilesError, match="matches no files"):
        open_reference(ReferenceSpec(path=str(tmp_path / "nothing_*.nc")))
    from hloba.config import ConfigError, check_config

    config = merged_config(repo)
    config["reference"] = {"source": "files", "path": "x.nc"}
    with open(repo / "workflow/schemas/config.schema.yaml") as f:
        schema = yaml.safe_load(f)
    with pytest.raises(ConfigError, match="forecast.model': qg is the built-in world's own model"):
        check_config(config, schema)


@pytest.mark.slow
@pytest.mark.parametrize("example", ["regional_daily", "global_6hourly"])
def test_example_runs_end_to_end_and_beats_the_free_run(example, era5, tiny_world, repo, tmp_path):
    """The example config, unchanged, on files written as published; its analyses beat the
    emulator's free run in every channel (comparison scorecard) and the cycles keep the data's hour.
    Regional (a grib_to_netcdf extract, daily at 12 UTC, short names `t` and `z`, packed values):
    the whole pipeline, reference -> archive -> evaluation. Global (ERA5-style 6-hourly files):
    what the regional run does not show, the periodic 6-hourly layout through the emulator to the
    scorecard (the archive's rules are the tiny pipeline's)."""
    import shutil

    from hloba.testing import grib_to_netcdf_style_files

    work = copy_workflow(repo, tmp_path / "work")
    kind = "regional" if example == "regional_daily" else "global"
    files = grib_to_netcdf_style_files(work / "data", tiny_world) if kind == "regional" else era5[kind]
    for f in files:
        if f.parent != work / "data":
            (work / "data").mkdir(exist_ok=True)
            shutil.copy(f, work / "data" / f.name)
    # tiny training (config/test.yaml), the example's data and model settings on top, only the
    # comparison against the free run; the global example's networks (2.4 M observations a year)
    # thinned to a quarter of their stations, as the tiny world's are
    overlay = work / "overlay.yaml"
    settings = {"comparison": {"methods": ["hloba", "free"], "days": 20},
                "assimilation": {"decoded_increment": "weighted"},  # config.yaml's default (config/test.yaml: full)
                "emulator": {"epochs": 6, "samples_per_epoch": 512}}
    if kind == "global":
        networks = yaml.safe_load((work / f"config/examples/{example}.yaml").read_text())["observations"]["networks"]
        settings["observations"] = {"networks": {name: {**net, "count": net["count"] // 4}
                                                 for name, net in networks.items()}}
    overlay.write_text(yaml.safe_dump(settings))
    targets = [] if kind == "regional" else ["results/comparison/scorecard.csv"]
    proc = subprocess.run(SNAKEMAKE + [*targets, *TINY_CORES, "--configfile", "config/test.yaml",
                                       f"config/examples/{example}.yaml", "overlay.yaml"],
                          cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = work / "results"
    analyses = r / ("reanalysis/2002.nc" if kind == "regional" else "comparison/runs/hloba.nc")
    assert (kind == "global") != (r / "evaluation/2002/scores.csv").exists()
    with xr.open_dataset(analyses) as ds:
        assert ds.sizes["latitude"] == (11 if kind == "regional" else 15)
        assert np.all(np.diff(ds["latitude"].values) > 0)
        steps = np.unique(np.diff(ds["time"].values).astype("timedelta64[h]").astype(int))
        assert list(steps) == [24 if kind == "regional" else 6]
        hours = set(pd.DatetimeIndex(ds["time"].values).hour)
        assert hours == ({12} if kind == "regional" else {0, 6, 12, 18})
    if kind == "global":  # the emulator trained, and the lagged ensemble calibrated with it
        report = json.loads((r / "models/emulator_report.json").read_text())
        with xr.open_dataset(r / "ensemble/calibration.nc") as cal:
            assert cal.attrs["forecast_model"] == "emulator"
            assert report["lead_hours"] == 24.0 and len(report["ratio_to_persistence"]) == cal.sizes["channel"] == 10
    card = pd.read_csv(r / "comparison/scorecard.csv")
    hloba = card[card["method"] == "hloba"]
    assert (hloba["ratio_to_free"] < 0.8).all(), hloba
    if kind == "regional":  # the figures and captions call the files' fields the reference
        skill = pd.read_csv(r / "evaluation/2002/forecast_skill.csv")
        assert "rmse_from_reference" in skill.columns and "rmse_from_truth" not in skill.columns
        obs = pd.read_parquet(r / "obs/2002.parquet")
        assert set(obs["platform"]) == {"radiosonde", "surface", "aircraft"}  # satellite switched off
        assert set(pd.DatetimeIndex(obs["time"]).hour) == {12}
        withheld = pd.read_csv(r / "evaluation/2002/withheld.csv")  # evaluation.withhold of the example
        feedback = pd.read_parquet(r / "feedback/2002.parquet")
        assert withheld["n"].sum() == (feedback["qc"] == 3).sum() > 0
        # each row's O-A/O-B with its interval from resampling whole days (daily data: one report a day)
        several = withheld[withheld["n_days"] >= 2]
        assert len(several) and (several["n_days"] <= withheld["n"]).all()
        assert ((several["oma_over_omb_low"] <= several["oma_over_omb"])
                & (several["oma_over_omb"] <= several["oma_over_omb_high"])).all()
        assert 0.03 < (feedback["qc"] == 3).mean() < 0.2
        # the std network on a regional, non-periodic grid (issue #16's targets): shape, size, slope,
        # and larger far from the fixed stations than near them, as the error is
        rel = pd.read_csv(r / "evaluation/2002/reliability.csv").groupby("channel").first()
        assert (rel.corr_std_abs_error >= 0.3).all() and rel.spread_over_rmse.between(0.8, 1.2).all(), rel
        assert rel.reliability_slope.between(0.7, 1.3).all(), rel
        assert (rel.std_far_over_near > 1.0).all() and (rel.rmse_far_over_near > 1.0).all(), rel


def test_observation_files_are_validated_per_year(era5, tmp_path):
    """observations.source: files: the user's rows of one year on the reference's channels and grid;
    bad rows are dropped and counted, the rest kept as they are."""
    from hloba.ingest import prepare_observations

    spec = {"source": "files", "path": str(era5["regional"][0].parent / "*.nc"),
            "variables": {"msl": "mean_sea_level_pressure", "t2m": "2m_temperature"}}
    ref = tmp_path / "2002.nc"
    prepare_reference(spec, {2002: ref}, min_size=4)
    rows = pd.DataFrame({
        "time": pd.to_datetime(["2002-03-01 00:00", "2002-03-01 00:00", "2002-03-02 00:00", "2003-01-01 00:00",
                                "2002-03-03 00:00", "2002-03-04 00:00"]),
        "latitude": [40.0, 41.0, 80.0, 40.0, 42.0, 43.0], "longitude": [0.0, 1.0, 0.0, 0.0, 2.0, 3.0],
        "level": [np.nan] * 6,
        "variable": ["2m_temperature", "mean_sea_level_pressure", "2m_temperature", "2m_temperature",
                     "10m_u_component_of_wind", "2m_temperature"],
        "value": [280.0, 101000.0, 281.0, 282.0, 3.0, 283.0], "error_std": [1.0, 100.0, 1.0, 1.0, 1.5, 1.0],
        "platform": ["synop"] * 6, "station_id": ["a", "b", "c", "d", "e", "f"],
    })
    (tmp_path / "obs").mkdir()
    rows.iloc[:3].to_csv(tmp_path / "obs/part1.csv", index=False)
    rows.iloc[3:].to_parquet(tmp_path / "obs/part2.parquet", index=False)
    out = tmp_path / "obs2002.parquet"
    with pytest.raises(FileNotFoundError, match="matches no files"):
        prepare_observations(str(tmp_path / "none/*.csv"), ref, 2002, out)
    clean = prepare_observations(str(tmp_path / "obs/part*"), ref, 2002, out)
    kept = pd.read_parquet(out)
    # off domain (80 N), next year, and a variable the reference lacks are dropped
    assert sorted(kept["station_id"]) == ["a", "b", "f"] and len(clean) == 3
    assert kept.set_index("station_id").loc["b", "value"] == 101000.0


def test_a_region_of_a_global_file_is_a_regional_domain(era5):
    """reference.region cuts a box, also across the files' 0/360 seam; the box is not periodic."""
    path = str(era5["global"][0].parent / "*.nc")
    spec = ReferenceSpec(path=path, variables={"t": "temperature"}, levels=(850.0,),
                         region={"latitude": [-40, 50], "longitude": [-50, 60]})
    ds, _ = open_reference(spec)
    assert list(ds["latitude"].values) == [-40.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert list(ds["longitude"].values) == [-45.0, -22.5, 0.0, 22.5, 45.0]
    assert ds.attrs["longitude_periodic"] == 0
    with xr.open_dataset(era5["global"][0]) as raw:  # the -22.5 column is the file's 337.5
        np.testing.assert_array_equal(
            ds["temperature"].sel(longitude=-22.5, level=850.0).isel(time=0).values,
            raw["t"].isel(number=0, valid_time=0).sel(pressure_level=850.0, longitude=337.5).values[::-1][3:13])
    with pytest.raises(ReferenceFilesError, match="holds no grid points"):
        open_reference(ReferenceSpec(path=path, variables={"t": "temperature"}, region={"latitude": [80, 85]}))
