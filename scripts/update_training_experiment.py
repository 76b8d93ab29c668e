"""Offline: O2Lnet refined through HLOBA's update on a finished pipeline's files (o2lnet.refine).

Runs what rule refine_o2lnet runs (:mod:`hloba.assim.refine`) with the settings given here on
``--results`` (its O2Lnet and its tuning): HLOBA's streams over ``--days`` of each of
``--train-years`` recorded, O2Lnet fine-tuned for ``--epochs`` through the update, scored on the
calibration year's tuning period. Prints, per channel, the analysis RMSE (anomaly std) with the
pipeline's O2Lnet and with the refined one on the same backgrounds (offline: no cycling), and the
correlation of the decoded estimate's errors with the decoded background's; writes the refined
checkpoint to ``--out``. A copy of the results with it as ``results/models/o2lnet.pt`` and
``snakemake --cores 2 results/comparison/scorecard.csv`` measures it in cycling, the tuning redone.
On results whose O2Lnet is refined already, ``--round 2`` makes a second round (docs/streams.md).

    .venv/bin/python scripts/update_training_experiment.py --results results --train-years 2005 2007 2008 \\
        --epochs 3 --nll-weight 1.0 --out /tmp/o2lnet_refined.pt
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

from hloba.assim.refine import refine_o2lnet_file  # noqa: E402
from hloba.assim.settings import RefineSettings  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.runtime import reuse_freed_memory  # noqa: E402
from hloba.verify.settings import method_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--configfile", default=None, help="overlay merged over config.yaml")
    parser.add_argument("--train-years", type=int, nargs="+", required=True)
    parser.add_argument("--days", type=float, default=365.0, help="days of each training year")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--nll-weight", type=float, default=1.0)
    parser.add_argument("--min-keep", type=float, default=1.0, help="thin each window by grid cell to [min_keep, 1]")
    parser.add_argument("--round", type=int, default=1,
                        help="the refinement round it makes (2: --results hold round 1's network and its tuning)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the refined O2Lnet checkpoint here")
    args = parser.parse_args()
    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    config = load_config(*([REPO / "config.yaml"] + ([Path(args.configfile)] if args.configfile else [])))
    cfg, years = method_settings("hloba", StreamConfig.from_config(config)), year_sets(config)
    results, start = Path(args.results), time.perf_counter()
    settings = RefineSettings(enabled=True, years=tuple(args.train_years), days=args.days, epochs=args.epochs,
                              learning_rate=args.learning_rate, nll_weight=args.nll_weight, min_keep=args.min_keep)
    inputs = StreamInputs.from_results(results, config, years.all)  # each stream takes its own years' files
    references = [str(results / f"reference/{y}.nc") for y in (*settings.years, years.calibration[-1])]
    with tempfile.TemporaryDirectory() as tmp:  # rule refine_o2lnet's work, its outputs kept on request
        report = refine_o2lnet_file(settings, years.calibration[-1], inputs, references,
                                    args.out or Path(tmp) / "o2lnet.pt", Path(tmp) / "report.json", cfg,
                                    RunSettings(progress=False, device="cpu"), round_index=args.round)
    for e in report["epochs"]:
        print(f"epoch {e['epoch']}: loss {e['loss']:.4f}, validation analysis RMSE mean {e['analysis_rmse_mean']:.4f}, "
              f"corr(e_o, e_b) mean {e['error_correlation_mean']:.3f}")
    table = pd.DataFrame({"pipeline O2Lnet": report["analysis_rmse_before"], "refined": report["analysis_rmse_after"],
                          "corr(e_o, e_b) before": report["error_correlation_before"],
                          "after": report["error_correlation_after"]}, index=report["channels"])
    table.insert(2, "ratio", table["refined"] / table["pipeline O2Lnet"])
    table.loc["mean"] = table.mean()
    print(f"kept epoch {report['kept_epoch']}; {years.calibration[-1]}, {report['valid_cycles']} cycles, offline "
          f"(the pipeline O2Lnet's backgrounds; RMSE / anomaly std; {time.perf_counter() - start:.0f} s):")
    print(table.round(4).to_string())
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
