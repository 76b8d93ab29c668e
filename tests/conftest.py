import functools
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# One torch thread in the tests' own process: the tiny tensors gain nothing from a second (the
# in-process modules take 106-107 s with one thread or two), and the session's tiny pipeline runs
# beside them in the background (start_run below), where two spinning OpenMP
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


def one_torch_thread():
    """Torch on one thread inside the block, as the tests' pipeline jobs run (TINY_CORES): an
    in-process stream then makes the same sums, so the same bits, as rule assimilate_year's."""
    from hloba.runtime import torch_threads

    return torch_threads(1)


@functools.cache
def shared_tiny_world() -> dict:
    """``{2001, 2002: dataset}`` of the tiny world in memory, simulated once per session."""
    from hloba.testing import tiny_world_years

    return tiny_world_years((2001, 2002))


@pytest.fixture(scope="session")
def tiny_world() -> dict:
    """The session's tiny world (tests derive files from it and never modify it)."""
    return shared_tiny_world()


# Snakemake runs in the background (issue #18: CI time). On 2 cores a pipeline's jobs leave part of
# the machine idle, and so do the in-process tests, which run on one thread. So the session's tiny
# pipeline starts at collection, beside the test modules that do not read it; the modules that read
# it follow; and a module with a ``start_in_background(base, items)`` function (the example
# pipelines of tests/test_own_data.py) has it called when those begin, and runs last. Whole modules
# move, so module-scoped fixtures are made once.
_RUNS: dict = {}  # name -> (workflow folder, its Snakemake process)
_LATE: dict = {}  # module -> its selected items, for the modules that start runs of their own
_STARTED: list = []  # True once the late modules' runs are started


def start_run(name: str, work: Path, args: list) -> None:
    """Start Snakemake with ``args`` in ``work``; its output goes to ``work/snakemake.log``."""
    import subprocess

    with open(work / "snakemake.log", "w") as log:  # a file, not a pipe: nothing can block on it
        _RUNS[name] = work, subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=work, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)


def finished_run(name: str) -> Path:
    """Wait for the run ``name``; its workflow folder once it has succeeded."""
    assert name in _RUNS, f"run {name!r} was never started (conftest starts it before its tests)"
    work, proc = _RUNS[name]
    assert proc.wait() == 0, (work / "snakemake.log").read_text()[-6000:]
    return work


def _group(item) -> int:
    """0: runs first; 1: reads the tiny pipeline (the closure of its fixtures: through tiny_models,
    tiny_stream...); 2: starts runs of its own, in the background."""
    if hasattr(item.module, "start_in_background"):
        return 2
    return int("tiny_pipeline" in item.fixturenames)


def _module(item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(session, config, items):
    groups = {}
    for item in items:
        groups[_module(item)] = max(groups.get(_module(item), 0), _group(item))
    items[:] = sorted(items, key=lambda item: groups[_module(item)])  # stable: each group keeps its order
    for item in items:
        if groups[_module(item)] == 2:
            _LATE.setdefault(item.module, []).append(item)
    if 1 in groups.values() and not config.option.collectonly:
        work = copy_workflow(REPO, config._tmp_path_factory.mktemp("tiny_pipeline"))
        start_run("tiny", work, [*TINY_CORES, "--configfile", "config/test.yaml"])


def pytest_runtest_setup(item):
    if _LATE and not _STARTED and _group(item) > 0:
        _STARTED.append(True)
        for module, selected in _LATE.items():
            module.start_in_background(item.config._tmp_path_factory.mktemp(module.__name__), selected)


def pytest_sessionfinish(session, exitstatus):
    """Runs still going when the session ends (interrupted, or their readers deselected) are
    stopped with their jobs."""
    import signal

    for _, proc in _RUNS.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


@pytest.fixture(scope="session")
def tiny_pipeline() -> Path:
    """The whole tiny pipeline (config/test.yaml), run once per session through Snakemake in a
    copy of the workflow, started in the background at collection (above). Tests read its results
    and never write into them."""
    return finished_run("tiny")


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
