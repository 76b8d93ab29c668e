"""HLOBA's stream with its network passes in float32 and in bfloat16, on a finished pipeline:
analysis time per cycle by stage and the scorecard RMSE of each.

    python scripts/inference_precision_experiment.py [--results results] [--days 20] [--spinup 10]

Runs the comparison's HLOBA stream (config.yaml's settings, the pipeline's models and tuning, the
last reanalysis year) three times in separate processes: every pass in float32 (``float32``:
``assimilation.o2lnet_precision`` and ``autoencoder_precision: float32``), O2Lnet's pass in
bfloat16 (``bfloat16_o2lnet``), and the autoencoder's encodings and decodings, which every method
shares, in bfloat16 too (``bfloat16``: both settings ``bfloat16``, what ``auto`` gives on such
hardware). bfloat16 is fast only where the hardware multiplies it natively (CPUs with AMX tiles
or avx512_bf16, CUDA); elsewhere it is emulated and slower.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_one(args, precision: str, out: str) -> None:
    import torch

    from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
    from hloba.config import load_config, stream_years, year_sets
    from hloba.runtime import reuse_freed_memory
    from hloba.verify.compare import run_method

    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    cfg = load_config(REPO / args.configfile)
    r = Path(args.results)
    year = year_sets(cfg).reanalysis[-1]
    inputs = StreamInputs.from_results(r, cfg, stream_years(year, args.spinup, year_sets(cfg).all),
                                       tuning=(r / "ensemble/stream_tuning.nc").exists())
    settings = StreamConfig.from_config(cfg).with_(
        o2lnet_precision="float32" if precision == "float32" else "bfloat16",
        autoencoder_precision="bfloat16" if precision == "bfloat16" else "float32")
    run_method("hloba", year, args.days, inputs, out, settings, spinup_days=args.spinup,
               run=RunSettings(log_every=10 ** 6, progress=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--days", type=float, default=20.0)
    p.add_argument("--spinup", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import pandas as pd
    import xarray as xr

    from hloba.verify.compare import run_in_own_process, scorecard

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("float32", "bfloat16_o2lnet", "bfloat16"):
            out = f"{tmp}/{precision}.nc"
            try:
                runs[precision] = run_in_own_process(run_one, (args, precision, out), out)
            except RuntimeError as err:
                sys.exit(f"the {precision} stream failed ({err})")
    r = Path(args.results)
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        card = scorecard(runs, sorted(r.glob("reference/*.nc")), norm["anomaly_std"].values)
    pd.set_option("display.width", 200)
    stages = pd.DataFrame({k: {s.removeprefix("seconds_per_cycle_"): 1e3 * v for s, v in ds.attrs.items()
                               if s.startswith("seconds_per_cycle_") or s == "analysis_seconds_per_cycle"}
                           for k, ds in runs.items()})
    print("milliseconds per cycle\n" + stages.round(2).to_string())
    rmse = card.pivot(index="channel", columns="method", values="rmse_normalised")
    for variant in ("bfloat16_o2lnet", "bfloat16"):
        rmse[f"{variant} / float32"] = rmse[variant] / rmse["float32"]
    print("\nscorecard RMSE / anomaly std\n" + rmse.round(4).to_string())


if __name__ == "__main__":
    main()
