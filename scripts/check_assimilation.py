"""Check a year's HLOBA stream against the truth and against the free run (issue: assimilation streams).

    python scripts/check_assimilation.py [--configfile config.yaml] [--results results] [--year 2011]

Reads results/latent/{year}.nc (the configured method, normally hloba), runs the free stream of the
same year in-process (same cold start, same forecast model, no assimilation) and prints per
channel the area-weighted RMSE of analysis, background and free run in anomaly-std units, the
no-divergence ratio (last month / first month) and the latent calibration
mean((z_a - E(truth))^2 / sigma_a2). Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.year import assimilate_year  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.models.checkpoint import grid_from_state, load_checkpoint  # noqa: E402
from hloba.verify.latent import stream_scores  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(__file__).resolve().parents[1] / "config.yaml"
    config = load_config(*dict.fromkeys([base, Path(args.configfile).resolve()]))
    years = year_sets(config)
    year = args.year or years.reanalysis[-1]
    r = Path(args.results)
    ae = r / "models/autoencoder.pt"
    grid = grid_from_state(load_checkpoint(ae, "autoencoder")["grid"])
    weights = grid.area_weights()
    refs = [r / f"reference/{year}.nc"]
    hloba = stream_scores(r / f"latent/{year}.nc", refs, ae, weights)
    cfg = StreamConfig.from_config(config).with_(method="free")
    inputs = StreamInputs.from_results(r, config, stream_years(year, cfg.spinup_days, years.all), tuning=False)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        assimilate_year(year, inputs, cfg, t / "free.nc", t / "fb.parquet", t / "diag.csv",
                        RunSettings(device="cpu", progress=False))
        free = stream_scores(t / "free.nc", refs, ae, weights)
    table = pd.DataFrame({
        "analysis": hloba["analysis_rmse"], "background": hloba["background_rmse"], "free": free["background_rmse"],
    }, index=hloba["channels"])
    table["analysis/free"] = table["analysis"] / table["free"]
    table["analysis/background"] = table["analysis"] / table["background"]
    pd.set_option("display.width", 160)
    print(f"year {year}, method {hloba['method']}: area-weighted RMSE against the truth (anomaly-std units)")
    print(table.round(3).to_string())
    months = hloba["monthly_rmse"]
    first, last = months[min(months)], months[max(months)]
    drift = last / first
    print("monthly analysis RMSE: " + ", ".join(f"{m}: {v:.3f}" for m, v in months.items()))
    print(f"no divergence: last month / first month = {drift:.3f} (target <= 1.2)")
    print(f"latent calibration mean((z_a - E(truth))^2 / sigma_a2) = {hloba['latent_calibration']:.3f} (target [0.5, 2])")
    ok = {
        "analysis <= 0.5 x free": bool((table["analysis/free"] <= 0.5).all()),
        "analysis < background": bool((table["analysis/background"] < 1).all()),
        "no divergence": drift <= 1.2,
        "latent calibration": 0.5 <= hloba["latent_calibration"] <= 2.0,
    }
    for k, v in ok.items():
        print(f"{'PASS' if v else 'MISS'} {k}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
