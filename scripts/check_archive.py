"""Check a year of the reanalysis archive (issue: dask decoding archive).

    python scripts/check_archive.py [--results results] [--year 2011]

Prints per channel the area-weighted RMSE of the archive's analysis against the truth, the rms
decoded std, spread/RMSE (target [0.7, 1.3]), the correlation of std and |error| over grid points
and times (target >= 0.3) and of their monthly means (target >= 0.7); and the largest difference
between the archive's analysis and the in-cycle analysis at the observations (feedback file),
in anomaly-std units (target <= 1e-5). Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.models.checkpoint import load_checkpoint  # noqa: E402
from hloba.verify.archive import in_cycle_difference, uncertainty_scores  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, default=2011)
    args = p.parse_args()
    r = Path(args.results)
    archive = r / f"reanalysis/{args.year}.nc"
    scores = uncertainty_scores(archive, r / f"reference/{args.year}.nc")
    pd.set_option("display.width", 160)
    print(f"{archive} against the truth (physical units)")
    print(scores.to_string(float_format=lambda v: f"{v:.4g}"))
    payload = load_checkpoint(r / "models/autoencoder.pt", "autoencoder")
    diff = in_cycle_difference(archive, r / f"feedback/{args.year}.parquet", payload["normalizer"]["anomaly_std"].numpy())
    print(f"largest |archive - in-cycle analysis| at the observations: {diff:.2e} anomaly std (target <= 1e-5)")
    ok = {
        "spread/RMSE in [0.7, 1.3]": bool(scores["spread_over_rmse"].between(0.7, 1.3).all()),
        "corr(std, |error|) >= 0.3": bool((scores["corr_std_abs_error"] >= 0.3).all()),
        "seasonal corr >= 0.7": bool((scores["corr_monthly_std_error"] >= 0.7).all()),
        "archive = in-cycle analysis": diff <= 1e-5,
    }
    for k, v in ok.items():
        print(f"{'PASS' if v else 'MISS'} {k}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
