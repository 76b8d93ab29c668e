import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "config", "envs", "profiles", "hloba")


def copy_workflow(repo: Path, dest: Path) -> Path:
    """A copy of the workflow (no results) in ``dest``."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def merged_config(work: Path, *overlays: str) -> dict:
    """config.yaml updated recursively by the overlays, as Snakemake merges ``--configfile``."""
    from hloba.config import load_config

    return load_config(work / "config.yaml", *(work / o for o in overlays))


@pytest.fixture(scope="session")
def tiny_models(repo, tmp_path_factory) -> Path:
    """The tiny configuration's trained models, calibration and observations (one run per session)."""
    import subprocess

    work = copy_workflow(repo, tmp_path_factory.mktemp("tiny_models"))
    targets = ["results/ensemble/stream_tuning.nc", "results/obs/2001.parquet", "results/obs/2002.parquet",
               "results/reference/2002.nc"]
    proc = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--configfile",
                           "config/test.yaml"], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


@pytest.fixture(scope="session")
def tiny_stream(tiny_models) -> dict:
    """The tiny configuration's 2002 stream (hloba, tuned), run in-process once per session."""
    from hloba.assim.stream import assimilate_year

    config = merged_config(tiny_models, "config/test.yaml")
    r = tiny_models / "results"
    paths = {"latent": r / "latent/2002.nc", "feedback": r / "feedback/2002.parquet",
             "diagnostics": r / "diagnostics/2002.csv"}
    result = assimilate_year(
        2002, r / "models/autoencoder.pt", r / "models/o2lnet.pt", r / "ensemble/calibration.nc",
        [r / "obs/2001.parquet", r / "obs/2002.parquet"], *paths.values(), assimilation=config["assimilation"],
        forecast=config["forecast"], interval_hours=6, world_qg=config["world"]["qg"],
        tuning=r / "ensemble/stream_tuning.nc", resume_dir=r / "checkpoints/assimilate", progress=False,
    )
    return {"result": result, **paths}
