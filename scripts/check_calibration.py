"""Print the forecast/ensemble figures of a pipeline run (issue: forecast models and lagged ensembles).

    python scripts/check_calibration.py [results]

From ``ensemble/calibration.nc``: hybrid weights (a, b), corr(s2, e2), decorrelation of latent
background errors before and after the rotation (held-out half) against the sampling floor,
and RMSE against lead time per channel (in anomaly-std units, with persistence). From
``models/emulator_report.json`` if present: the emulator's 24 h RMSE against persistence
(target: at most half).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import xarray as xr


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    with xr.open_dataset(root / "ensemble/calibration.nc") as cal, xr.open_dataset(root / "prep/normalization.nc") as norm:
        a = cal.attrs
        print(f"forecast model {a['forecast_model']}, K = {a['members']} lagged members, {a['n_valid_times']} valid times")
        print(f"hybrid weights: a = {a['hybrid_a']:.3f}, b = {a['hybrid_b']:.3f}; corr(s2, e2) = {a['corr_s2_e2']:.3f}")
        print(f"in rotated coordinates: a = {a['hybrid_a_rotated']:.3f}, b = {a['hybrid_b_rotated']:.3f}; "
              f"corr = {a['corr_s2_e2_rotated']:.3f}; covariance shrinkage {a['covariance_shrinkage']:.3f}")
        for key in ("decorrelation_before", "decorrelation_after_rotation"):
            print(f"{key.replace('_', ' ')}: off-diagonal energy fraction {a[key + '_off_diagonal_energy_fraction']:.3f}, "
                  f"sampling floor {a[key + '_sampling_floor']:.3f}, "
                  f"largest |corr| {a[key + '_max_abs_offdiagonal_correlation']:.3f}")
        std = norm["anomaly_std"].values
        leads = cal["lead_hours"].values
        show = [i for i, h in enumerate(leads) if h in (6, 24, 48, 72, 120)]
        print("RMSE / anomaly std at lead (h): " + ", ".join(f"{leads[i]:.0f}" for i in show) + " (persistence)")
        for c, name in enumerate(cal["channel"].values):
            row = ", ".join(f"{cal['lead_rmse'].values[i, c] / std[c]:.3f} ({cal['persistence_rmse'].values[i, c] / std[c]:.3f})" for i in show)
            print(f"  {str(name):28s} {row}")
    report = root / "models/emulator_report.json"
    if report.exists():
        r = json.loads(report.read_text())
        worst = max(r["ratio_to_persistence"].values())
        print(f"emulator {r['lead_hours']:.0f} h RMSE / persistence: " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["ratio_to_persistence"].items()) + f" (worst {worst:.2f}, target <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
