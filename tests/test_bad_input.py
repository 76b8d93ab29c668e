"""Bad input is loud (issue 19): each case ends with one line naming the input, and nothing good is lost.

The tiny configuration's own reference and observation files stand in for a user's files; each
case spoils one thing. In-process where the subject is the library, a Snakemake subprocess where
the subject is what the workflow keeps or deletes.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from conftest import TINY_CORES, copy_workflow, merged_config, tiny_inputs, tiny_settings

from hloba.config import ConfigError, check_config, check_paths
from hloba.ingest import ReferenceFilesError, prepare_observations, prepare_reference
from hloba.ingest.quality import DataQualityError

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
VARIABLES = {v: v for v in ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
                            "specific_humidity")}


@pytest.fixture()
def user_files(tiny_models, tmp_path):
    """The tiny world's reference years and observations as a user's files, and 2002 prepared."""
    r = tiny_models / "results"
    (tmp_path / "ref").mkdir()
    (tmp_path / "obs").mkdir()
    for year in (2001, 2002):
        shutil.copy(r / f"reference/{year}.nc", tmp_path / f"ref/ref_{year}.nc")
        shutil.copy(r / f"obs/{year}.parquet", tmp_path / f"obs/obs_{year}.parquet")
    spec = {"source": "files", "path": str(tmp_path / "ref/ref_*.nc"), "variables": VARIABLES}
    prepared = tmp_path / "prepared_2002.nc"
    prepare_reference(spec, {2002: prepared}, 4)
    return {"spec": spec, "dir": tmp_path, "prepared": prepared}


def _spoil_reference(files, change):
    path = files["dir"] / "ref/ref_2002.nc"
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    change(ds).to_netcdf(path)
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda ds: ds.assign(specific_humidity=ds["specific_humidity"] * np.nan),
     r"ref_2002.nc, year 2002: specific_humidity: no finite value \(NaN everywhere\)$"),
    (lambda ds: ds.assign(temperature=ds["temperature"].where(ds["time"] != ds["time"][100])),
     r"year 2002: temperature: 256 NaN values of 373760 \(first at 2002-01-26 00:00:00\)"),
    (lambda ds: ds.assign(temperature=ds["temperature"] * 0 + 250.0),
     r"year 2002: temperature: constant \(250\) over the whole year"),
    (lambda ds: ds.assign(temperature=ds["temperature"] - 273.15),
     r"year 2002: temperature: median -2\d\.\d+ is outside 150..350.*look like degrees C \(add 273.15\)"),
    (lambda ds: ds.assign(geopotential=ds["geopotential"] / 9.80665),
     r"geopotential at 250 hPa: median 10\d+\.?\d* is outside .*look like geopotential height in m"),
    (lambda ds: ds.assign(u_component_of_wind=ds["u_component_of_wind"].where(ds["time"] != ds["time"][10], 500.0)),
     r"u_component_of_wind at 250 hPa: 256 values outside the physical limits -200..200 m s-1 \(range -\d"),
])
def test_a_bad_reference_field_is_refused_and_nothing_is_written(user_files, tmp_path, change, message):
    _spoil_reference(user_files, change)
    out = tmp_path / "out.nc"
    with pytest.raises(DataQualityError, match=message):
        prepare_reference(user_files["spec"], {2002: out}, 4, {2002: tmp_path / "quality.csv"})
    assert not out.exists()


def test_the_reference_quality_table_counts_filled_steps_as_warnings(user_files, tmp_path):
    path = user_files["dir"] / "ref/ref_2002.nc"
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds.isel(time=np.setdiff1d(np.arange(ds.sizes["time"]), [40, 41])).to_netcdf(path)
    quality = tmp_path / "quality.csv"
    prepare_reference(user_files["spec"], {2002: tmp_path / "out.nc"}, 4, {2002: quality})
    table = pd.read_csv(quality)
    assert len(table) == 8 and set(table["status"]) == {"warning"}
    assert (table["filled_times"] == 2).all() and (table["n_nan"] == 0).all()
    assert table.loc[table["variable"] == "temperature", "median"].item() == pytest.approx(245, abs=5)
    assert table["note"].eq("2 missing time steps filled by interpolation").all()


def test_an_empty_reference_file_is_named(user_files, tmp_path):
    (user_files["dir"] / "ref/ref_2002.nc").write_bytes(b"")
    with pytest.raises(ReferenceFilesError, match=r"reference file .*ref_2002.nc cannot be read: it is empty \(0 bytes\)"):
        prepare_reference(user_files["spec"], {2001: tmp_path / "2001.nc"}, 4)
    assert not (tmp_path / "2001.nc").exists()


def _observations(files, year, change=None, name="obs_2002.parquet"):
    """Spoil the user's observation file ``name`` with ``change`` and prepare ``year``."""
    path = files["dir"] / "obs" / name
    if change is not None:
        change(pd.read_parquet(path)).to_parquet(path)
    out = files["dir"] / f"prepared_obs_{year}.parquet"
    quality = files["dir"] / f"quality_obs_{year}.csv"
    prepare_observations(str(files["dir"] / "obs/*.parquet"), files["prepared"], year, out, quality=quality)
    return out, quality


def _in(df, variable, **changes):
    df = df.copy()
    for column, fn in changes.items():
        df.loc[df["variable"] == variable, column] = fn(df.loc[df["variable"] == variable, column])
    return df


@pytest.mark.parametrize(("change", "message"), [
    (lambda df: df.drop(columns="error_std"),
     r"observation file .*obs_2002.parquet lacks the column\(s\) \['error_std'\]"),
    (lambda df: df.assign(value=np.nan),
     r"observation file .*obs_2002.parquet contributes no usable observation \(245280 rows, dropped "
     r"\{'missing value': 245280\}\)"),
    (lambda df: df.assign(time=df["time"] + pd.Timedelta(days=365)),
     r"no observation of 2002 in the files obs_2001.parquet \(2001-01-01 00:00:00 to 2001-12-31 18:00:00\); "
     r"obs_2002.parquet \(2003-01-01 00:00:00 to 2003-12-31 18:00:00\)"),
    (lambda df: _in(df, "geopotential", value=lambda v: v / 9.80665),
     r"obs_2002.parquet \(observations of 2002\): geopotential: at 250 hPa, median \d+\.?\d* is \d+ standard "
     r"deviations from the reference's mean \d+ m2 s-2; the values look like geopotential height in m"),
    (lambda df: _in(df, "temperature", value=lambda v: v - 273.15),
     r"obs_2002.parquet \(observations of 2002\): temperature: median -\d+\.?\d* is \d+ standard deviations.*"
     r"look like degrees C"),
    (lambda df: _in(df, "temperature", error_std=lambda v: v * 0),
     r"obs_2002.parquet \(observations of 2002\): temperature: all \d+ rows of 2002 dropped: .*"
     r"'non-positive error_std': \d+"),
])
def test_bad_observations_are_refused_with_one_line(user_files, change, message):
    with pytest.raises(DataQualityError, match=message):
        _observations(user_files, 2002, change)
    assert not (user_files["dir"] / "prepared_obs_2002.parquet").exists()


def test_an_empty_observation_file_is_named(user_files):
    (user_files["dir"] / "obs/obs_2002.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"observation file .*obs_2002.parquet is empty \(0 bytes\)"):
        _observations(user_files, 2002)


def test_the_observation_quality_table_counts_what_was_dropped(user_files):
    def spoil(df):
        df = df.copy()
        df.loc[df.index[df["variable"] == "geopotential"][:10], "value"] = np.nan  # missing values
        df.loc[df["variable"] == "specific_humidity", "variable"] = "relative_humidity"  # not in the reference
        return df

    out, quality = _observations(user_files, 2002, spoil)
    table = pd.read_csv(quality)
    kept = pd.read_parquet(out)
    rows = table.set_index(["file", "variable"])
    ours = str(user_files["dir"] / "obs/obs_2002.parquet")
    assert rows.loc[(ours, "relative_humidity"), "status"] == "warning"
    assert rows.loc[(ours, "relative_humidity"), "dropped_unknown_variable_or_level"] == 37960
    assert rows["dropped_missing_value"].sum() == 10
    unobserved = table[table["file"].isna() & (table["variable"] == "specific_humidity")]
    assert len(unobserved) == 1 and unobserved["note"].iloc[0] == "no observation of this channel in the year"
    assert len(kept) == rows["n_kept"].sum() and "relative_humidity" not in set(kept["variable"])


def test_a_channel_rejected_over_a_day_stops_the_stream(tiny_models, tmp_path):
    """Observations that passed no gate (e.g. simulated with a wrong offset) are rejected by the
    first-guess check: above the configured fraction over a day the stream stops, naming them."""
    from hloba.assim.qc_alarm import QCAlarmError
    from hloba.assim.models import load_stream_models
    from hloba.assim.stream import run_stream

    r = tiny_models / "results"
    obs = pd.read_parquet(r / "obs/2002.parquet")
    obs.loc[obs["variable"] == "temperature", "value"] -= 273.15
    obs.to_parquet(tmp_path / "2002.parquet")
    models = load_stream_models(tiny_inputs(tiny_models, tuning=False))
    # a day of spin-up on the clean 2001 observations: the background is warm when 2002 begins
    paths = [r / "obs/2001.parquet", tmp_path / "2002.parquet"]
    cfg, run = tiny_settings(tiny_models, spinup_days=1)
    with pytest.raises(QCAlarmError, match=r"^temperature: the first-guess check rejected \d+ % of its \d+ observations "
                                           r"on 2002-01-01 \(limit 50 %, assimilation.max_rejected_fraction\); mean O-B "
                                           r"-2\d\d\.?\d* against an expected spread of \d"):
        run_stream(2002, models, paths, cfg, run, max_cycles=12)
    # the same observations pass with the alarm off, and the feedback shows the rejections
    result = run_stream(2002, models, paths, cfg.with_(max_rejected_fraction=1.0), run, max_cycles=12)
    table = result.observations
    day = ((table["time"] >= "2002-01-01") & (table["time"] < "2002-01-03")).to_numpy()
    qc = result.qc.numpy()
    assert (qc[day & (table["variable"] == "temperature").to_numpy()] == 1).mean() > 0.9
    assert (qc[day & (table["variable"] != "temperature").to_numpy()] == 1).mean() < 0.15


def _alarm_day(alarm, day, ch, reject):
    for hour in (0, 6, 12, 18):
        alarm.add(pd.Timestamp(f"{day} {hour:02d}:00"), ch, reject, torch.ones(len(ch)), torch.full((len(ch),), 4.0))


def test_the_alarm_judges_whole_days_after_the_spin_up_and_the_warm_up():
    from hloba.assim.qc_alarm import QCAlarmError, RejectionAlarm

    ch = torch.tensor([0] * 10 + [1] * 3)
    everything = torch.ones(13, dtype=torch.bool)
    # a spin-up with observations, all rejected: not judged; Jan 1, all rejected: judged
    alarm = RejectionAlarm(["a", "b"], max_fraction=0.5, min_count=20, judge_from=pd.Timestamp("2002-01-01"))
    for day in ("2001-12-30", "2001-12-31", "2002-01-01"):
        _alarm_day(alarm, day, ch, everything)
    with pytest.raises(QCAlarmError, match=r"^a: .* rejected 100 % of its 40 observations on 2002-01-01.*mean O-B 1 "
                                           r"against an expected spread of 2:"):
        alarm.add(pd.Timestamp("2002-01-02"), ch, everything, torch.ones(13), torch.full((13,), 4.0))
    # a spin-up without observations: Jan 1 is the warm-up; Jan 2: a 40 observations, 20 rejected
    # (50 %: not above), b 12, all rejected (fewer than 20: not judged); Jan 3: all rejected
    alarm = RejectionAlarm(["a", "b"], max_fraction=0.5, min_count=20, judge_from=pd.Timestamp("2002-01-01"))
    none = torch.zeros(0, dtype=torch.long)
    _alarm_day(alarm, "2001-12-31", none, none.bool())
    _alarm_day(alarm, "2002-01-01", ch, everything)
    _alarm_day(alarm, "2002-01-02", ch, torch.tensor([True] * 5 + [False] * 5 + [True] * 3))
    _alarm_day(alarm, "2002-01-03", ch, everything)
    with pytest.raises(QCAlarmError, match=r"^a: .* rejected 100 % of its 40 observations on 2002-01-03"):
        alarm.check()


def test_models_from_other_grids_name_both_files(tiny_models, tmp_path):
    from dataclasses import replace

    from hloba.assim.models import load_stream_models
    from hloba.models.checkpoint import CheckpointError

    r = tiny_models / "results"
    payload = torch.load(r / "models/autoencoder.pt", weights_only=True)
    payload["grid"]["latitude"] = [v + 10.0 for v in payload["grid"]["latitude"]]
    torch.save(payload, tmp_path / "autoencoder.pt")
    with pytest.raises(CheckpointError, match=r"autoencoder.pt and .*o2lnet.pt were trained on different data: "
                                              r".*autoencoder.pt on a 16 x 16 grid \(12.84\.\..*o2lnet.pt on a "
                                              r"16 x 16 grid \(2.84\.\."):
        load_stream_models(replace(tiny_inputs(tiny_models), autoencoder=str(tmp_path / "autoencoder.pt")))


def test_a_tuning_made_with_other_settings_is_refused(tiny_models):
    """A tuning file holds factors (and, cycling, a static variance) for the settings it was tuned
    with; a stream with other settings (a compared variant given the shared tuning) stops with the
    file and each differing setting named instead of weighing the wrong variances."""
    from hloba.assim.models import StreamError, check_tuning_settings, method_models

    inputs = tiny_inputs(tiny_models)
    with xr.open_dataset(inputs.tuning) as ds:
        attrs = dict(ds.attrs)
    cfg, _ = tiny_settings(tiny_models)
    assert attrs["background_variance"] == cfg.background_variance and attrs["rotation"] == int(cfg.rotation)
    method_models(cfg, inputs, "cpu")  # the settings it was tuned with: read
    other = {"cycling": "forecast", "forecast": "cycling"}[cfg.background_variance]
    with pytest.raises(StreamError, match=rf"stream_tuning.nc was tuned with other settings \(background_variance: "
                                          rf"{cfg.background_variance} in the file, {other} in this stream\)"):
        method_models(cfg.with_(background_variance=other), inputs, "cpu")
    with pytest.raises(StreamError, match="rotation: 1 in the file, False in this stream; update: "):
        method_models(cfg.with_(rotation=False, update={"posterior": "likelihood"}.get(cfg.update, "posterior")),
                      inputs, "cpu")
    check_tuning_settings({}, cfg, inputs.tuning)  # a file that records none passes


def test_write_failures_name_the_file_and_the_cause(tmp_path, monkeypatch):
    import hloba.io
    from hloba.io import OutputError, check_writable, write_netcdf

    ds = xr.Dataset({"a": ("time", np.arange(3.0))}, coords={"time": pd.date_range("2002-01-01", periods=3)})

    def full(self, path, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    monkeypatch.setattr(hloba.io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(OutputError, match=r"writing .*out.nc failed: the disk is full \(4096 bytes free in "):
        write_netcdf(ds, tmp_path / "out.nc")
    assert not list(tmp_path.iterdir())  # no partial file left
    monkeypatch.undo()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError, match=r"cannot write .*a_file/year.nc: .*a_file is a file where a folder is needed"):
        check_writable([tmp_path / "a_file" / "year.nc"])
    monkeypatch.setattr(hloba.io.os, "access", lambda path, mode: False)
    monkeypatch.setattr(hloba.io.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(OutputError, match=r"cannot write .*ro/year.nc: no permission to write in .*ro$"):
        check_writable([tmp_path / "ro" / "year.nc"])


@pytest.fixture(scope="module")
def schema(repo):
    with open(repo / "workflow/schemas/config.schema.yaml") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(("change", "message"), [
    ({"forecast": {"model": "emulator", "path": "models/my_model.pt"}},
     r"'forecast.path' is only read by forecast.model: torchscript, but the model is emulator"),
    ({"forecast": {"model": "torchscript", "path": "models/my_modle.pt"}},
     r"'forecast.path': 'models/my_modle.pt' does not exist"),
    ({"forecast": {"model": "qg", "callable": "mine:step"}}, r"'forecast.callable' is only read by forecast.model: python"),
    ({"assimilation": {"cold_start": "states/jan1.nc"}}, r"'assimilation.cold_start': 'states/jan1.nc' is neither"),
    ({"observations": {"source": "files", "path": "obs/*.csv"}}, r"'observations.path': 'obs/\*.csv' matches no file"),
])
def test_config_paths_are_checked_at_parse_time(repo, tmp_path, change, message):
    config = merged_config(repo, "config/test.yaml")
    for section, values in change.items():
        config[section] = dict(config.get(section, {}), **values)
    with pytest.raises(ConfigError, match=message):
        check_paths(config, tmp_path)


@pytest.mark.parametrize(("date", "message"), [
    ("02-30T00", r"'figures.map_date': '02-30T00' is not a time of 2002"),
    ("02-29", r"'figures.map_date': '02-29' is not a time of 2002 .*leap years only"),
    ("13-01", r"'figures.map_date': '13-01' does not match"),
    ("07-01T24", r"'figures.map_date': '07-01T24' does not match"),
])
def test_an_impossible_map_date_fails_validation(repo, schema, date, message):
    config = merged_config(repo, "config/test.yaml")
    config["figures"] = {"map_date": date}
    with pytest.raises(ConfigError, match=message):
        check_config(config, schema)
    config["figures"] = {"map_date": "02-28T18"}
    check_config(config, schema)


def _snakemake(work, *args, overlays=()):
    """Targets and options first: ``--configfile`` takes every value after it."""
    return subprocess.run(SNAKEMAKE + [*args, *TINY_CORES, "--configfile", "config/test.yaml", *overlays],
                          cwd=work, capture_output=True, text=True)


@pytest.mark.slow
def test_a_misspelt_forecast_path_stops_the_workflow_before_any_job(repo, tmp_path):
    work = copy_workflow(repo, tmp_path / "wf")
    (work / "typo.yaml").write_text("forecast: {model: torchscript, path: models/my_modle.pt}\n")
    out = _snakemake(work, "-n", overlays=["typo.yaml"])
    assert out.returncode != 0
    assert "config key 'forecast.path': 'models/my_modle.pt' does not exist" in out.stdout + out.stderr


@pytest.mark.slow
def test_one_bad_reference_file_removes_no_prepared_year(repo, tiny_models, tmp_path):
    """Per-year preparation: a file emptied after the years were prepared fails the rerun with one
    line naming it, and both prepared years keep their bytes (update(): restored, not deleted)."""
    work = copy_workflow(repo, tmp_path / "wf")
    (work / "data").mkdir()
    for year in (2001, 2002):
        shutil.copy(tiny_models / f"results/reference/{year}.nc", work / f"data/ref_{year}.nc")
    (work / "files.yaml").write_text(yaml.safe_dump({
        "reference": {"source": "files", "path": "data/ref_*.nc", "variables": VARIABLES},
        "forecast": {"model": "emulator"}}))
    targets = ["results/reference/2001.nc", "results/reference/2002.nc"]
    first = _snakemake(work, *targets, overlays=["files.yaml"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = {t: (work / t).read_bytes() for t in targets}
    assert pd.read_csv(work / "results/quality/2002/reference.csv")["status"].eq("ok").all()
    (work / "data/ref_2002.nc").write_bytes(b"")
    again = _snakemake(work, *targets, overlays=["files.yaml"])
    assert again.returncode != 0
    log = (work / "results/logs/prepare_reference/2002.log").read_text()
    assert "data/ref_2002.nc cannot be read: it is empty (0 bytes)" in log
    assert {t: (work / t).read_bytes() for t in targets} == before


@pytest.mark.slow
def test_a_failed_decode_rerun_keeps_the_finished_archive_year(repo, tiny_models, tiny_stream, tmp_path):
    """--forcerun decode_year with a truncated autoencoder fails with one line naming the
    checkpoint, and the finished archive year is still there, byte for byte."""
    work = copy_workflow(repo, tmp_path / "wf")
    for name in ("models", "reference", "prep", "obs", "ensemble"):
        shutil.copytree(tiny_models / "results" / name, work / "results" / name)
    (work / "results/latent").mkdir(parents=True)
    shutil.copy2(tiny_stream["latent"], work / "results/latent/2002.nc")
    (work / "nocal.yaml").write_text("uncertainty: {calibrate: false, samples: 2}\n")
    target = "results/reanalysis/2002.nc"
    (work / "results/reanalysis").mkdir()
    shutil.copy(tiny_stream["latent"], work / target)  # stands in for the finished year (its bytes are the subject)
    archive = (work / target).read_bytes()
    ae = work / "results/models/autoencoder.pt"
    stat = ae.stat()
    ae.write_bytes(ae.read_bytes()[:1000])
    os.utime(ae, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only the forced rule reruns, as in the report
    again = _snakemake(work, target, "--forcerun", "decode_year", overlays=["nocal.yaml"])
    assert again.returncode != 0
    log = (work / "results/logs/decode_year/2002.log").read_text()
    assert "autoencoder.pt cannot be read (" in log and "truncated" in log
    assert (work / target).read_bytes() == archive
