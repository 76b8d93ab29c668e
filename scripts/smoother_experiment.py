"""The smoother's experiment on a finished run's archives (assimilation.smoother_hours; hloba.smoother).

Takes two reanalysis years of ``results/reanalysis`` (the filter's analyses: a run with
``smoother_hours: null``, or any run's ``hloba_filter``-like archive) and their truth, forms each
cycle's increment ``x_a(k) - M(x_a(k - 1))`` with the forecast model, fits the smoother's gains on
the first year against its truth and prints, per channel, the RMSE (in anomaly stds) of the
archive and of the smoothed analyses on both years and on the scorecard's first 20 days of the
second (out of sample). ``--lags`` and ``--bands`` choose the regression (lags 0: the cycle's own
increment alone, a filter's correction that reads no later observation).

    .venv/bin/python scripts/smoother_experiment.py --results results [--fit 2010 --test 2011]
        [--lags 0 1 2 3] [--bands 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

from hloba.config import load_config
from hloba.forecast import build_forecast_model
from hloba.normalization import Normalizer
from hloba.smoother import fit_smoother, smoothing_correction
from hloba.states import load_years


def year_data(results: Path, year: int, config: dict, normalizer: Normalizer):
    """``(errors, increments, times)`` of a year's archive, standardised: ``x_t - x_a`` and
    ``x_a(k) - M(x_a(k - 1))`` (the first cycle's increment 0)."""
    truth, times, channels, _ = load_years([results / f"reference/{year}.nc"])
    analysis = load_years([results / f"reanalysis/{year}.nc"], None, channels)[0].double()
    model = build_forecast_model(config["forecast"], channels, pd.Timedelta(times[1] - times[0]),
                                 world=config["world"].get("qg", {}))
    forecast = torch.cat([model.step(analysis[i:i + 64], times[i:i + 64], 1).double()
                          for i in range(0, len(times), 64)])
    x_a = normalizer.standardize(analysis, times)
    increments = torch.zeros_like(x_a)
    increments[1:] = x_a[1:] - normalizer.standardize(forecast[:-1], times[1:])
    return normalizer.standardize(truth.double(), times) - x_a, increments, times, [c.name for c in channels]


def scores(errors, increments, gains, names) -> pd.DataFrame:
    rms = lambda e: e.double().square().mean(dim=(0, 2, 3)).sqrt()  # noqa: E731
    before = rms(errors)
    after = rms(errors.double() - smoothing_correction(increments, gains))
    return pd.DataFrame({"archive": before, "smoothed": after, "ratio": after / before}, index=names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--fit", type=int, default=2010)
    parser.add_argument("--test", type=int, default=2011)
    parser.add_argument("--lags", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--bands", type=int, default=5)
    parser.add_argument("--days", type=float, default=20.0, help="the scorecard's period at the test year's start")
    args = parser.parse_args()
    torch.set_num_threads(2)
    r = Path(args.results)
    config = load_config(Path(args.config))
    with xr.open_dataset(r / "prep/normalization.nc") as ds:
        normalizer = Normalizer.from_dataset(ds.load())
    fit = year_data(r, args.fit, config, normalizer)
    test = year_data(r, args.test, config, normalizer)
    names = fit[3]
    n_days = int(round(pd.Timedelta(days=args.days) / (test[2][1] - test[2][0])))
    for lags in args.lags:
        gains = fit_smoother(fit[0], fit[1], lags, args.bands)
        print(f"\nlags {lags}, {args.bands} bands")
        table = pd.concat({f"{args.fit} (fit)": scores(fit[0], fit[1], gains, names),
                           f"{args.test}": scores(test[0], test[1], gains, names),
                           f"{args.test} first {args.days:g} days": scores(test[0][:n_days], test[1][:n_days], gains,
                                                                            names)}, axis=1)
        print(table.round(4).to_string())
        print("mean over channels:", {k: round(float(table[(k, "smoothed")].mean() / table[(k, "archive")].mean()), 4)
                                      for k in table.columns.levels[0]})


if __name__ == "__main__":
    main()
