"""Experiment (issue 16): does a per-channel affine recalibration of the archive's std help?

    python scripts/std_recalibration_experiment.py [--year 2011] [--results results]
                                                   [--split 07-01] [--bins 10]

On a finished archive year (``results/reanalysis/{year}.nc`` against ``results/reference/{year}.nc``,
the built-in world's truth), the candidates are fitted per channel on the first part of the
year (before ``--split``) and scored on the rest:

- ``archived``: the std as the archive has it (the per-channel factor of rule calibrate_uncertainty);
- ``scale``: ``k * std`` with ``k`` = RMSE / rms std of the fit period (the archive's method, refitted);
- ``affine``: ``a + b * std`` from the weighted least-squares line of the fit period's binned RMSE
  on binned rms std (:mod:`hloba.verify.reliability`), floored at 1 % of the rms std.

Scores on the test period per channel: corr(std, |error|) (an affine map cannot change it),
spread/RMSE, the reliability slope and the Gaussian CRPS, with the CRPS change against ``archived``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.archive.dataset import archive_states  # noqa: E402
from hloba.channels import stack_channels  # noqa: E402
from hloba.scores import gaussian_crps  # noqa: E402
from hloba.verify.reliability import reliability  # noqa: E402


def affine_fit(table: pd.DataFrame) -> tuple[float, float]:
    """Intercept and slope of the bins' RMSE on their rms std (weights: the bins' shares)."""
    x, y, w = (table[c].to_numpy(np.float64) for c in ("rms_std", "rmse", "weight_share"))
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    b = np.average((x - xm) * (y - ym), weights=w) / np.average((x - xm) ** 2, weights=w)
    return float(ym - b * xm), float(b)


def candidates(mean, std, truth, weights, names, n_bins: int) -> dict[str, list]:
    """Per channel, the maps std -> recalibrated std of each candidate, fitted on these arrays."""
    table, _ = reliability(mean, std, truth, weights, names, n_bins)
    err2 = (np.asarray(mean, np.float64) - truth) ** 2
    w = np.asarray(weights, np.float64)[None, :, None]
    maps = {"archived": [], "scale": [], "affine": []}
    for i, name in enumerate(names):
        ms2 = float(np.average(std[:, i] ** 2, weights=np.broadcast_to(w, std[:, i].shape)))
        me2 = float(np.average(err2[:, i], weights=np.broadcast_to(w, err2[:, i].shape)))
        k = np.sqrt(me2 / ms2)
        a, b = affine_fit(table[table["channel"] == name])
        floor = 0.01 * np.sqrt(ms2)
        maps["archived"].append(lambda s: s)
        maps["scale"].append(lambda s, k=k: k * s)
        maps["affine"].append(lambda s, a=a, b=b, floor=floor: np.maximum(a + b * s, floor))
    return maps


def score(mean, std, truth, weights, names, n_bins: int) -> pd.DataFrame:
    out = reliability(mean, std, truth, weights, names, n_bins)[1].set_index("channel")
    crps = gaussian_crps(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (mean, std, truth)), weights)
    return out.assign(crps=crps.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--year", type=int, default=2011)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--split", default="07-01", help="MM-DD: fit before, score from this day on")
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args()
    mean, std, times, channels, grid = archive_states(args.results / f"reanalysis/{args.year}.nc")
    with xr.open_dataset(args.results / f"reference/{args.year}.nc") as ref:
        truth = stack_channels(ref.sel(time=times).load(), channels)
    names, weights = [c.name for c in channels], grid.area_weights()
    fit = np.asarray(times < pd.Timestamp(f"{args.year}-{args.split}"))
    test = ~fit
    maps = candidates(mean[fit], std[fit], truth[fit], weights, names, args.bins)
    rows = []
    for method, per_channel in maps.items():
        s = np.stack([f(std[test][:, i]) for i, f in enumerate(per_channel)], axis=1)
        rows.append(score(mean[test], s, truth[test], weights, names, args.bins).assign(method=method))
    out = pd.concat(rows).reset_index()
    base = out[out["method"] == "archived"].set_index("channel")["crps"]
    out["crps_change_pct"] = 100.0 * (out["crps"] / out["channel"].map(base) - 1.0)
    print(f"fit {int(fit.sum())} times before {args.year}-{args.split}, scored on {int(test.sum())} after")
    with pd.option_context("display.width", 160):
        for method, g in out.groupby("method", sort=False):
            print(f"\n{method}")
            print(g.drop(columns="method").set_index("channel").round(4).to_string())


if __name__ == "__main__":
    main()
