"""Verification against withheld observations on the comparison period (issue 17).

Runs every method of ``comparison.methods`` on the comparison period twice, without withholding
and with ``--fraction`` of the observations withheld (``evaluation.withhold``), from the trained
models of a finished run (``results/``), and prints per method and variable the RMSE of the
background and of the analysis against the withheld observations (their ratio with a 95 % interval
from resampling whole days: ``hloba.verify.evaluate.withheld_ratio_interval``), and per method and
channel the scorecard RMSE (against the truth) with and without withholding, and per method its
mean over the channels (the scorecard's summary row) with and without. Default world: about twice the
comparison's time (latent 4D-Var dominates; ``--methods hloba,oi,l3dvar,free`` is quicker).

    .venv/bin/python scripts/check_withheld.py [--configfile config/test.yaml] [--fraction 0.1]
        [--methods l4dvar] [--withheld-only] [--keep DIR]   # DIR: each run's analyses and feedback
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from pathlib import Path

import pandas as pd
import xarray as xr

from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.config import load_config, stream_years, year_sets
from hloba.verify.compare import run_method, scorecard
from hloba.verify.evaluate import pooled_withheld, withheld_ratio_interval, withheld_statistics
from hloba.verify.settings import ComparisonSettings, variant_inputs


def withholding_parser(description: str) -> argparse.ArgumentParser:
    """The options of every withholding check: the config overlay, the finished run, the draw."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--configfile", default=None, help="overlay merged over config.yaml (as snakemake --configfile)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def print_scorecard_changes(cards: dict, fraction: float) -> None:
    """Per method and channel the scorecard RMSE without (``cards[0.0]``) and with
    (``cards[fraction]``) withholding and its change, per method their means over the channels (the
    README's scorecard row) and the largest channel's change."""
    both = cards[0.0].merge(cards[fraction], on=["method", "channel"], suffixes=("", "_withheld"))
    both["change"] = both["rmse_withheld"] / both["rmse"] - 1
    print("\nscorecard RMSE (anomaly std) without and with withholding:")
    print(both[["method", "channel", "rmse_normalised", "rmse_normalised_withheld", "change"]].round(4).to_string(index=False))
    mean = both.groupby("method")[["rmse_normalised", "rmse_normalised_withheld"]].mean()
    mean["change"] = mean["rmse_normalised_withheld"] / mean["rmse_normalised"] - 1
    print("\nscorecard RMSE averaged over the channels (the README's scorecard row) without and with withholding:")
    print(mean.round(4).to_string())
    print(f"\nlargest scorecard change {both['change'].abs().max():.1%}; per method: " + ", ".join(
        f"{m} {c:.1%}" for m, c in both.groupby("method")["change"].apply(lambda x: x.abs().max()).items()))


def main() -> None:
    parser = withholding_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated; default comparison.methods")
    parser.add_argument("--withheld-only", action="store_true",
                        help="only the run with withholding: the withheld-observation table, no scorecard change")
    parser.add_argument("--keep", default=None,
                        help="folder to keep each run's analyses and feedback in (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(__file__).resolve().parents[1] / "config.yaml"
    config = load_config(*([base] + ([Path(args.configfile)] if args.configfile else [])))
    years = year_sets(config)
    comparison = ComparisonSettings.from_config(config)
    year = comparison.compared_year(years.reanalysis)
    spinup, days = comparison.spinup_days, comparison.days
    methods = args.methods.split(",") if args.methods else comparison.methods
    r = Path(args.results)
    inputs = StreamInputs.from_results(r, config, stream_years(year, spinup, years.all), oi_covariance=True)
    cfg = StreamConfig.from_config(config)
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        std = norm["anomaly_std"].values
    cards, withheld = {}, []
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as tmp:
        for fraction in ((args.fraction,) if args.withheld_only else (0.0, args.fraction)):
            runs = {}
            for name in methods:
                out, fb = Path(tmp) / f"{name}-{fraction}.nc", Path(tmp) / f"{name}-{fraction}.parquet"
                # a variant's own tuning (rule tune_variant's), or hloba_unrefined's network and tuning
                tuned = variant_inputs(r, name, inputs, cfg)
                runs[name] = run_method(
                    name, year, days, tuned, out, cfg.with_(withhold_fraction=fraction, withhold_seed=args.seed),
                    spinup_days=spinup, run=RunSettings(progress=False), feedback_output=fb)
                if fraction > 0:
                    feedback = pd.read_parquet(fb)
                    pooled = pooled_withheld(withheld_statistics(feedback), "variable")
                    interval = withheld_ratio_interval(feedback, "variable", seed=args.seed)[["n_blocks", "low", "high"]]
                    withheld.append(pooled.join(interval).reset_index().assign(method=name))
            cards[fraction] = scorecard(runs, [r / f"reference/{year}.nc"], std)
    w = pd.concat(withheld, ignore_index=True)[
        ["variable", "method", "n", "omb_rmse", "oma_rmse", "oma_over_omb", "low", "high"]]
    print(f"against {args.fraction:.0%} withheld observations, {year}, {days} days after {spinup} days of spin-up "
          "(low, high: 95 % interval of oma_over_omb, whole days resampled):")
    print(w.round(4).to_string(index=False))
    assimilating = w[w["method"] != "free"]  # the free run has no analysis to compare
    beats = bool((assimilating["oma_over_omb"] < 1).all())
    label = assimilating["method"] + " " + assimilating["variable"]
    print(f"\n95 % interval below 1: {int((assimilating['high'] < 1).sum())} of {len(assimilating)}; holding 1: "
          f"{', '.join(label[(assimilating['low'] <= 1) & (assimilating['high'] >= 1)]) or 'none'}; above 1: "
          f"{', '.join(label[assimilating['low'] > 1]) or 'none'}")
    if args.withheld_only:
        print(f"\nanalysis beats background on withheld observations in every variable and method: {beats}")
        return
    print_scorecard_changes(cards, args.fraction)
    print(f"analysis beats background on withheld observations in every variable and method: {beats}")


if __name__ == "__main__":
    main()
