"""Print the learned-latent-space figures of a pipeline run against the issue's targets.

    python scripts/check_latent_space.py [results/models]

Reads ``autoencoder_report.json`` and ``o2lnet_report.json`` written by the training rules
(validation years): autoencoder RMSE per channel / anomaly std (target <= 0.10), O2Lnet RMSE of
D(z_o) / climatology RMSE (target <= 0.60), calibration mean (z_o - E(truth))^2 / sigma_o2
(target 0.7..1.4), and the latent decorrelation diagnostic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/models")
    ae = json.loads((folder / "autoencoder_report.json").read_text())
    o2 = json.loads((folder / "o2lnet_report.json").read_text())
    ok = True
    print(f"autoencoder: {ae['n_parameters'] / 1e6:.2f} M parameters, latent {ae['latent_shape']} = {ae['n_latent']} "
          f"({ae['compression']:.0f}x), {len(ae['history'])} epochs, "
          f"{sum(h['seconds'] for h in ae['history']) / 60:.1f} min")
    print(f"{'channel':28s} {'AE rmse/anom-std':>17s} {'AE rmse/std':>12s} {'O2L rmse/clim':>14s}")
    for name, r in ae["validation_rmse_over_anomaly_std"].items():
        ratio = o2["rmse_ratio_to_climatology"][name]
        ok &= r <= 0.10 and ratio <= 0.60
        print(f"{name:28s} {r:17.3f} {ae['validation_rmse_over_std'][name]:12.3f} {ratio:14.3f}")
    cal = o2["calibration_mean_normalized_squared_error"]
    ok &= 0.7 <= cal <= 1.4
    print(f"O2Lnet calibration mean (z_o - E(truth))^2 / sigma_o2 = {cal:.3f} (target 0.7..1.4)")
    d = ae["decorrelation_6h_differences"]
    print(f"latent 6-hour differences: off-diagonal energy fraction {d['off_diagonal_energy_fraction']:.3f}, "
          f"sampling floor {d['sampling_floor']:.3f}, largest |corr| {d['max_abs_offdiagonal_correlation']:.3f} "
          f"({d['n_samples']} samples, {d['n_latent']} elements)")
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
