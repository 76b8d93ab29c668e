import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# One torch thread in the tests' own process: the tiny tensors gain nothing from a second (the
# in-process modules take 106-107 s with one thread or two), and the session's tiny pipeline runs
# beside them in the background (pytest_collection_modifyitems below), where two spinning OpenMP
# threads made the same modules ten times slower.
torch.set_num_threads(1)


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


def keep_mkl_branch(monkeypatch) -> None:
    """Give ``MKL_CBWR`` back as it was after the test, unset inside it. The world's entry points set
    it in their process (``hloba.runtime.portable_fft``); called in the tests' own process, they
    would hand it to every pipeline the tests start later, whose results would then part from the
    in-process runs they are compared with bit for bit (MKL read its branch here long before)."""
    monkeypatch.setenv("MKL_CBWR", "AUTO")  # records the value to restore
    monkeypatch.delenv("MKL_CBWR")


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


def _needs_tiny_pipeline(item) -> bool:
    return "tiny_pipeline" in item.fixturenames  # the closure: through tiny_models, tiny_stream...


def _module(item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(session, config, items):
    """The session's tiny pipeline starts now, in the background, and the test modules that read it
    run after the others: its jobs and the other tests share the 2 cores instead of taking turns
    (issue #18: CI time). Whole modules move, so module-scoped fixtures are made once."""
    waiting = {_module(item) for item in items if _needs_tiny_pipeline(item)}
    items[:] = sorted(items, key=lambda item: _module(item) in waiting)  # stable: the rest keep their order
    if waiting and not config.option.collectonly:
        _start_tiny_pipeline(config)


_TINY = {}  # the background pipeline: "work" (its folder) and "proc" (its Snakemake)


def _start_tiny_pipeline(config) -> None:
    import subprocess

    work = copy_workflow(REPO, config._tmp_path_factory.mktemp("tiny_pipeline"))
    with open(work / "pipeline.log", "w") as log:  # a file, not a pipe: nothing can block on it
        _TINY["proc"] = subprocess.Popen([sys.executable, "-m", "snakemake", *TINY_CORES, "--configfile",
                                          "config/test.yaml"], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
    _TINY["work"] = work


def pytest_sessionfinish(session, exitstatus):
    """A pipeline still running when the session ends (interrupted, or its readers deselected) is
    stopped with its jobs."""
    import signal

    proc = _TINY.get("proc")
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


@pytest.fixture(scope="session")
def tiny_pipeline() -> Path:
    """The whole tiny pipeline (config/test.yaml), run once per session through Snakemake in a
    copy of the workflow, started in the background at collection (above). Tests read its results
    and never write into them."""
    assert "proc" in _TINY, "the tiny pipeline starts at collection (pytest_collection_modifyitems)"
    work, proc = _TINY["work"], _TINY["proc"]
    assert proc.wait() == 0, (work / "pipeline.log").read_text()[-6000:]
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
