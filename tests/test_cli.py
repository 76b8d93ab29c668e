"""The hloba console script."""

import subprocess
import sys

import xarray as xr

from hloba.cli import main


def test_help_lists_the_stages(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    for cmd in ("make-world", "compute-normalization", "simulate-observations", "train-autoencoder", "train-o2lnet", "info"):
        assert cmd in out


def test_make_world_and_normalization_by_hand(tmp_path):
    rc = main(["make-world", "--years", "2001", "--out-dir", str(tmp_path), "--spinup-days", "5",
               "--set", "nx=16", "--set", "ny=16", "--set", "dt_minutes=120"])
    assert rc == 0
    with xr.open_dataset(tmp_path / "2001.nc") as ds:
        assert ds.sizes["latitude"] == 16
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
