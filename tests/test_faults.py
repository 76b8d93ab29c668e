"""Faults at the workflow level: SIGKILLed assimilation and decode jobs, and their reruns."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import TINY_CORES, copy_workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
INPUTS = ("models", "ensemble", "obs", "reference", "prep")


@pytest.fixture()
def work(repo, tiny_models, tmp_path):
    """The workflow with the tiny configuration's trained models and observations in place."""
    work = copy_workflow(repo, tmp_path / "wf")
    for name in INPUTS:
        shutil.copytree(tiny_models / "results" / name, work / "results" / name)
    return work


def start(work, target):
    return subprocess.Popen(SNAKEMAKE + [target, *TINY_CORES, "--configfile", "config/test.yaml"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def kill_job_when(proc, work, script, condition, timeout=300):
    """SIGKILL the job's process (the rule's script, as a dead node would) once ``condition()``;
    Snakemake itself sees the job fail and exits. Only this workflow copy's job is matched (its
    script lives under ``work/.snakemake/scripts``), never another run on the same machine."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "the job never reached the point to kill it"
        time.sleep(0.05)
    pattern = re.escape(f"{work}/.snakemake/scripts/tmp") + rf".*\.{script}\.py"
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert pids, "no job process found"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    assert proc.wait(timeout=120) != 0


def rerun(work, target):
    out = subprocess.run(SNAKEMAKE + [target, *TINY_CORES, "--configfile", "config/test.yaml"], cwd=work,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_killed_assimilation_resumes_and_equals_an_uninterrupted_run(work, tiny_stream):
    checkpoint = work / "results/checkpoints/assimilate/hloba-2002.pt"
    proc = start(work, "results/latent/2002.nc")
    kill_job_when(proc, work, "assimilate_year", checkpoint.exists)
    assert not (work / "results/latent/2002.nc").exists()
    assert not (work / "results/feedback/2002.parquet").exists()
    rerun(work, "results/latent/2002.nc")
    log = (work / "results/logs/assimilate_year/2002.log").read_text()
    assert "resuming from" in log
    assert not checkpoint.exists()
    with xr.open_dataset(work / "results/latent/2002.nc") as a, xr.open_dataset(tiny_stream["latent"]) as b:
        for name in ("z_a", "z_b", "sigma_a2"):
            np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.slow
def test_killed_decode_leaves_no_file_and_the_rerun_completes(work, tiny_stream):
    for name in ("latent", "feedback"):
        (work / "results" / name).mkdir(parents=True)
        shutil.copy2(tiny_stream[name], work / "results" / name / "2002.nc" if name == "latent"
                     else work / "results" / name / "2002.parquet")
    log = work / "results/logs/decode_year/2002.log"
    proc = start(work, "results/reanalysis/2002.nc")
    kill_job_when(proc, work, "decode_year", lambda: log.exists() and "decoding" in log.read_text())
    final = work / "results/reanalysis/2002.nc"
    assert not final.exists()
    rerun(work, "results/reanalysis/2002.nc")
    assert not list(final.parent.glob(".*.part"))
    with xr.open_dataset(final) as ds:
        assert ds.sizes["time"] == 1460 and np.isfinite(ds["temperature"].values).all()
        assert (ds["temperature_std"].values > 0).mean() > 0.99


@pytest.mark.slow
def test_two_years_in_parallel_equal_one_by_one(repo, tiny_models, tiny_stream, tiny_stream_2001, tmp_path):
    """Streams are independent: two years' jobs run at once (1 thread each) give each year's
    stream as run alone (2001: by hand, ``hloba assimilate`` in-process, so the command writes what
    the rule writes; 2002: the session pipeline's; both 1 thread)."""
    work = copy_workflow(repo, tmp_path / "parallel")
    for name in INPUTS:
        shutil.copytree(tiny_models / "results" / name, work / "results" / name)
    (work / "years.yaml").write_text("years: {reanalysis: [2001, 2002], training: [2001], validation: [2002], "
                                     "calibration: [2002]}\n")
    out = subprocess.run(SNAKEMAKE + ["results/latent/2001.nc", "results/latent/2002.nc", "--cores", "2",
                                      "--set-threads", "assimilate_year=1", "--configfile", "config/test.yaml",
                                      "years.yaml"], cwd=work, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 of 2 steps" in out.stdout + out.stderr
    alone = {2001: tiny_stream_2001["latent"], 2002: tiny_stream["latent"]}
    for year in (2001, 2002):
        with xr.open_dataset(work / f"results/latent/{year}.nc") as a, xr.open_dataset(alone[year]) as b:
            np.testing.assert_array_equal(a["z_a"].values, b["z_a"].values)
            np.testing.assert_array_equal(a["sigma_a2"].values, b["sigma_a2"].values)
            assert a.attrs["config_sha256"] == b.attrs["config_sha256"]
    pd.testing.assert_frame_equal(pd.read_parquet(work / "results/feedback/2001.parquet"),
                                  pd.read_parquet(tiny_stream_2001["feedback"]))
