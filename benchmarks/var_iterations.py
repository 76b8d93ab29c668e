"""Latent 3D-/4D-Var's iteration cap against its cost and skill (issue #18, a cheaper comparison).

    python benchmarks/var_iterations.py [--results results] [--configfile config.yaml ...]
        [--method l4dvar] [--caps 15,25] [--threads 2]

Reruns one compared method of a finished pipeline (the comparison's year, days and spin-up, the
config's assimilation settings) with ``assimilation.var_max_iterations`` set to each cap, scores
it against the truth as rule compare_methods does, and prints, per cap, the seconds per analysis,
the cost evaluations per analysis and each channel's RMSE as a ratio to the pipeline's own run of
the method (``results/comparison/runs/{method}.nc``, made with the config's cap). The runs are
written to a temporary folder; nothing under ``--results`` changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.verify.compare import run_method, scorecard  # noqa: E402
from hloba.verify.settings import ComparisonSettings  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", nargs="+", default=["config.yaml"])
    p.add_argument("--results", default="results")
    p.add_argument("--method", default="l4dvar")
    p.add_argument("--caps", default="15,25")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(*args.configfile)
    r = Path(args.results)
    years = year_sets(config)
    comparison = ComparisonSettings.from_config(config)
    year = comparison.compared_year(years.reanalysis)
    cfg = StreamConfig.from_config(config)
    inputs = StreamInputs.from_results(r, config, stream_years(year, comparison.spinup_days, years.all),
                                       oi_covariance=args.method == "oi")
    base_path = r / f"comparison/runs/{args.method}.nc"
    if not base_path.exists():
        raise SystemExit(f"{base_path} does not exist: run rule compare_method for {args.method} first")
    runs = {f"{args.method}@{cfg.var_max_iterations} (pipeline)": xr.load_dataset(base_path)}
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cap in (int(c) for c in args.caps.split(",")):
            name = f"{args.method}@{cap}"
            start = time.perf_counter()
            runs[name] = run_method(args.method, year, comparison.days, inputs, Path(tmp) / f"{cap}.nc",
                                    cfg.with_(var_max_iterations=cap), spinup_days=comparison.spinup_days,
                                    run=RunSettings(progress=False))
            seconds[name] = time.perf_counter() - start
            print(f"{name}: {seconds[name]:.0f} s", flush=True)
    first = next(iter(runs.values()))
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        std = norm["anomaly_std"].sel(channel=list(first["channel"].values)).values
    card = scorecard(runs, [r / f"reference/{year}.nc"], std)  # run_method scores times inside the year only
    table = card.pivot(index="channel", columns="method", values="rmse_normalised")
    base = next(iter(runs))
    ratios = table.div(table[base], axis=0).drop(columns=base).add_prefix("ratio ")
    print(pd.concat([table, ratios], axis=1).round(4).to_string())
    for name, ds in runs.items():
        done = ds["iterations"].values
        done = done[done > 0]
        print(f"{name}: {ds.attrs['analysis_seconds_per_cycle']:.3f} s of analysis per cycle, "
              f"{done.mean():.1f} cost evaluations per analysis")


if __name__ == "__main__":
    main()
