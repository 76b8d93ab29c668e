"""Would a leapfrog time scheme make the built-in world faster at the same climate? (issue #18)

    python scripts/leapfrog_experiment.py [--years 2] [--dt-minutes 20 30] [--spinup-years 1]

The world steps RK4 at 60 minutes: four tendencies a step, 96 a simulated day, at about 2/3 of
RK4's stability limit (90 minutes blows up). Leapfrog takes one tendency a step and is stable for
advection up to a Courant number of 1 (RK4: 2.83 for four tendencies, 0.71 a tendency), so at the
same margin it would need about 0.7 of RK4's tendencies. This runs, from one spun-up RK4 state,
the world's RK4 at its own step and leapfrog with the Robert-Asselin-Williams filter
(``nu = 0.2, alpha = 0.53``, on the states themselves; the hyperdiffusion applied exactly over
the two steps a leapfrog step spans, the tendency damped over one) at
each ``--dt-minutes``, all with the same tendency (:meth:`hloba.world.qg.QGModel.grid_tendency`),
one thread, and prints per scheme the milliseconds per simulated day, whether it stayed finite,
and the yearly mean eddy total energy, kinetic plus available potential
(:meth:`hloba.world.qg.QGModel.energy`, m2 s-2; not the eddy kinetic energy of
``scripts/check_world_climate.py``, which is about a quarter of it), against RK4's. An
experiment: the world itself stays RK4.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.config import load_config  # noqa: E402
from hloba.runtime import reuse_freed_memory  # noqa: E402
from hloba.world.qg import DAYS_PER_YEAR, SECONDS_PER_DAY, QGModel, QGParams, random_initial_state  # noqa: E402

RAW_NU, RAW_ALPHA = 0.2, 0.53


def rk4_run(model: QGModel, sh: torch.Tensor, doy0: float, days: float) -> tuple[np.ndarray, float, torch.Tensor]:
    """Daily eddy energy over ``days`` with the world's own RK4 step; seconds taken; the last state."""
    steps_per_day = round(SECONDS_PER_DAY / model.params.dt_seconds)
    energy, start = [], time.perf_counter()
    for day in range(int(days)):
        for i in range(steps_per_day):
            sh = model.step_spectral(sh, doy0 + day + i / steps_per_day)
        energy.append(float(model.energy(model.to_grid(sh))[0]))
        if not math.isfinite(energy[-1]):
            break
    return np.array(energy), time.perf_counter() - start, sh


def leapfrog_run(params: QGParams, sh: torch.Tensor, doy0: float, days: float, dt_minutes: float
                 ) -> tuple[np.ndarray, float]:
    """Daily eddy energy over ``days`` with leapfrog + RAW filter at ``dt_minutes`` (first step RK4)."""
    model = QGModel(QGParams.from_dict({**params.to_dict(), "dt_minutes": dt_minutes}))
    dt = model.params.dt_seconds
    hyper, hyper2 = model.hyper, model.hyper * model.hyper
    steps_per_day = round(SECONDS_PER_DAY / dt)
    energy, start = [], time.perf_counter()
    previous, current = sh, model.step_spectral(sh, doy0)
    step = 1
    for day in range(int(days)):
        while step < (day + 1) * steps_per_day:
            doy = doy0 + step / steps_per_day
            sources, winds = model.stage_constants(torch.tensor([doy], dtype=torch.float64), 1)
            tendency = model.grid_tendency(current, sources, winds)
            new = previous * hyper2 + (2.0 * dt) * hyper * tendency  # hyperdiffusion exact over 2 dt
            d = 0.5 * RAW_NU * (previous - 2.0 * current + new)
            previous, current = current + RAW_ALPHA * d, new - (1.0 - RAW_ALPHA) * d
            step += 1
        energy.append(float(model.energy(model.to_grid(current))[0]))
        if not (math.isfinite(energy[-1]) and energy[-1] < 1e4):
            break
    return np.array(energy), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--years", type=float, default=2.0)
    p.add_argument("--spinup-years", type=float, default=1.0)
    p.add_argument("--dt-minutes", type=float, nargs="+", default=[20.0, 30.0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    reuse_freed_memory()
    params = QGParams.from_dict(load_config(REPO / "config.yaml")["world"]["qg"])
    model = QGModel(params)
    state = random_initial_state(params, 1, torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        _, _, sh = rk4_run(model, model.to_spectral(state), 0.0, round(args.spinup_years * DAYS_PER_YEAR))
        days = round(args.years * DAYS_PER_YEAR)
        runs = {f"rk4 {params.dt_minutes:g} min": rk4_run(model, sh, 0.0, days)[:2]}
        for dt in args.dt_minutes:
            runs[f"leapfrog {dt:g} min"] = leapfrog_run(params, sh, 0.0, days, dt)
    base = runs[f"rk4 {params.dt_minutes:g} min"]
    print(f"{days} days from a {args.spinup_years:g}-year RK4 spin-up (seed {args.seed}), one thread")
    print(f"{'scheme':18s} {'ms/day':>8s} {'sim-yr/min':>10s} {'finite days':>12s}  yearly mean eddy energy (RK4's)")
    for name, (energy, seconds) in runs.items():
        whole = len(energy) // 365  # a year of the run: 365 (or, last, 366) days
        years = [energy[365 * i:365 * (i + 1)].mean() for i in range(whole)]
        ref = [base[0][365 * i:365 * (i + 1)].mean() for i in range(whole)]
        ms = 1e3 * seconds / max(len(energy), 1)
        print(f"{name:18s} {ms:8.1f} {60e3 / (ms * DAYS_PER_YEAR):10.2f} {len(energy):12d}  "
              + ", ".join(f"{y:.1f} ({r:.1f})" for y, r in zip(years, ref)))


if __name__ == "__main__":
    main()
