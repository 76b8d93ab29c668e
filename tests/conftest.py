import os
import sys
from pathlib import Path

import pytest

# OpenMP threads that wait for work sleep instead of spinning, in this process and every process it
# starts (set before torch loads its OpenMP runtime). A job with two threads (the SLURM test's
# train_autoencoder, whose threads the profile sets) beside the other worker's tests and jobs spun
# its idle thread: 133 s of CPU time and 157 s of wall time for training that takes 7 s alone, taken
# from everything else in CI. The same training beside four busy processes: 242 s of wall time and 153
# s of user time spinning, 40 s and 16 s sleeping, the same weights (validation loss 0.02221 both).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numpy's OpenBLAS on one thread in the tests' own processes, as torch (below), set before numpy loads
# (it sizes its pool then). Its second thread spun after each product, beside the other worker: four
# modules and the tiny pipeline took 289 s of user time with one thread against 325 with two (191 s
# of wall time against 220). Pipeline jobs are unaffected: Snakemake sets it to each job's threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hloba.testing import copy_workflow  # noqa: E402 (the test modules import it from here)
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


def once_per_session(config, name: str, make) -> Path:
    """The folder ``name`` shared by every process of the session, filled by ``make(folder)`` once:
    under pytest-xdist the first worker to ask makes it while the others wait, then all read it."""
    import fcntl
    import shutil

    folder = _shared_tmp(config) / name
    done = folder.with_name(f"{name}.done")  # beside the folder: tests may list what is in it
    with open(folder.with_name(f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_world(request) -> dict:
    """``{2001, 2002: dataset}`` of the tiny world in memory, made once per session (tests derive
    files from it and never modify it): the session's tiny pipeline's reference years when it runs
    (its rule make_world writes them in its first seconds), else simulated here; pickled, so that
    every worker has the very objects."""
    import pickle

    from hloba.testing import tiny_world_years

    def simulate(folder):
        world = _pipeline_world(request.config, (2001, 2002)) or tiny_world_years((2001, 2002))
        (folder / "world.pickle").write_bytes(pickle.dumps(world))

    return pickle.loads((once_per_session(request.config, "tiny_world", simulate) / "world.pickle").read_bytes())


def _pipeline_world(config, years, seed: int = 3) -> dict | None:
    """The years of :func:`hloba.testing.tiny_world_years` as the session's tiny pipeline wrote them
    (config/test.yaml's world), loaded; None when this session runs no tiny pipeline, when it stops
    before writing them, or when its world is not that one (config/test.yaml changed)."""
    import time
    from dataclasses import replace

    import xarray as xr

    from hloba.testing import tiny_world_config
    from hloba.world.simulate import WorldConfig

    if not getattr(config, "_hloba_tiny_pipeline", False):
        return None
    work = _shared_tmp(config) / "tiny_pipeline"
    paths = [work / f"results/reference/{year}.nc" for year in years]
    deadline = time.monotonic() + 300
    while not all(p.exists() for p in paths):  # written atomically: complete once there
        if (work / _RC).exists() or time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    pipeline = WorldConfig.from_dict(merged_config(work, "config/test.yaml")["world"])
    world = {year: xr.load_dataset(p).drop_encoding() for year, p in zip(years, paths)}  # as simulated
    same = replace(pipeline, max_chains=1) == tiny_world_config(seed=seed)
    return world if same and all(ds.attrs["world_chain"] == 0 for ds in world.values()) else None


@pytest.fixture(scope="session")
def stream_factory(request) -> tuple:
    """``(StreamInputs, {name: path})`` of :func:`hloba.testing.tiny_stream_inputs` (a tiny-world
    year, its observations, untrained networks and calibration), built once per session (17 s) for
    every module that runs in-process streams; pickled, so that every worker has the very objects.
    Tests read its files and never write into its folder."""
    import pickle

    from hloba.testing import tiny_stream_inputs

    def build(folder):
        (folder / "inputs.pickle").write_bytes(pickle.dumps(tiny_stream_inputs(folder)))

    return pickle.loads((once_per_session(request.config, "stream_factory", build) / "inputs.pickle").read_bytes())


def _needs_tiny_pipeline(item) -> bool:
    return "tiny_pipeline" in item.fixturenames  # the closure: through tiny_models, tiny_stream...


def _module(item) -> str:
    return item.nodeid.split("::", 1)[0]


def _xdist_worker() -> str | None:
    """The pytest-xdist worker this process is (``gw0``, ``gw1``...), None when not a worker."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def _shared_tmp(config) -> Path:
    """The folder every process of the session sees: the session's base temporary folder, or
    under pytest-xdist the controller's, which holds each worker's."""
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if _xdist_worker() else base


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(session, config, items):
    """The session's tiny pipeline starts now, in the background, and the test modules that read it
    run after the others: its jobs and the other tests share the 2 cores instead of taking turns
    (issue #18: CI time). Whole modules move, so module-scoped fixtures are made once. Under
    pytest-xdist (``-n 2 --dist loadfile``, pyproject's addopts) every worker collects and sorts
    alike, and only the first (``gw0``) starts the pipeline, for all of them."""
    waiting = {_module(item) for item in items if _needs_tiny_pipeline(item)}
    slow = {_module(item) for item in items if item.get_closest_marker("slow")}
    # stable: the rest keep their order. Within each part the modules with end-to-end runs (marked
    # slow) go first, so that the two workers end together, not one with a long module left.
    items[:] = sorted(items, key=lambda item: (_module(item) in waiting, _module(item) not in slow))
    config._hloba_tiny_pipeline = bool(waiting) and not config.option.collectonly  # every worker alike
    if config._hloba_tiny_pipeline and _xdist_worker() in (None, "gw0"):
        _start_tiny_pipeline(_shared_tmp(config) / "tiny_pipeline")


# The background pipeline's files beside its workflow copy: its Snakemake log, the process group
# to stop, and its exit status, written (then renamed, so never read half-written) when it ends.
_LOG, _PID, _RC = "pipeline.log", "pipeline.pid", "pipeline.rc"


def _start_tiny_pipeline(work: Path) -> None:
    import subprocess

    copy_workflow(REPO, work)
    command = [sys.executable, "-m", "snakemake", *TINY_CORES, "--configfile", "config/test.yaml"]
    runner = f'"$@" > {_LOG} 2>&1; echo $? > {_RC}.part && mv {_RC}.part {_RC}'
    proc = subprocess.Popen(["sh", "-c", runner, "sh", *command], cwd=work, start_new_session=True)
    (work / _PID).write_text(str(proc.pid))


def pytest_sessionfinish(session, exitstatus):
    """A pipeline still running when the session ends (interrupted, or its readers deselected) is
    stopped with its jobs: by the process that started it, or under pytest-xdist by the controller
    once every worker has finished (a worker that ends early must not stop it for the others)."""
    import signal

    if _xdist_worker():
        return
    pid_file = _shared_tmp(session.config) / "tiny_pipeline" / _PID
    if pid_file.exists() and not (pid_file.parent / _RC).exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def tiny_pipeline(request) -> Path:
    """The whole tiny pipeline (config/test.yaml), run once per session through Snakemake in a
    copy of the workflow, started in the background at collection (above). Tests read its results
    and never write into them."""
    import time

    work = _shared_tmp(request.config) / "tiny_pipeline"
    assert (work / _PID).exists(), "the tiny pipeline starts at collection (pytest_collection_modifyitems)"
    pid, deadline = int((work / _PID).read_text()), time.monotonic() + 3600
    while not (work / _RC).exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pytest.fail(f"the tiny pipeline in {work} stopped without an exit status (killed?)")
        if time.monotonic() > deadline:
            pytest.fail(f"the tiny pipeline in {work} has not finished in an hour: see {work / _LOG}")
        time.sleep(0.5)
    rc = int((work / _RC).read_text())
    assert rc == 0, (work / _LOG).read_text()[-6000:]
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
def tiny_stream_2001(tiny_models, request) -> dict:
    """The tiny configuration's 2001 stream (hloba, tuned; the year before the session pipeline's
    reanalysis year), run by hand (``hloba assimilate``, in-process) with one thread as the
    pipeline's jobs run (TINY_CORES): ``tests/test_faults.py`` checks that it equals rule
    assimilate_year's 2001 to the bit. ``out`` is the folder the command wrote into."""
    from hloba.cli import main

    def assimilate(out):
        with one_torch_thread():
            assert main(["assimilate", "--config", str(tiny_models / "config.yaml"),
                         str(tiny_models / "config/test.yaml"), "--year", "2001", "--results",
                         str(tiny_models / "results"), "--out", str(out)]) == 0

    out = once_per_session(request.config, "stream_2001", assimilate)
    return {"latent": out / "latent/2001.nc", "feedback": out / "feedback/2001.parquet",
            "diagnostics": out / "diagnostics/2001.csv", "out": out}
