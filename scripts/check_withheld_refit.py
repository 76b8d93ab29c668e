"""HLOBA with observations withheld, its tuning and O2Lnet's refinement redone without them (issue 17).

``scripts/check_withheld.py`` runs every method with a finished run's tuning and refined O2Lnet,
both made from streams that saw every station. A pipeline run with ``evaluation.withhold`` makes
them from streams that withhold (rules tune_stream_base, refine_o2lnet and tune_stream all run
HLOBA's streams with the config's ``evaluation.withhold``). This script redoes that chain with
``--fraction`` withheld (``--seed``'s draw): the tuning for the trained O2Lnet, the refinement from
it, the tuning for the refined network; then scores HLOBA and HLOBA with the trained network
(``hloba_unrefined``) on the comparison period with the same stations withheld, beside the same two
without withholding (the finished run's own files), as rule compare_method runs them. O2Lnet's
training is not redone: it learns from simulated observations, not from assimilated ones. About 35
minutes a draw on the default world (the refinement about 20; docs/verification.md).

    .venv/bin/python scripts/check_withheld_refit.py --results results --fraction 0.1 --seed 0 \\
        [--keep DIR]   # DIR: the refit networks, tunings and analyses
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.refine import refine_o2lnet_file  # noqa: E402
from hloba.assim.settings import RefineSettings  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.tuning import tune_stream_file  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.verify.compare import run_method, scorecard  # noqa: E402
from hloba.verify.settings import ComparisonSettings, method_settings, trained_o2lnet, trained_o2lnet_tuning  # noqa: E402

from check_withheld import print_scorecard_changes, withholding_parser  # noqa: E402  (this folder's)


def refit(results: Path, config: dict, cfg: StreamConfig, out: Path, run: RunSettings) -> dict:
    """Rules tune_stream_base, refine_o2lnet and tune_stream with ``cfg`` (its withholding) into
    ``out``: ``{"trained": (o2lnet, tuning), "refined": (o2lnet, tuning)}``."""
    years = year_sets(config)
    year = years.calibration[-1]
    settings = RefineSettings.from_dict((config.get("o2lnet") or {}).get("refine"))
    inputs = StreamInputs.from_results(results, config, years.all, tuning=False)  # each stream its years' files
    tuning_inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=False)
    trained = trained_o2lnet(results)
    tuning_base, refined, tuning = out / "stream_tuning_base.nc", out / "o2lnet.pt", out / "stream_tuning.nc"
    own = [results / f"reference/{y}.nc" for y in (year - 1, year)]
    start = time.perf_counter()
    tune_stream_file(year, replace(tuning_inputs, o2lnet=trained), own, tuning_base, cfg, run)
    print(f"tuning for the trained O2Lnet: {time.perf_counter() - start:.0f} s", flush=True)
    references = [str(results / f"reference/{y}.nc") for y in (*settings.years, year)]
    report = refine_o2lnet_file(settings, year, replace(inputs, o2lnet=trained, tuning=str(tuning_base)),
                                references, refined, out / "o2lnet_refine_report.json", cfg, run)
    print(f"refined (kept epoch {report['kept_epoch']}): {time.perf_counter() - start:.0f} s", flush=True)
    tune_stream_file(year, replace(tuning_inputs, o2lnet=str(refined)), own, tuning, cfg, run)
    print(f"tuning for the refined O2Lnet: {time.perf_counter() - start:.0f} s", flush=True)
    return {"trained": (trained, str(tuning_base)), "refined": (str(refined), str(tuning))}


def main() -> None:
    parser = withholding_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", default=None, help="folder to keep the refit files and analyses in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    config = load_config(*([REPO / "config.yaml"] + ([Path(args.configfile)] if args.configfile else [])))
    r, years = Path(args.results), year_sets(config)
    comparison = ComparisonSettings.from_config(config)
    year = comparison.compared_year(years.reanalysis)
    cfg = method_settings("hloba", StreamConfig.from_config(config))
    withheld = cfg.with_(withhold_fraction=args.fraction, withhold_seed=args.seed)
    run = RunSettings(progress=False, device="cpu")
    with xr.open_dataset(r / "prep/normalization.nc") as norm:
        std = norm["anomaly_std"].values
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as tmp:
        tmp = Path(tmp)
        fitted = {0.0: {"trained": (trained_o2lnet(r), trained_o2lnet_tuning(r)),
                        "refined": (str(r / "models/o2lnet.pt"), str(r / "ensemble/stream_tuning.nc"))},
                  args.fraction: refit(r, config, withheld, tmp, run)}
        inputs = StreamInputs.from_results(r, config, stream_years(year, comparison.spinup_days, years.all))
        cards = {}
        for fraction, nets in fitted.items():
            runs = {}
            for name, net in (("hloba", "refined"), ("hloba_unrefined", "trained")):
                o2lnet, tuning = nets[net]
                runs[name] = run_method(
                    name, year, comparison.days, replace(inputs, o2lnet=o2lnet, tuning=tuning),
                    tmp / f"{name}-{fraction}.nc", withheld.with_(withhold_fraction=fraction),
                    spinup_days=comparison.spinup_days, run=run)
            cards[fraction] = scorecard(runs, [r / f"reference/{year}.nc"], std)
    print(f"{year}, {args.fraction:.0%} withheld (seed {args.seed}), the tuning and the refinement redone with "
          "them withheld:")
    print_scorecard_changes(cards, args.fraction)


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
