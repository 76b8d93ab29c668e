"""Speed and stability of the built-in world at other time steps and precisions.

    python benchmarks/world_timestep.py [--dt-minutes 30 60 90] [--dtype float64 float32]
                                        [--days 400] [--threads 1]

For each time step and precision: a run from broadband noise (as make_world's spin-up) of
``--days`` days, its time per simulated day and simulated years per minute, the monthly domain
energy (a climate that drifts or a step that is too long shows here), and the day it blew up, if
it did. The default world steps 30 minutes in float64; a longer step or float32 is a candidate
for a faster world only if it stays stable through several winters (strongest shear mid-January)
and keeps the climate of scripts/check_world_climate.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.runtime import reuse_freed_memory  # noqa: E402
from hloba.world.qg import DAYS_PER_YEAR, QGModel, QGParams, random_initial_state  # noqa: E402
from hloba.world.simulate import PRECISIONS  # noqa: E402


def run(dt_minutes: float, dtype: torch.dtype, days: int, seed: int = 0) -> dict:
    params = replace(QGParams(), dt_minutes=dt_minutes)
    model = QGModel(params, dtype=dtype)
    steps_per_day = round(1440.0 / dt_minutes)
    sh = model.to_spectral(random_initial_state(params, 1, torch.Generator().manual_seed(seed)).to(dtype))
    sh = sh * model.dealias
    energy, blew_up = [], None
    start = time.perf_counter()
    with torch.no_grad():
        for day in range(days):
            for i in range(steps_per_day):
                sh = model.step_spectral(sh, torch.tensor(day + i / steps_per_day, dtype=torch.float64))
            if day % 30 == 29:
                energy.append(float(model.energy(model.to_grid(sh))))
                if not math.isfinite(energy[-1]):
                    blew_up = day
                    break
    seconds = time.perf_counter() - start
    per_day = seconds / (day + 1)
    return {"ms_per_day": 1000 * per_day, "years_per_minute": 60.0 / (per_day * DAYS_PER_YEAR),
            "energy": energy, "blew_up": blew_up}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dt-minutes", type=float, nargs="+", default=[30.0, 60.0])
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=sorted(PRECISIONS))
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (the pipeline's rules set hloba.runtime.reuse_freed_memory)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reused = False if args.system_malloc else reuse_freed_memory()
    print(f"{args.days} days from noise, {args.threads} thread(s), freed memory reused: {reused}; "
          "energy (m2 s-2) every 30 days")
    for dt in args.dt_minutes:
        for name in args.dtype:
            r = run(dt, PRECISIONS[name], args.days)
            state = f"blew up on day {r['blew_up']}" if r["blew_up"] is not None else "stable"
            print(f"dt {dt:g} min {name}: {r['ms_per_day']:.1f} ms per simulated day, "
                  f"{r['years_per_minute']:.2f} simulated years per minute, {state}; energy "
                  + " ".join(f"{e:.0f}" for e in r["energy"]), flush=True)


if __name__ == "__main__":
    main()
