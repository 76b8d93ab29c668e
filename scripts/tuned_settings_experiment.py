"""HLOBA's assimilation settings compared as the pipeline would run them: each variant tuned by
rule tune_stream's code on the calibration year, then run on the comparison period (offline, on a
finished pipeline's files).

    python scripts/tuned_settings_experiment.py [--results results] [--configfile config.yaml]
        [--out-dir DIR] VARIANT [VARIANT ...]

A variant is ``name:key=value,key=value`` of ``assimilation`` settings over config.yaml's (``base:``
for none), e.g. ``corr:correlated_gain=true``. For each the tuning is written (``tuning_{name}.nc``)
and HLOBA runs the comparison period with it; the table gives the decoded analysis RMSE / anomaly
std per channel, the tuning's latent analysis RMSE, its per-band background and estimate variance
ratios and the background/estimate error correlation.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from cycling_covariance_experiment import RUN, channel_names, score  # noqa: E402
from hloba.assim.settings import StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.tuning import tune_stream_file  # noqa: E402
from hloba.cli import parse_set  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("variants", nargs="+", help="name:key=value,key=value (name: for config.yaml's settings)")
    p.add_argument("--out-dir", default="results/experiments/tuned_settings")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(REPO / args.configfile)
    cfg = StreamConfig.from_config(config)
    years = year_sets(config)
    year = years.calibration[-1]  # rule tune_stream's year
    cmp_year = (config.get("comparison") or {}).get("year") or years.reanalysis[-1]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tuning_inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=False)
    references = [results / f"reference/{y}.nc" for y in (year - 1, year)]
    names = channel_names(results)
    rows = []
    for variant in args.variants:
        n, _, sets = variant.partition(":")
        c = cfg.with_(**parse_set([item for item in sets.split(",") if item]))
        tuning_path = out / f"tuning_{n}.nc"
        tuned = tune_stream_file(year, tuning_inputs, references, tuning_path, c, RUN)
        inputs = replace(StreamInputs.from_results(results, config, (cmp_year - 1, cmp_year), tuning=True),
                         tuning=str(tuning_path))
        err = score(results, config, c, inputs)
        b, o = tuned["background_variance_ratio"].values, tuned["observation_variance_ratio"].values
        rows.append({"variant": n, **dict(zip(names, err)), "mean": err.mean(),
                     "tuning_latent_rmse": tuned.attrs["latent_rmse_analysis_pass2"],
                     "b_ratio": f"{b.min():.2f}-{b.max():.2f}", "o_ratio": f"{o.min():.2f}-{o.max():.2f}",
                     "error_correlation": tuned.attrs["error_correlation_pooled"]})
        print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).set_index("variant")
    pd.set_option("display.width", 250)
    print(f"\nHLOBA analysis RMSE / anomaly std on {cmp_year}'s comparison period, tuned on {year}")
    print(table.rename(columns=lambda s: "".join(w[:3] for w in s.split("_"))).round(4).to_string())
    table.to_csv(out / "summary.csv")


if __name__ == "__main__":
    main()
