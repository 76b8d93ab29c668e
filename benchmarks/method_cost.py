"""Per-cycle analysis cost of the assimilation methods on the same states and observations.

    python benchmarks/method_cost.py [--results results] [--year 2011] [--days 2]
                                     [--methods hloba,l3dvar,l4dvar,oi] [--device cpu] [--threads 2]

Every method starts from the same state (the reference at Jan 1 00 UTC of --year: no spin-up,
no cold start) and assimilates the same observations for --days days with the configured
settings (config.yaml, the trained models, tuning and OI covariance under --results; the OI
covariance is made by rule oi_covariance). Each method runs in its own process, so that one
method's freed memory cannot hide another's peak. Printed per method: analysis milliseconds
per cycle (the cycle without the background forecast), the peak memory of one analysis above
what the process held before it (Linux resident set high-water mark, or CUDA allocator peak),
forecast milliseconds per cycle, and the ratios of analysis time and memory to l4dvar's; then
each method's milliseconds per cycle in each stage of the stream's clock (``o2lnet`` holds HLOBA's
observation window, with the forecast that checks a lead's observations where it runs one;
``update`` its decoded increment's passes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_one(args, method: str, out: str) -> None:
    import torch

    from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
    from hloba.config import load_config, stream_years, year_sets
    from hloba.verify.compare import run_method

    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / args.configfile)
    r = Path(args.results)
    years = year_sets(cfg).all
    inputs = StreamInputs.from_results(r, cfg, stream_years(args.year, 0, years), oi_covariance=True,
                                       tuning=(r / "ensemble/stream_tuning.nc").exists())
    settings = StreamConfig.from_config(cfg).with_(cold_start=str(r / f"reference/{args.year}.nc"))
    run_method(method, args.year, args.days, inputs, out, settings, spinup_days=0.0,
               run=RunSettings(device=args.device, log_every=10 ** 6, progress=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int)
    p.add_argument("--days", type=float, default=2.0)
    p.add_argument("--methods", default="hloba,l3dvar,l4dvar,oi")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from hloba.config import load_config, year_sets

    if args.year is None:
        args.year = year_sets(load_config(REPO / args.configfile)).reanalysis[-1]
    from hloba.verify.compare import cost_table, run_in_own_process

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            out = f"{tmp}/{method}.nc"
            try:
                runs[method] = run_in_own_process(run_one, (args, method, out), out)
            except RuntimeError as err:
                sys.exit(f"method {method} failed ({err})")
    table = cost_table(runs)
    pd.set_option("display.width", 200)
    print(f"year {args.year}, {args.days} days from the reference at Jan 1, device {args.device}, "
          f"{args.threads} threads, one process per method")
    print(table.round(4).to_string(index=False))
    print("milliseconds per cycle by stage (the analysis is every stage but forecast):")
    print(stage_table(runs).round(2).to_string())


def stage_table(runs) -> pd.DataFrame:
    """Per method, the stream's stage clock (``seconds_per_cycle_{stage}``) in milliseconds."""
    from hloba.assim.timers import STAGES

    return pd.DataFrame({name: {s: 1e3 * ds.attrs[f"seconds_per_cycle_{s}"] for s in STAGES}
                         for name, ds in runs.items()}).T


if __name__ == "__main__":
    main()
