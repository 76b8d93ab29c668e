"""Choose the B scale of a baseline: analysis RMSE for several scales on one stretch of a year.

    python scripts/sweep_b_scale.py --method l3dvar --scales 1,10,100,300,1000 [--days 5] [--spinup 5]
    python scripts/sweep_b_scale.py --method oi --scales 3,10,30,100 [--out choice.csv]

For each scale, runs the method (config.yaml settings, the trained models and files under
--results; oi needs rule oi_covariance's file) from --spinup days before Jan 1 of --year for
--days days and prints the area-weighted analysis RMSE per channel in anomaly-std units, the
mean over channels and the analysis milliseconds per cycle, and the scale with the lowest mean
(written with the table to --out). --year defaults to the calibration year: a baseline's
tunables are never chosen on the compared period (the comparison's year is a reanalysis year).
With --reference-method hloba the same is printed for HLOBA. ``var_b_scale`` (l3dvar, l4dvar)
and ``oi_b_scale`` (oi) in config.yaml are the scales these sweeps picked on the default world.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.verify.compare import run_method, scorecard  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=["l3dvar", "l4dvar", "oi"])
    p.add_argument("--scales", required=True, help="comma-separated B scales")
    p.add_argument("--reference-method", default=None, help="also run this method once (e.g. hloba)")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, help="default: the first calibration year")
    p.add_argument("--out", default=None, help="csv of the table and the chosen scale")
    p.add_argument("--days", type=float, default=5.0)
    p.add_argument("--spinup", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / args.configfile)
    years = year_sets(cfg)
    year = args.year or years.calibration[0]
    if year == years.reanalysis[-1] and args.year:
        print(f"warning: {year} is the comparison's default year; choosing tunables on it is not fair")
    r = Path(args.results)
    inputs = StreamInputs.from_results(r, cfg, stream_years(year, args.spinup, years.all), oi_covariance=True)
    key = "oi_b_scale" if args.method == "oi" else "var_b_scale"
    runs = {}
    todo = [(f"{args.method} {key}={s}", args.method, float(s)) for s in args.scales.split(",")]
    if args.reference_method:
        todo.append((args.reference_method, args.reference_method, None))
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, scale in todo:
            settings = StreamConfig.from_config(cfg)
            if scale is not None:
                settings = settings.with_(**{key: scale})
            run_method(method, year, args.days, inputs, f"{tmp}/run.nc", settings, spinup_days=args.spinup,
                       run=RunSettings(log_every=10 ** 6, progress=False))
            with xr.open_dataset(f"{tmp}/run.nc") as ds:
                runs[label] = ds.load()
            print(f"{label}: analysis {1e3 * runs[label].attrs['analysis_seconds_per_cycle']:.0f} ms per cycle",
                  flush=True)
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        std = norm["anomaly_std"].sel(channel=list(next(iter(runs.values()))["channel"].values)).values
    card = scorecard(runs, [r / f"reference/{year}.nc"], std)
    table = card.pivot(index="channel", columns="method", values="rmse_normalised")
    table.loc["mean"] = table.mean()
    pd.set_option("display.width", 200)
    print(f"analysis RMSE / anomaly std, {year}, {args.days} days after {args.spinup} days of spin-up")
    table = table[[label for label, _, _ in todo]]
    print(table.round(3).to_string())
    swept = [label for label, method, _ in todo if method == args.method]
    best = min(swept, key=lambda label: table.loc["mean", label])
    print(f"chosen on {year}: {best} (mean {table.loc['mean', best]:.3f})")
    if args.out:
        table.T.assign(year=year, chosen=[label == best for label in table.columns]).to_csv(args.out)


if __name__ == "__main__":
    main()
