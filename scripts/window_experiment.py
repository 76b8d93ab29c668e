"""Offline test of windowed O2Lnet (issue #15, step 2): does a window of cycles' observations
estimate the state better than one cycle's, and where should the window sit?

    python scripts/window_experiment.py [--results results] [--configfile config.yaml]
        [--epochs 8] [--windows "0;-3,-2,-1,0;0,1,2,3;-1,0,1,2"] [--set learning_rate=0.002 ...]

Each window is a list of cycle offsets relative to the estimated time (``-3,-2,-1,0``: the last
24 hours of 6-hourly cycles, a filter; ``0,1,2,3``: the next 24 hours, l4dvar's alignment, a
smoother; ``0``: the pipeline's O2Lnet). For each, O2Lnet is trained as rule train_o2lnet does
(config.yaml's architecture, loss and training settings, the trained autoencoder and the files
under --results) but for --epochs epochs, so that every window gets the same budget, and its
validation report is printed (``--set`` changes a training setting for every window, e.g. the
learning rate and its warmup, the precision, or the network's width and blocks): decoded RMSE / anomaly std per channel and the calibration
``mean((z_o - z_t)^2 / sigma_o2)``. The checkpoints go to ``--checkpoints`` (a temporary folder
without it); a checkpoint already there for the same window and epochs is reused.

With ``--stream`` each window's O2Lnet is then used as the pipeline would use it: rule tune_stream's
code tunes HLOBA with it on the calibration year (a window that reaches later cycles makes HLOBA a
fixed-lag smoother: ``o2lnet.window_lead_hours``), and HLOBA runs the comparison period; the table
adds its decoded analysis RMSE / anomaly std per channel (``stream_*``), the mean, and the
tuning's background/estimate error correlation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from hloba.assim.settings import StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.tuning import tune_stream_file  # noqa: E402
from hloba.cli import parse_set  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.models.settings import LOSS_KEYS, O2LnetTraining, TrainingConfig  # noqa: E402
from hloba.models.train_o2lnet import train_o2lnet  # noqa: E402

ARCHITECTURE = ("width", "blocks")
LOSS = LOSS_KEYS  # O2LnetTraining's fields
# the training loop's settings that --set may change: TrainingConfig's but the epochs and the stopping,
# which the script sets (--epochs, no early stop, no time cap)
TRAINING = tuple(f.name for f in fields(TrainingConfig) if f.name not in ("epochs", "patience", "max_minutes"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--windows", default="0;-3,-2,-1,0;0,1,2,3;-1,0,1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="csv of the table")
    p.add_argument("--checkpoints", default=None, help="folder that keeps (and reuses) each window's O2Lnet")
    p.add_argument("--stream", action="store_true", help="also tune HLOBA with each and score the comparison period")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training setting over config.yaml's o2lnet and training sections (e.g. "
                        "learning_rate=0.002, warmup_epochs=1, precision=float32) or loss setting (decoder_weight=0); "
                        "repeatable")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(REPO / args.configfile)
    years = year_sets(config)
    r = Path(args.results)
    section = config.get("o2lnet", {})
    training = {k: section[k] for k in TRAINING if k in section} | config.get("training", {})
    overrides = parse_set(args.set)
    unknown = sorted(set(overrides) - set(TRAINING) - set(LOSS) - set(ARCHITECTURE))
    if unknown:
        p.error(f"--set {unknown}: only the training settings {TRAINING}, the loss's {LOSS} and the network's "
                f"{ARCHITECTURE} (the epochs: --epochs)")
    loss = {k: v for k, v in overrides.items() if k in LOSS}
    network = {k: v for k, v in overrides.items() if k in ARCHITECTURE}
    overrides = {k: v for k, v in overrides.items() if k in TRAINING}
    training = TrainingConfig(**{**training, **overrides, "epochs": args.epochs, "patience": args.epochs,
                                 "max_minutes": None})
    options = O2LnetTraining(**({k: section[k] for k in LOSS if k in section} | loss))
    refs = {kind: [str(r / f"reference/{y}.nc") for y in ys] for kind, ys in
            (("train", years.training), ("validation", years.validation))}
    obs = {kind: [str(r / f"obs/{y}.parquet") for y in ys] for kind, ys in
           (("train", years.training), ("validation", years.validation))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(args.checkpoints or tmp)
        keep.mkdir(parents=True, exist_ok=True)
        for window in args.windows.split(";"):
            slots = tuple(int(s) for s in window.split(","))
            architecture = {k: section[k] for k in ARCHITECTURE if k in section} | network | {"slots": slots}
            name = f"o2lnet_{window.replace(',', '_')}_{args.epochs}ep"
            checkpoint, report_path = keep / f"{name}.pt", keep / f"{name}.json"
            start = time.perf_counter()
            if checkpoint.exists() and report_path.exists():
                report = json.loads(report_path.read_text())
            else:
                report = train_o2lnet(refs["train"], obs["train"], refs["validation"], obs["validation"],
                                      r / "models/autoencoder.pt", checkpoint, report_path,
                                      architecture, training, options, progress=False)
            rmse = report["validation_rmse_over_anomaly_std"]
            row = {"slots": window, **rmse, "mean": sum(rmse.values()) / len(rmse),
                   "calibration": report["calibration_mean_normalized_squared_error"],
                   "best_validation_loss": min(h["validation_loss"] for h in report["history"]),
                   "minutes": (time.perf_counter() - start) / 60}
            print("  validation loss by epoch:", " ".join(f"{h['validation_loss']:.3f}" for h in report["history"]),
                  flush=True)
            if args.stream:
                row.update(stream_scores(r, config, checkpoint, keep / f"tuning_{name}.nc"))
            rows.append(row)
            print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).set_index("slots")
    pd.set_option("display.width", 250)
    print(f"O2Lnet validation ({list(years.validation)}), {args.epochs} epochs each: decoded RMSE / anomaly std")
    print(table.rename(columns=lambda c: "".join(w[:3] for w in c.split("_"))).round(4).to_string())
    if args.out:
        table.to_csv(args.out)


def stream_scores(results: Path, config: dict, o2lnet, tuning_path) -> dict:
    """HLOBA with ``o2lnet``: tuned by rule tune_stream's code, scored on the comparison period."""
    from cycling_covariance_experiment import RUN, channel_names, score

    years = year_sets(config)
    year = years.calibration[-1]
    cmp_year = (config.get("comparison") or {}).get("year") or years.reanalysis[-1]
    cfg = StreamConfig.from_config(config)
    inputs = replace(StreamInputs.from_results(results, config, (year - 1, year), tuning=False), o2lnet=str(o2lnet))
    tuned = tune_stream_file(year, inputs, [results / f"reference/{y}.nc" for y in (year - 1, year)], tuning_path,
                             cfg, RUN)
    inputs = replace(StreamInputs.from_results(results, config, (cmp_year - 1, cmp_year), tuning=True),
                     o2lnet=str(o2lnet), tuning=str(tuning_path))
    err = score(results, config, cfg, inputs)
    names = channel_names(results)
    return {**{f"stream_{n}": float(e) for n, e in zip(names, err)}, "stream_mean": float(err.mean()),
            "error_correlation": tuned.attrs["error_correlation_pooled"]}


if __name__ == "__main__":
    main()
