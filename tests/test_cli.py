"""The hloba console script."""

import subprocess
import sys

import xarray as xr

from conftest import keep_mkl_branch
from hloba.assim.stream import DIAGNOSTICS
from hloba.cli import main
from hloba.latent import open_latent


def test_help_lists_the_stages(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    for cmd in ("make-world", "compute-normalization", "simulate-observations", "train-autoencoder", "train-o2lnet",
                "assimilate", "decode", "evaluate", "info"):
        assert cmd in out


def test_make_world_and_normalization_by_hand(tmp_path, monkeypatch):
    keep_mkl_branch(monkeypatch)  # make-world sets it in this (the tests') process
    rc = main(["make-world", "--years", "2001", "--out-dir", str(tmp_path), "--spinup-days", "5",
               "--set", "nx=16", "--set", "ny=16", "--set", "dt_minutes=360", "--chain", "1"])
    assert rc == 0
    with xr.open_dataset(tmp_path / "2001.nc") as ds:
        assert ds.sizes["latitude"] == 16
        assert ds.attrs["world_chain"] == 1
    rc = main(["compute-normalization", str(tmp_path / "2001.nc"), "-o", str(tmp_path / "norm.nc")])
    assert rc == 0
    assert (tmp_path / "norm.nc").exists()


def test_bad_parameter_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hloba.cli", "make-world", "--years", "2001", "--out-dir", str(tmp_path), "--set", "nz=3"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "nz" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_subpackage_is_a_regular_package(repo):
    # setuptools' find_packages skips folders without __init__.py: a non-editable install would lose them
    for folder in (repo / "hloba").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), folder


def test_one_year_by_hand_assimilate_decode_evaluate_as_the_rules_do(tiny_models, tiny_stream_2001, tmp_path):
    """``hloba assimilate|decode|evaluate`` read the pipeline's results and write what the rules
    write. The by-hand stream is the session's 2001 stream (``conftest.tiny_stream_2001``, written
    by ``hloba assimilate``); ``tests/test_faults.py`` checks it equals rule assimilate_year's 2001
    to the bit. Here: its outputs (``assimilate_year``'s files for a whole year), and decode and
    evaluate by hand on it."""
    import shutil

    import pandas as pd

    by_hand = tiny_stream_2001["out"]
    assert sorted(p.relative_to(by_hand).as_posix() for p in by_hand.rglob("*") if p.is_file()) == [
        "diagnostics/2001.csv", "feedback/2001.parquet", "latent/2001.nc"]  # no checkpoint left behind
    ds = open_latent(tiny_stream_2001["latent"], need=("z_a", "sigma_a2_update", "z_a_spinup", "rotation"))
    spinup = 10 * 4  # config/test.yaml: assimilation.spinup_days
    assert ds.sizes["time"] == 365 * 4 and ds.attrs["method"] == "hloba"
    assert ds.sizes["spinup_time"] == ds.attrs["spinup_cycles"] == spinup
    diag = pd.read_csv(tiny_stream_2001["diagnostics"])
    assert list(diag.columns) == ["time", "spinup", *DIAGNOSTICS] and len(diag) == 365 * 4 + spinup
    assert diag["spinup"].sum() == spinup and (diag["n_used"] + diag["n_rejected"] <= diag["n_obs"]).all()
    # decode and evaluate read the by-hand stream from --results: point them at a copy of results
    # that holds it
    results = tmp_path / "results"
    shutil.copytree(tiny_models / "results", results, ignore=shutil.ignore_patterns("checkpoints", "reanalysis"))
    for name in ("latent", "feedback"):
        shutil.copy(tiny_stream_2001[name], results / name / tiny_stream_2001[name].name)
    stage = ["--config", str(tiny_models / "config.yaml"), str(tiny_models / "config/test.yaml"), "--year", "2001",
             "--results", str(results), "--out", str(results)]
    assert main(["decode", *stage]) == 0
    with xr.open_dataset(results / "reanalysis/2001.nc") as ds:
        assert ds.sizes["time"] == 365 * 4 and "temperature_std" in ds
        assert ds.attrs["uncertainty_model"] == "network"  # hloba: calibrated std, as rule decode_year
    assert main(["evaluate", *stage]) == 0
    scores = pd.read_csv(results / "evaluation/2001/scores.csv")
    assert set(scores["channel"]) >= {"temperature", "geopotential_250"} and (scores["rmse"] > 0).all()
    assert (results / "evaluation/2001/forecast_skill.csv").exists()


def test_a_stage_without_its_inputs_names_them(tmp_path, repo, capsys):
    rc = main(["assimilate", "--config", str(repo / "config.yaml"), str(repo / "config/test.yaml"), "--year",
               "2002", "--results", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "autoencoder.pt" in err and "not found: run the pipeline up to this stage first" in err
    assert not (tmp_path / "latent").exists()
