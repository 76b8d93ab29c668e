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


# Snakemake options of the tests' pipeline runs: two jobs at once with one thread each. The tiny
# world's tensors are too small for a second thread to pay (the tiny pipeline's jobs take the same
# time with one thread as with two), so two parallel jobs halve the wall time where the plan allows.
TINY_CORES = ["--cores", "2", "--max-threads", "1"]

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


def one_torch_thread():
    """Torch on one thread inside the block, as the tests' pipeline jobs run (TINY_CORES): an
    in-process stream then makes the same sums, so the same bits, as rule assimilate_year's."""
    from hloba.runtime import torch_threads

    return torch_threads(1)


@pytest.fixture(scope="session")
def tiny_world() -> dict:
    """``{2001, 2002: dataset}`` of the tiny world in memory, simulated once per session (tests
    derive files from it and never modify it)."""
    from hloba.testing import tiny_world_years

    return tiny_world_years((2001, 2002))


@pytest.fixture(scope="session")
def tiny_pipeline(repo, tmp_path_factory) -> Path:
    """The whole tiny pipeline (config/test.yaml), run once per session through Snakemake in a
    copy of the workflow. Tests read its results and never write into them."""
    import subprocess

    work = copy_workflow(repo, tmp_path_factory.mktemp("tiny_pipeline"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", *TINY_CORES, "--configfile", "config/test.yaml"],
                          cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


@pytest.fixture(scope="session")
def tiny_models(tiny_pipeline) -> Path:
    """The tiny configuration's trained models, calibration, tuning and observations (the session's
    tiny pipeline)."""
    return tiny_pipeline


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
    """The tiny configuration's 2002 stream (hloba, tuned): the session pipeline's outputs."""
    r = tiny_models / "results"
    return {"latent": r / "latent/2002.nc", "feedback": r / "feedback/2002.parquet",
            "diagnostics": r / "diagnostics/2002.csv"}


@pytest.fixture(scope="session")
def tiny_stream_2001(tiny_models, tmp_path_factory) -> dict:
    """The tiny configuration's 2001 stream (hloba, tuned; the year before the session pipeline's
    reanalysis year), run by hand (``hloba assimilate``, in-process) with one thread as the
    pipeline's jobs run (TINY_CORES): ``tests/test_faults.py`` checks that it equals rule
    assimilate_year's 2001 to the bit. ``out`` is the folder the command wrote into."""
    from hloba.cli import main

    out = tmp_path_factory.mktemp("stream_2001")
    with one_torch_thread():
        assert main(["assimilate", "--config", str(tiny_models / "config.yaml"), str(tiny_models / "config/test.yaml"),
                     "--year", "2001", "--results", str(tiny_models / "results"), "--out", str(out)]) == 0
    return {"latent": out / "latent/2001.nc", "feedback": out / "feedback/2001.parquet",
            "diagnostics": out / "diagnostics/2001.csv", "out": out}
