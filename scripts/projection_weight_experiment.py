"""How much of the background that the autoencoder cannot represent is worth keeping, per channel
(offline, on a finished pipeline's files).

HLOBA's weighted analysis starts from the decoded background ``D(z_b)``; ``weighted_state:
incremental`` starts from the background ``x_b`` itself. Between the two,

    x_h = x_b + h_c (D(z_b) - x_b) + g_c (D(z_a) - D(z_b))

keeps ``1 - h_c`` of the background's unrepresented part. This script runs HLOBA with the
pipeline's tuning over the calibration year's tuning period and the comparison period, keeping the
backgrounds, fits ``(h_c, g_c)`` per channel by least squares against the truth on the first and
scores, on the second, the decoded RMSE / anomaly std of ``x_b``, ``D(z_b)``, the stream's own
analysis, ``h = 1`` (the stream's ``g``), ``h = 0`` (``g`` refitted), the unconstrained joint fit and
the fit in ``[0, 1]^2`` that rule tune_stream makes (:func:`hloba.assim.update.fit_blend_weights`).

    python scripts/projection_weight_experiment.py [--results results] [--configfile config.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.update import fit_blend_weights, fit_increment_weights  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.models.autoencoder import decode_all  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.verify.compare import truth_on  # noqa: E402

RUN = RunSettings(device="cpu", progress=False)


def sample(results: Path, config: dict, cfg: StreamConfig, year: int, days: float, spinup: float):
    """Standardised ``x_b, D(z_b), D(z_a), x_a, truth`` over ``days`` of ``year`` after ``spinup``."""
    cfg = cfg.with_(method="hloba", spinup_days=spinup)
    inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=True)
    m = method_models(cfg, inputs, "cpu")
    r = run_period(year, m, inputs.observations, cfg, days, RUN, keep_analyses=True, keep_backgrounds=True)
    n = int(round(pd.Timedelta(days=days) / m.interval))
    times = r.times[r.first:r.first + n]
    sl = slice(r.first, r.first + n)
    std = m.normalizer.standardize
    x_b = std(r.backgrounds[:n].double(), times)
    x_a = std(r.analyses[:n].double(), times)
    with torch.no_grad():
        d_b = decode_all(m.autoencoder, r.fields["z_b"][sl]).double()
        d_a = decode_all(m.autoencoder, r.fields["z_a"][sl]).double()
    truth = std(truth_on([results / f"reference/{year}.nc"], times, m.channels).double(), times)
    return x_b, d_b, d_a, x_a, truth, m


def joint_fit(x_b, d_b, d_a, truth, area) -> tuple[np.ndarray, np.ndarray]:
    """Per channel the least-squares ``(h, g)`` of ``truth - x_b ~ h (d_b - x_b) + g (d_a - d_b)``."""
    w = area[None, None, :, None]
    p, q, y = d_b - x_b, d_a - d_b, truth - x_b
    dims = (0, 2, 3)
    a11, a12, a22 = (p * p * w).sum(dims), (p * q * w).sum(dims), (q * q * w).sum(dims)
    b1, b2 = (p * y * w).sum(dims), (q * y * w).sum(dims)
    det = a11 * a22 - a12 * a12
    h, g = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
    return h.numpy(), g.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(REPO / args.configfile)
    cfg = StreamConfig.from_config(config)
    years = year_sets(config)
    comparison = config.get("comparison") or {}
    fit_year, cmp_year = years.calibration[-1], comparison.get("year") or years.reanalysis[-1]
    x_b, d_b, d_a, _, truth, m = sample(results, config, cfg, fit_year, cfg.tuning_days, cfg.spinup_days)
    area = torch.as_tensor(m.grid.area_weights(), dtype=torch.float64)
    h, g = joint_fit(x_b, d_b, d_a, truth, area)
    g0 = m.increment_weights.double().numpy()
    if g0.ndim > 1:
        sys.exit("the tuning holds a weight per channel and band (assimilation.increment_bands): this experiment "
                 "compares weights per channel; tune with increment_bands: 1")
    g_inc = fit_increment_weights(d_a - d_b, truth - x_b, area).numpy()  # h = 0: incremental's fit
    h_box, g_box = (v.numpy() for v in fit_blend_weights(d_b - x_b, d_a - d_b, truth - x_b, area))  # the pipeline's
    x_b, d_b, d_a, x_a, truth, m = sample(results, config, cfg, cmp_year, comparison.get("days", 20),
                                          comparison.get("spinup_days", 10))

    def score(x):
        return rmse(x, truth, m.grid.area_weights()).double().numpy()

    def combo(hh, gg):
        hh, gg = (torch.as_tensor(v, dtype=torch.float64)[None, :, None, None] for v in (hh, gg))
        return x_b + hh * (d_b - x_b) + gg * (d_a - d_b)

    names = [c.name for c in m.channels]
    table = pd.DataFrame({
        "h_fit": h, "g_fit": g, "g_stream": g0, "g_h0": g_inc,
        "x_b": score(x_b), "D(z_b)": score(d_b), "stream x_a": score(x_a),
        "h=1 (stream g)": score(combo(np.ones_like(h), g0)), "h=0 (g refit)": score(combo(np.zeros_like(h), g_inc)),
        "joint fit": score(combo(h, g)), "h_box": h_box, "g_box": g_box, "in [0,1]^2": score(combo(h_box, g_box)),
    }, index=names)
    table.loc["mean"] = table.mean()
    pd.set_option("display.width", 250)
    print(f"fitted on {fit_year}'s first {cfg.tuning_days:g} days, scored on {cmp_year}'s comparison period "
          "(RMSE of standardised anomalies = RMSE / anomaly std)")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
