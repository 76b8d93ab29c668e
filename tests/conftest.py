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


def tiny_settings(work: Path, **changes):
    """``(StreamConfig, RunSettings)`` of the tiny configuration in ``work``, with ``changes``."""
    from hloba.assim.settings import RunSettings, StreamConfig

    config = merged_config(work, "config/test.yaml")
    return StreamConfig.from_config(config).with_(**changes), RunSettings(progress=False)


def tiny_inputs(work: Path, years=(2001, 2002), tuning: bool = True, oi_covariance=None):
    """The stream inputs of the tiny configuration's results in ``work``."""
    from dataclasses import replace

    from hloba.assim.settings import StreamInputs

    config = merged_config(work, "config/test.yaml")
    inputs = StreamInputs.from_results(work / "results", config, years, tuning=tuning)
    return replace(inputs, oi_covariance=str(oi_covariance)) if oi_covariance else inputs


@pytest.fixture(scope="session")
def tiny_stream(tiny_models) -> dict:
    """The tiny configuration's 2002 stream (hloba, tuned), run in-process once per session."""
    from hloba.assim.year import assimilate_year

    r = tiny_models / "results"
    paths = {"latent": r / "latent/2002.nc", "feedback": r / "feedback/2002.parquet",
             "diagnostics": r / "diagnostics/2002.csv"}
    cfg, run = tiny_settings(tiny_models)
    result = assimilate_year(2002, tiny_inputs(tiny_models), cfg, *paths.values(), run,
                             resume_dir=r / "checkpoints/assimilate")
    return {"result": result, **paths}
