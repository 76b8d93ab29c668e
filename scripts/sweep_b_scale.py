"""Choose a baseline's tunables (B scale, iteration cap) on the calibration year.

    python scripts/sweep_b_scale.py --method l3dvar --scales 1,10,100,300,1000 [--days 5] [--spinup 5]
    python scripts/sweep_b_scale.py --method l4dvar --scales 30,100,300 --caps 15,25,50 [--out choice.csv]
    python scripts/sweep_b_scale.py --method oi --scales 3,10,30,100 [--out choice.csv]

For each setting (every B scale with every iteration cap; a list not given is the config's one
value), runs the method (config.yaml settings, the trained models and files under --results; oi
needs rule oi_covariance's file) from --spinup days before Jan 1 of --year for --days days and
prints the area-weighted analysis RMSE per channel in anomaly-std units, their mean, the analysis
milliseconds per cycle and the cost evaluations per minimisation. It chooses the cheapest setting
(fewest cost evaluations; oi: milliseconds) whose mean is within --tolerance (relative, default
0.5 %) of the lowest (:func:`hloba.verify.tunables.choose_setting`) and writes the table with the
choice to --out.
--year defaults to the calibration year: a baseline's tunables are never chosen on the compared
period (the comparison's year is a reanalysis year). With --reference-method hloba the same is
printed for HLOBA. ``var_b_scale``, ``var_max_iterations`` (l3dvar, l4dvar) and ``oi_b_scale``
(oi) in config.yaml are the settings these sweeps picked on the default world (docs/comparison.md).
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
from hloba.verify.compare import cost_table, run_method, scorecard  # noqa: E402
from hloba.verify.settings import ComparisonSettings  # noqa: E402
from hloba.verify.tunables import choose_setting  # noqa: E402


def settings_grid(method: str, scales: str | None, caps: str | None, cfg: StreamConfig) -> list[tuple[str, dict]]:
    """``(label, settings changed)`` per swept setting: every scale with every cap."""
    key = "oi_b_scale" if method == "oi" else "var_b_scale"
    if caps and method == "oi":
        raise SystemExit("--caps: oi has no iteration cap (it is not variational); leave --caps out")
    scale_values = [float(s) for s in scales.split(",")] if scales else [getattr(cfg, key)]
    cap_values = [int(c) for c in caps.split(",")] if caps else [None]
    grid = []
    for scale in scale_values:
        for cap in cap_values:
            change = {key: scale} if cap is None else {key: scale, "var_max_iterations": cap}
            grid.append((method + " " + " ".join(f"{k}={v:g}" for k, v in change.items()), change))
    return grid


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=["l3dvar", "l4dvar", "oi"])
    p.add_argument("--scales", help="comma-separated B scales (default: the config's)")
    p.add_argument("--caps", help="l3dvar/l4dvar: comma-separated var_max_iterations (default: the config's)")
    p.add_argument("--reference-method", default=None, help="also run this method once (e.g. hloba)")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"])
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, help="default: the first calibration year")
    p.add_argument("--out", default=None, help="csv of the table and the chosen setting")
    p.add_argument("--days", type=float, default=5.0)
    p.add_argument("--spinup", type=float, default=5.0)
    p.add_argument("--tolerance", type=float, default=0.005,
                   help="choose the cheapest setting within this relative margin of the lowest mean RMSE")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(*args.configfile)
    years = year_sets(cfg)
    year = args.year or years.calibration[0]
    if year == ComparisonSettings.from_config(cfg).compared_year(years.reanalysis):
        print(f"warning: {year} is the comparison's year; choosing tunables on it is not fair")
    settings = StreamConfig.from_config(cfg)
    r = Path(args.results)
    inputs = StreamInputs.from_results(r, cfg, stream_years(year, args.spinup, years.all),
                                       oi_covariance=args.method == "oi")
    todo = [(label, args.method, change) for label, change in
            settings_grid(args.method, args.scales, args.caps, settings)]
    if args.reference_method:
        todo.append((args.reference_method, args.reference_method, {}))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, change in todo:
            start = time.perf_counter()
            run_method(method, year, args.days, inputs, f"{tmp}/run.nc", settings.with_(**change),
                       spinup_days=args.spinup, run=RunSettings(log_every=10 ** 6, progress=False))
            with xr.open_dataset(f"{tmp}/run.nc") as ds:
                runs[label] = ds.load()
            print(f"{label}: analysis {1e3 * runs[label].attrs['analysis_seconds_per_cycle']:.0f} ms per cycle, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        std = norm["anomaly_std"].sel(channel=list(next(iter(runs.values()))["channel"].values)).values
    card = scorecard(runs, [r / f"reference/{year}.nc"], std)  # run_method scores times inside the year only
    table = card.pivot(index="method", columns="channel", values="rmse_normalised").loc[list(runs)]
    table["mean_rmse"] = table.mean(axis=1)
    cost = cost_table(runs).set_index("method")
    table = table.join(cost[["analysis_ms_per_cycle", "cost_evaluations_per_analysis"]])
    swept = table.loc[[label for label, method, _ in todo if method == args.method]]
    # the cost of a variational setting: its cost evaluations (deterministic; milliseconds are noisy)
    best = choose_setting(swept, args.tolerance, cost="analysis_ms_per_cycle" if args.method == "oi"
                          else "cost_evaluations_per_analysis")
    pd.set_option("display.width", 250)
    print(f"analysis RMSE / anomaly std, {year}, {args.days:g} days after {args.spinup:g} days of spin-up")
    print(table.round(3).to_string())
    print(f"chosen on {year} (cheapest within {100 * args.tolerance:g} % of the lowest mean): {best} "
          f"(mean {table.loc[best, 'mean_rmse']:.4f}, lowest {swept['mean_rmse'].min():.4f})")
    table = table.assign(year=year, chosen=[label == best for label in table.index])
    if args.out:
        table.to_csv(args.out)
    return table


if __name__ == "__main__":
    main()
