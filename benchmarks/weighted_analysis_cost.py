"""HLOBA's weighted analysis per cycle, each ``assimilation.weighted_state`` on the same models.

    python benchmarks/weighted_analysis_cost.py [--results results] [--reps 300] [--threads 2]

Times :meth:`hloba.assim.methods.hloba.Hloba.weighted_analysis` (the two decodings of ``z_b`` and
``z_a`` and, for ``projected`` and ``incremental``, the encoding of the record ``E(x_w)``) on one
random latent pair, the forms interleaved in one process so that the host's drift reaches each
alike; prints the median and minimum milliseconds of each form and the medians' ratios to
``projected``. Needs the trained autoencoder and a stream tuning with increment weights under
``--results`` (rule tune_stream's, with ``decoded_increment: weighted``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int)
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    from hloba.assim.methods.hloba import Hloba
    from hloba.assim.models import method_models
    from hloba.assim.settings import StreamConfig, StreamInputs
    from hloba.config import load_config, stream_years, year_sets

    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / args.configfile)
    years = year_sets(cfg)
    year = args.year or years.reanalysis[-1]
    settings = StreamConfig.from_config(cfg).with_(decoded_increment="weighted")
    inputs = StreamInputs.from_results(Path(args.results), cfg, stream_years(year, 0, years.all), tuning=True)
    models = method_models(settings, inputs, "cpu")
    if models.increment_weights is None:
        sys.exit(f"{args.results}/ensemble/stream_tuning.nc has no increment weights: tune with decoded_increment: weighted")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, models.autoencoder.cfg.n_latent, generator=g)
    x_b = torch.randn(models.autoencoder.decode(z[:1]).shape, generator=g)
    if models.projection_weights is None:  # a tuning of another state: the blend's cost does not depend on them
        models.projection_weights = torch.full((len(models.channels),), 0.5, dtype=torch.float64)
    forms = {s: Hloba(models, settings.with_(weighted_state=s))
             for s in ("projected", "combined", "incremental", "blended")}
    seconds = {s: [] for s in forms}
    with torch.no_grad():
        for _ in range(args.reps):
            for s, method in forms.items():
                t = time.perf_counter()
                method.weighted_analysis(z[:1], z[1:], x_b if s in ("incremental", "blended") else None)
                seconds[s].append(time.perf_counter() - t)
    base = statistics.median(seconds["projected"])
    print(f"weighted_analysis, {args.reps} interleaved repetitions, {args.threads} threads")
    for s, v in seconds.items():
        print(f"{s:12s} median {1e3 * statistics.median(v):6.2f} ms  min {1e3 * min(v):6.2f} ms  "
              f"median / projected {statistics.median(v) / base:.3f}")


if __name__ == "__main__":
    main()
