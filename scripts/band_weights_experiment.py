"""Offline: the decoded increment's weights per channel against per channel and octave band.

Runs HLOBA's tuning stream on the calibration year as rule tune_stream's last pass runs it (the
tuned weights of ``--results``, backgrounds kept), then refits the blend weights ``h`` and ``g``
(``hloba.assim.update.fit_blend_weights``) per channel and per channel and band
(``fit_by_band``, ``--bands``) on one half of the tuning period and scores them on the other,
both halves in turn; prints the decoded RMSE per channel (anomaly std) of the background, the
stream's own analysis, the two refits, and the ratio band / channel. A stream that cycles from
the better analyses gains more than this (docs/streams.md, "Weights per band").

    .venv/bin/python scripts/band_weights_experiment.py --results results [--bands 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.tuning import _truth  # noqa: E402
from hloba.assim.update import fit_blend_weights, fit_by_band  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.bands import band_weighted  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.models.autoencoder import decode_all  # noqa: E402
from hloba.runtime import reuse_freed_memory  # noqa: E402
from hloba.timeaxis import cycle_times, period_cycles  # noqa: E402
from hloba.verify.settings import method_settings  # noqa: E402


def blend(x_b, p, q, h, g):
    """``x_b + h (D(z_b) - x_b) + g (D(z_a) - D(z_b))`` with ``p, q`` those two differences."""
    return x_b + band_weighted(p, h) + band_weighted(q, g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--configfile", default=None, help="overlay merged over config.yaml")
    parser.add_argument("--bands", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    config = load_config(*([REPO / "config.yaml"] + ([Path(args.configfile)] if args.configfile else [])))
    years = year_sets(config)
    year = years.calibration[-1]
    cfg = method_settings("hloba", StreamConfig.from_config(config))
    if cfg.decoded_increment != "weighted" or cfg.weighted_state != "blended":
        sys.exit("this experiment refits the blend weights: needs decoded_increment: weighted, weighted_state: blended")
    r = Path(args.results)
    inputs = StreamInputs.from_results(r, config, stream_years(year, cfg.spinup_days, years.all))
    models = method_models(cfg, inputs, "cpu")
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    sl = slice(first, period_cycles(times, first, cfg.tuning_days))
    result = run_period(year, models, inputs.observations, cfg, cfg.tuning_days, RunSettings(progress=False),
                        keep_backgrounds=True)
    x_t, _ = _truth(models, [str(r / f"reference/{year}.nc")], times[sl])
    ae = models.autoencoder
    with torch.no_grad():
        d_b = decode_all(ae, result.fields["z_b"][sl]).cpu().double()
        d_a = decode_all(ae, result.fields["z_a"][sl]).cpu().double()
    x_b = models.normalizer.standardize(result.backgrounds.double(), result.times[sl]).cpu().double()
    p, q, x_t = d_b - x_b, d_a - d_b, x_t.double()
    area = torch.as_tensor(models.grid.area_weights(), dtype=torch.float64)
    w = area[None, None, :, None]
    n, half = len(x_t), len(x_t) // 2
    squares = {"background": 0.0, "stream": 0.0, "per channel": 0.0, f"{args.bands} bands": 0.0}
    for fit, score in ((slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))):
        def sq(x, s=score):
            return ((x - x_t[s]).square() * w).sum(dim=(0, 2, 3))

        h1, g1 = fit_blend_weights(p[fit], q[fit], x_t[fit] - x_b[fit], area)
        hb, gb = fit_by_band(fit_blend_weights, (p[fit], q[fit], x_t[fit] - x_b[fit]), area, args.bands)
        squares["background"] = squares["background"] + sq(x_b[score])
        squares["stream"] = squares["stream"] + sq(
            blend(x_b[score], p[score], q[score], models.projection_weights, models.increment_weights))
        squares["per channel"] = squares["per channel"] + sq(blend(x_b[score], p[score], q[score], h1, g1))
        squares[f"{args.bands} bands"] = squares[f"{args.bands} bands"] + sq(blend(x_b[score], p[score], q[score], hb, gb))
    count = n * w.expand(1, 1, *x_t.shape[-2:]).sum()
    table = pd.DataFrame({k: (v / count).sqrt().numpy() for k, v in squares.items()},
                         index=[c.name for c in models.channels])
    table["band / channel"] = table[f"{args.bands} bands"] / table["per channel"]
    table.loc["mean"] = table.mean()
    print(f"{year}, {n} tuning cycles; weights refitted on one half, scored on the other (RMSE / anomaly std):")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
