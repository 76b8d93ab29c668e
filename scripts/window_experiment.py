"""Offline test of windowed O2Lnet (issue #15, step 2): does a window of cycles' observations
estimate the state better than one cycle's, and where should the window sit?

    python scripts/window_experiment.py [--results results] [--configfile config.yaml]
        [--epochs 8] [--windows "0;-3,-2,-1,0;0,1,2,3;-1,0,1,2"]

Each window is a list of cycle offsets relative to the estimated time (``-3,-2,-1,0``: the last
24 hours of 6-hourly cycles, a filter; ``0,1,2,3``: the next 24 hours, l4dvar's alignment, a
smoother; ``0``: the pipeline's O2Lnet). For each, O2Lnet is trained as rule train_o2lnet does
(config.yaml's architecture, loss and training settings, the trained autoencoder and the files
under --results) but for --epochs epochs, so that every window gets the same budget, and its
validation report is printed: decoded RMSE / anomaly std per channel and the calibration
``mean((z_o - z_t)^2 / sigma_o2)``. The checkpoints go to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.config import load_config, year_sets  # noqa: E402
from hloba.models.train_o2lnet import O2LnetTraining, train_o2lnet  # noqa: E402
from hloba.models.training import TrainingConfig  # noqa: E402

ARCHITECTURE = ("width", "blocks")
LOSS = ("decoder_weight", "min_keep", "network_dropout", "channel_weights")
TRAINING = ("batch_size", "learning_rate", "samples_per_epoch", "seed", "device")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--windows", default="0;-3,-2,-1,0;0,1,2,3;-1,0,1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="csv of the table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(REPO / args.configfile)
    years = year_sets(config)
    r = Path(args.results)
    section = config.get("o2lnet", {})
    training = {k: section[k] for k in TRAINING if k in section} | config.get("training", {})
    training = TrainingConfig(**{**training, "epochs": args.epochs, "patience": args.epochs, "max_minutes": None})
    options = O2LnetTraining(**{k: section[k] for k in LOSS if k in section})
    refs = {kind: [str(r / f"reference/{y}.nc") for y in ys] for kind, ys in
            (("train", years.training), ("validation", years.validation))}
    obs = {kind: [str(r / f"obs/{y}.parquet") for y in ys] for kind, ys in
           (("train", years.training), ("validation", years.validation))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for window in args.windows.split(";"):
            slots = tuple(int(s) for s in window.split(","))
            architecture = {k: section[k] for k in ARCHITECTURE if k in section} | {"slots": slots}
            start = time.perf_counter()
            report = train_o2lnet(refs["train"], obs["train"], refs["validation"], obs["validation"],
                                  r / "models/autoencoder.pt", f"{tmp}/o2lnet.pt", f"{tmp}/report.json",
                                  architecture, training, options, progress=False)
            rmse = report["validation_rmse_over_anomaly_std"]
            rows.append({"slots": window, **rmse, "mean": sum(rmse.values()) / len(rmse),
                         "calibration": report["calibration_mean_normalized_squared_error"],
                         "best_validation_loss": min(h["validation_loss"] for h in report["history"]),
                         "minutes": (time.perf_counter() - start) / 60})
            print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False), flush=True)
            print("  validation loss by epoch:", " ".join(f"{h['validation_loss']:.3f}" for h in report["history"]),
                  flush=True)
    table = pd.DataFrame(rows).set_index("slots")
    pd.set_option("display.width", 250)
    print(f"O2Lnet validation ({list(years.validation)}), {args.epochs} epochs each: decoded RMSE / anomaly std")
    print(table.rename(columns=lambda c: "".join(w[:3] for w in c.split("_"))).round(4).to_string())
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
