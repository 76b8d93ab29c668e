"""Check the climate of the built-in world on a configuration (default: config.yaml's world).

Runs one continuous trajectory (spin-up discarded) for ``--years`` years and prints the
figures of the foundation issue: annual-mean eddy kinetic energy and its year-to-year and
2-year-mean changes, the winter/summer EKE ratio, the 99th percentile of the 6-hourly maximum
wind, and the error doubling time of twin experiments started in winter and summer.

    python scripts/check_world_climate.py                    # default world, 4 years
    python scripts/check_world_climate.py --set nx=32 --set dt_minutes=60 --years 2
    python scripts/check_world_climate.py --reference results/reference/20*.nc   # files of a run
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.runtime import portable_fft  # noqa: E402
from hloba.cli import parse_set  # noqa: E402
from hloba.world.atmosphere import state_from_fields  # noqa: E402
from hloba.world.diagnostics import (  # noqa: E402
    eddy_kinetic_energy, error_doubling_time, max_wind_speed, relative_change, seasonal_ratio,
)
from hloba.world.qg import TRANSFORMS, QGModel  # noqa: E402
from hloba.world.simulate import PRECISIONS, WorldConfig, day_of_year, simulate_years, world_dtype  # noqa: E402


def twin_doubling_time(config: WorldConfig, ds, month: int) -> float:
    model = QGModel(config.qg, dtype=world_dtype(config), transforms=config.transforms)
    sel = ds.sel(time=ds.time.dt.month == month).isel(time=slice(0, None, 40))
    geo = torch.from_numpy(sel["geopotential"].values.astype(np.float64)).to(world_dtype(config))
    hum = torch.from_numpy(sel["specific_humidity"].values.astype(np.float64)).to(world_dtype(config))
    doy = float(day_of_year(pd.Timestamp(sel.time.values[0]))[0])
    states = state_from_fields(model, geo, hum, doy)
    return error_doubling_time(model, states, doy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="QG parameter override")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help="world.precision override")
    parser.add_argument("--transforms", choices=TRANSFORMS, help="world.transforms override")
    parser.add_argument("--reference", nargs="+", help="use these consecutive reference files instead of simulating")
    parser.add_argument("--twin-years", type=int, default=2, help="years whose Jan/Jul states start twin experiments")
    args = parser.parse_args()
    portable_fft()  # rule make_world's world
    logging.basicConfig(level=logging.WARNING)
    with open(args.config) as f:
        world = yaml.safe_load(f)["world"]
    world.setdefault("qg", {}).update(parse_set(args.set))
    if args.precision:
        world["precision"] = args.precision
    if args.transforms:
        world["transforms"] = args.transforms
    config = WorldConfig.from_dict(world)
    years = list(range(2000, 2000 + args.years))
    t0 = time.time()
    annual, ratios, p99, doubling = [], [], [], []
    if args.reference:
        import xarray as xr

        source = ((int(pd.Timestamp(xr.open_dataset(p).time.values[0]).year), xr.open_dataset(p).load())
                  for p in sorted(args.reference))
    else:
        source = simulate_years(config, years, progress=False)
    for year, ds in source:
        eke = eddy_kinetic_energy(ds)
        annual.append(float(eke.mean()))
        ratios.append(seasonal_ratio(eke))
        p99.append(float(np.percentile(max_wind_speed(ds).values, 99)))
        line = f"{year}: EKE {annual[-1]:.1f} m2/s2, winter/summer {ratios[-1]:.2f}, p99 max wind {p99[-1]:.1f} m/s"
        if len(doubling) < args.twin_years:
            doubling.append((twin_doubling_time(config, ds, 1), twin_doubling_time(config, ds, 7)))
            line += f", doubling time Jan {doubling[-1][0]:.2f} d / Jul {doubling[-1][1]:.2f} d"
        print(f"{line} ({time.time() - t0:.0f} s)", flush=True)
    changes = [relative_change(a, b) for a, b in zip(annual, annual[1:])]
    two_year = [np.mean(annual[i:i + 2]) for i in range(0, len(annual) - 1, 2)]
    two_changes = [relative_change(a, b) for a, b in zip(two_year, two_year[1:])]
    print(f"year-to-year EKE change: max {max(changes, default=float('nan')):.1%} (target < 15%)")
    print(f"2-year-mean EKE change: max {max(two_changes, default=float('nan')):.1%} (target < 10%)")
    print(f"winter/summer EKE ratio: min {min(ratios):.2f} (target >= 1.5)")
    print(f"p99 of 6-hourly max wind: {min(p99):.1f}..{max(p99):.1f} m/s (target 15..80)")
    mean_doubling = float(np.mean(doubling))
    print(f"error doubling time: mean {mean_doubling:.2f} d (target 1..5)")
    ok = (
        max(changes, default=0) < 0.15 and max(two_changes, default=0) < 0.10 and min(ratios) >= 1.5
        and 15 <= min(p99) and max(p99) <= 80 and 1 <= mean_doubling <= 5
    )
    print("all climate targets met" if ok else "SOME CLIMATE TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
