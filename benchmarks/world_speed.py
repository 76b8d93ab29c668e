"""Simulated years per minute of the built-in world at the default resolution.

    python benchmarks/world_speed.py [--days 60] [--threads 2] [--dt-minutes 60] [--precision float32] [--chains 2]
                                     [--transforms torch pocketfft]

Times a continuous run that also builds the 6-hourly atmospheric fields (what make_world
does, minus the file write), and the raw model step for 1 and 8 members in the same run, so
the batch gain is a ratio measured on one machine at one time. The step and the precision default
to config.yaml's ``world.qg.dt_minutes`` and ``world.precision``; ``--dt-minutes 30 --precision
float64 --days 20`` times the former default (an index of a host's speed). ``--chains N`` also times N
independent trajectories in N one-thread processes at once (the world's chains, rules
make_world_{k}) against one such process alone. MKL's FFT branch is make_world's portable one
(``hloba.runtime.portable_fft``); ``MKL_CBWR=AUTO python benchmarks/world_speed.py`` times the
host's own, faster branch. ``--transforms torch pocketfft`` times the single trajectory with each of
``world.transforms`` in the same run (numpy's pocketfft: the same bits on every x86-64 host); the
chains run with the first listed.
Goal from the foundation issue: 10 simulated years of 6-hourly output in under 2 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(REPO))

from hloba.runtime import portable_fft, reuse_freed_memory  # noqa: E402
from hloba.config import load_config  # noqa: E402
from hloba.world.qg import DAYS_PER_YEAR, TRANSFORMS, QGModel, QGParams, random_initial_state  # noqa: E402
from hloba.world.simulate import PRECISIONS, WorldConfig, year_fields  # noqa: E402

FIELDS_CHUNK = 124  # make_world's batch of outputs (year_fields' default)


def time_run(model: QGModel, state: torch.Tensor, days: float, outputs_per_day: int = 4) -> float:
    """Seconds to run ``days`` and build the fields of every output as make_world does: the spectral
    states kept and turned into fields 124 at a time (:func:`hloba.world.simulate.year_fields`)."""
    steps_per_output = round(86400.0 / outputs_per_day / model.params.dt_seconds)
    sh = model.to_spectral(state)
    n_outputs = int(days * outputs_per_day)
    doys = np.arange(n_outputs) / outputs_per_day
    kept: list[torch.Tensor] = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(n_outputs):
            kept.append(sh)
            for _ in range(steps_per_output):
                sh = model.step_spectral(sh, doys[i])
            if len(kept) == FIELDS_CHUNK or i + 1 == n_outputs:
                for member in range(sh.shape[0]):
                    year_fields(model, [s[member:member + 1] for s in kept], doys[i + 1 - len(kept):i + 1], FIELDS_CHUNK)
                kept = []
    return time.perf_counter() - start


def one_thread_run(dt_minutes: float, precision: str, days: float, seed: int, transforms: str, barrier=None,
                   out=None) -> float:
    """Seconds of a one-thread single trajectory (a make_world_{k} job's stepping); with a
    ``barrier`` the timed run starts when every process is ready, and the seconds go to ``out``."""
    torch.set_num_threads(1)
    reuse_freed_memory()
    dtype = PRECISIONS[precision]
    params = QGParams(dt_minutes=dt_minutes)
    model = QGModel(params, dtype=dtype, transforms=transforms)
    state = random_initial_state(params, 1, torch.Generator().manual_seed(seed), dtype=dtype)
    state = model(state, 0.0, round(10 * 1440 / params.dt_minutes))
    time_run(model, state, 1.0)  # warm-up
    if barrier is not None:
        barrier.wait()
    seconds = time_run(model, state, days)
    if out is not None:
        out.put(seconds)
    return seconds


def chains_speed(n: int, dt_minutes: float, precision: str, days: float, transforms: str) -> tuple[float, float]:
    """Simulated years per minute of one one-thread process alone, and of ``n`` at once (all)."""
    import multiprocessing

    alone = one_thread_run(dt_minutes, precision, days, 0, transforms)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(n), context.Queue()
    workers = [context.Process(target=one_thread_run, args=(dt_minutes, precision, days, k, transforms, barrier, out))
               for k in range(n)]
    for worker in workers:
        worker.start()
    together = max(out.get() for _ in workers)  # the processes step at the same time
    for worker in workers:
        worker.join()
    rate = days / DAYS_PER_YEAR * 60.0
    return rate / alone, n * rate / together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dt-minutes", type=float, help="time step (default: config.yaml's world.qg.dt_minutes)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help="default: config.yaml's world.precision")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (the pipeline's rules set hloba.runtime.reuse_freed_memory)")
    parser.add_argument("--transforms", nargs="+", choices=TRANSFORMS,
                        help="time the single trajectory with each (default: config.yaml's world.transforms)")
    parser.add_argument("--chains", type=int, default=0,
                        help="also time this many one-thread trajectories in parallel processes")
    args = parser.parse_args()
    branch = portable_fft()  # rule make_world's FFT branch (MKL_CBWR=AUTO in the environment: the host's own)
    torch.set_num_threads(args.threads)
    reused = False if args.system_malloc else reuse_freed_memory()
    world = load_config(REPO / "config.yaml")["world"]
    if args.dt_minutes is None:
        args.dt_minutes = world["qg"]["dt_minutes"]
    if args.precision is None:
        args.precision = world.get("precision", "float64")
    transforms = args.transforms or [world.get("transforms", WorldConfig.transforms)]
    dtype = PRECISIONS[args.precision]
    params = QGParams(dt_minutes=args.dt_minutes)
    model = QGModel(params, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    # some developed turbulence: 30 days
    state = model(random_initial_state(params, 8, gen, dtype=dtype), 0.0, round(30 * 1440 / params.dt_minutes))
    models = {name: QGModel(params, dtype=dtype, transforms=name) for name in transforms}
    per_day = {}
    for name, timed in models.items():
        time_run(timed, state[:1], 2.0)  # warm-up
        per_day[name] = time_run(timed, state[:1], args.days) / args.days
    if len(transforms) > 1:
        print("single trajectory, ms per simulated day: " + ", ".join(
            f"{name} transforms {s * 1000:.1f} ({s / per_day[transforms[0]]:.2f}x)" for name, s in per_day.items()))
    seconds = per_day[transforms[0]] * args.days
    years_per_minute = args.days / DAYS_PER_YEAR / (seconds / 60.0)
    batch_seconds = time_run(models[transforms[0]], state, args.days / 4)
    per_member = batch_seconds / 8 / (args.days / 4)
    print(f"grid {params.nx}x{params.ny}, dt {params.dt_minutes:g} min, {args.precision}, {args.threads} threads, "
          f"{args.days:g} days, freed memory reused: {reused}, MKL branch {branch}, {transforms[0]} transforms")
    print(f"single trajectory: {seconds / args.days * 1000:.1f} ms per simulated day, "
          f"{years_per_minute:.2f} simulated years per minute")
    print(f"10 simulated years would take {10 / years_per_minute:.1f} min (goal: < 2 min)")
    print(f"8 members in one batch: {per_member * 1000:.1f} ms per member-day, "
          f"{(seconds / args.days) / per_member:.2f}x the single-trajectory throughput")
    if args.chains:
        alone, together = chains_speed(args.chains, args.dt_minutes, args.precision, args.days, transforms[0])
        print(f"{transforms[0]} transforms, one thread, one trajectory: {alone:.2f} simulated years per minute; "
              f"{args.chains} at once (one process each, the world's chains): {together:.2f} in all "
              f"({together / alone:.2f}x)")


if __name__ == "__main__":
    main()
