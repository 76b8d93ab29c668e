"""A pipeline change's effect on the scores: two results folders side by side.

    python scripts/score_changes.py BEFORE/results AFTER/results [--year 2011] [--csv out.csv]

For runs whose numbers are expected to move (a new world step, a new default), where
``scripts/compare_results.py`` (bit-for-bit) does not apply. Prints, per method and channel, the
scorecard's RMSE in units of each run's own anomaly std (``rmse_normalised``; the worlds may
differ) and its ratio after / before, and per method its mean over the channels (the scorecard's
summary row) before and after; then, per channel, the archive's yearly RMSE and CRPS of
``--year`` in anomaly-std units and its spread/skill, before and after, and, for a run with
``evaluation.withhold``, the archive's O-A/O-B against the withheld observations per variable.
Channels or methods in only one of the runs are left out and named.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import xarray as xr


def scorecard_changes(before: Path, after: Path) -> pd.DataFrame:
    """``rmse_normalised`` per (method, channel) in both runs and their ratio."""
    cards = [pd.read_csv(r / "comparison/scorecard.csv").set_index(["method", "channel"])["rmse_normalised"]
             for r in (before, after)]
    table = pd.concat(cards, axis=1, keys=["before", "after"], join="inner")
    return table.assign(ratio=table["after"] / table["before"])


def channel_means(card: pd.DataFrame) -> pd.DataFrame:
    """Per method the mean of ``before`` and ``after`` over the channels and the ratio of the means
    (not the mean of the ratios): the scorecard's summary row in both runs."""
    means = card[["before", "after"]].groupby(level="method").mean()
    return means.assign(ratio=means["after"] / means["before"])


def archive_changes(before: Path, after: Path, year: int) -> pd.DataFrame:
    """The archive's yearly scores of ``year`` per channel: RMSE and CRPS over each run's anomaly
    std, and spread/skill, in both runs, with the ratios of RMSE and CRPS."""
    parts = []
    for r in (before, after):
        scores = pd.read_csv(r / f"evaluation/{year}/scores.csv")
        scores = scores[scores["period"] == "year"].set_index("channel")
        with xr.open_dataset(r / "prep/normalization.nc") as norm:
            std = norm["anomaly_std"].to_series()
        std.index = std.index.map(str)
        parts.append(pd.DataFrame({"rmse": scores["rmse"] / std.reindex(scores.index),
                                   "crps": scores["crps"] / std.reindex(scores.index),
                                   "spread_skill": scores["spread_skill"]}))
    table = pd.concat(parts, axis=1, keys=["before", "after"], join="inner")
    for score in ("rmse", "crps"):
        table[("ratio", score)] = table[("after", score)] / table[("before", score)]
    return table


def withheld_fit(results: Path, year: int) -> pd.DataFrame | None:
    """Per variable the archive's O-A/O-B RMSE ratio against the observations ``evaluation.withhold``
    kept out (``results/feedback/{year}.parquet``, ``qc == 3``) with its day-resampled interval;
    ``None`` when the run withheld nothing."""
    from hloba.obs.withhold import QC_WITHHELD
    from hloba.verify.evaluate import withheld_ratio_interval

    path = results / f"feedback/{year}.parquet"
    if not path.exists():
        return None
    feedback = pd.read_parquet(path, columns=["time", "variable", "value", "background", "analysis", "qc"])
    if not (feedback["qc"] == QC_WITHHELD).any():
        return None
    return withheld_ratio_interval(feedback, "variable")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--year", type=int, help="the archive year to compare (default: the last both evaluated)")
    p.add_argument("--csv", help="write the scorecard table here")
    args = p.parse_args(argv)
    pd.set_option("display.width", 200)
    card = scorecard_changes(args.before, args.after)
    print("scorecard RMSE / anomaly std (comparison period)")
    print(card.round(4).to_string())
    print("ratio after/before per method: " + ", ".join(
        f"{m} {g.min():.3f}..{g.max():.3f}" for m, g in card["ratio"].groupby(level="method")))
    print("\nmean over the channels (the README's scorecard row), before, after and their ratio")
    print(channel_means(card).round(4).to_string())
    if args.csv:
        card.to_csv(args.csv)
    years = [sorted(int(d.name) for d in (r / "evaluation").iterdir() if d.name.isdigit()) for r in
             (args.before, args.after)]
    common = sorted(set(years[0]) & set(years[1]))
    year = args.year or (common[-1] if common else None)
    if year is None:
        print("no archive year evaluated in both runs")
        return
    print(f"\narchive {year}: RMSE and CRPS / anomaly std, spread/skill")
    print(archive_changes(args.before, args.after, year).round(4).to_string())
    for name, results in (("before", args.before), ("after", args.after)):
        withheld = withheld_fit(results, year)
        if withheld is not None:
            print(f"\narchive {year} ({name}): O-A over O-B RMSE against the withheld observations, "
                  "with its 95 % interval (days resampled)")
            print(withheld.round(4).to_string())


if __name__ == "__main__":
    main()
