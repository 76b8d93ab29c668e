"""Offline test of the latent update's forms on stored HLOBA backgrounds (issue #15, step 1).

    python scripts/likelihood_experiment.py [--results results] [--configfile config.yaml]
        [--days 20] [--spinup 10] [--prior-years 2008]

Runs HLOBA's stream (the paper's posterior-form update, config.yaml settings, the trained models
and the tuning under --results) on the calibration year for --days after --spinup days, keeps every
cycle's background ``w_b``, its variance ``sigma_b2`` (as the stream used it), O2Lnet's
``(z_o, sigma_o2)`` and the encoded truth ``w_t``, all in update coordinates. Then, on the same
backgrounds, it applies each candidate update:

- ``posterior``: the paper's ``hybrid_update(w_b, sb2, w_o, so2)``;
- ``likelihood``: O2Lnet's climatological prior (mean ``mu_c``, variance ``sc2`` of the encoded
  states of --prior-years, per update coordinate) removed first (:func:`hloba.assim.update.likelihood_estimate`),
  then the same update;
- each with the background variance as the stream used it, or recalibrated on the first half of
  the cycles against the background's errors per band or per element;
- ``likelihood (calibration prior)``: as ``likelihood`` with the pipeline's prior (the calibration
  year's, from the calibration file);
- ``posterior+cal``, ``likelihood+cal``: the estimate's variance rescaled per band of update coordinates
  so that ``mean(e^2) / sigma^2 = 1`` on the first half of the cycles (scores on the second half).

It prints, per candidate: the correlation of the background error with the estimate's error
(pooled over informative elements; goal <= 0.1), the mean normalised squared error of the estimate
and of the analysis, the latent analysis RMSE, and the decoded analysis RMSE per channel in
anomaly-std units (area-weighted), on the second half of the cycles.
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

from hloba.assim.cycle import UpdateSpace, mode_groups  # noqa: E402
from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.cycle import group_mean, pooled_correlation  # noqa: E402
from hloba.assim.update import hybrid_update, likelihood_estimate  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.models.autoencoder import decode_all, encode_all  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.states import load_years  # noqa: E402
from hloba.timeaxis import cycle_times, period_cycles  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--days", type=float, default=20.0)
    p.add_argument("--spinup", type=float, default=10.0)
    p.add_argument("--prior-years", default=None, help="comma-separated; default the validation years")
    p.add_argument("--bands", type=int, default=32)
    p.add_argument("--min-information", type=float, default=0.05, help="likelihood_estimate's threshold")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="csv of the table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(REPO / args.configfile)
    years = year_sets(config)
    year = years.calibration[0]
    r = Path(args.results)
    cfg = StreamConfig.from_config(config).with_(method="hloba", spinup_days=args.spinup, update="posterior")
    inputs = StreamInputs.from_results(r, config, stream_years(year, args.spinup, years.all))
    models = method_models(cfg, inputs, "cpu")
    ae = models.autoencoder
    space = UpdateSpace(None if models.space.rotation is None else models.space.rotation.double())
    prior_years = [int(y) for y in args.prior_years.split(",")] if args.prior_years else list(years.validation)

    x_prior, _, _, _ = load_years([r / f"reference/{y}.nc" for y in prior_years], models.normalizer, models.channels)
    w_prior = space.forward(encode_all(ae, x_prior).double())
    mu_c, sc2 = w_prior.mean(0, keepdim=True), w_prior.var(0, keepdim=True)

    result = run_period(year, models, inputs.observations, cfg, args.days, RunSettings(log_every=10**6, progress=False))
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    stop = period_cycles(times, first, args.days)
    sl = slice(first, stop)
    x_ref, t_ref, _, _ = load_years([r / f"reference/{year}.nc"], models.normalizer, models.channels)
    x_t = x_ref[torch.as_tensor(pd.DatetimeIndex(t_ref).get_indexer(times[sl]))]
    w_t = space.forward(encode_all(ae, x_t).double())
    f = {k: v[sl].double() for k, v in result.fields.items()}
    observed = torch.isfinite(f["sigma_o2"]).all(dim=1)
    w_b = space.forward(f["z_b"])[observed]
    sb2 = f["sigma_b2_update"][observed]
    w_o = space.forward(f["z_o"])[observed]
    so2 = space.forward_variance(f["sigma_o2"])[observed]
    w_t, x_t = w_t[observed], x_t[observed]
    n_t, n = w_b.shape
    half = n_t // 2
    groups = mode_groups(n, args.bands)
    weights = models.grid.area_weights()

    w_l, sl2 = likelihood_estimate(w_o, so2, mu_c, sc2, args.min_information)

    def calibrated(est, var):
        """``var`` times its per-band factor mean(e^2)/var on the first half (bands nothing informs keep it)."""
        mask = torch.isfinite(var[:half])
        factor = group_mean(((est - w_t).square() / var)[:half], groups, args.bands, mask)
        factor = torch.where(factor > 0, factor, torch.ones_like(factor))
        print("per-band variance factor (first half):", np.array2string(factor.numpy(), precision=2))
        return est, var * factor[groups][None]

    estimates = {"posterior": (w_o, so2), "posterior+cal": calibrated(w_o, so2), "likelihood": (w_l, sl2),
                 "likelihood+cal": calibrated(w_l, sl2)}
    if models.prior_mean is not None:  # the pipeline's prior: the calibration year's encoded states
        estimates["likelihood+cal (calibration prior)"] = calibrated(*likelihood_estimate(
            w_o, so2, models.prior_mean.double()[None], models.prior_var.double()[None], args.min_information))
    e_b_fit = (w_b - w_t)[:half].square()
    band_factor = group_mean(e_b_fit, groups, args.bands) / group_mean(sb2[:half], groups, args.bands)
    backgrounds = {
        "stream": sb2,  # as the stream used it (hybrid, online inflation, tuned correction)
        "band-cal": sb2 * band_factor[groups][None],  # times mean(e_b^2)/mean(sb2) per band, first half
        "element-cal": sb2 * (e_b_fit.mean(0) / sb2[:half].mean(0))[None],  # the same per element
    }
    candidates = {f"{e} | B {b}": (*estimates[e], backgrounds[b]) for e, b in (
        ("posterior", "stream"), ("likelihood", "stream"), ("likelihood+cal", "stream"),
        ("posterior", "band-cal"), ("likelihood+cal", "band-cal"),
        ("posterior", "element-cal"), ("posterior+cal", "element-cal"), ("likelihood+cal", "element-cal"),
        *((("likelihood+cal (calibration prior)", "element-cal"),) if models.prior_mean is not None else ()))}
    test = slice(half, None)
    e_b = (w_b - w_t)[test]
    rows = []
    # headroom: the best fixed per-element gain k = <(e_b - e_o) e_b> / <(e_b - e_o)^2> on the first half
    # (optimal for correlated errors), and the estimate alone
    d_fit = (w_b - w_o)[:half]
    gain = ((d_fit * (w_b - w_t)[:half]).mean(0) / d_fit.square().mean(0).clamp(min=1e-30)).clamp(0, 1)
    fixed = {"oracle per-element gain (posterior)": w_b + gain[None] * (w_o - w_b), "estimate alone (posterior)": w_o}
    for name, values in list(candidates.items()) + [(k, None) for k in fixed]:
        if values is None:
            w_a, sa2, est, var = fixed[name], torch.ones_like(w_b), w_o, so2
        else:
            est, var, b2 = values
            w_a, sa2 = hybrid_update(w_b, b2, est, var)
        mask = torch.isfinite(var[test])
        e_o = (est - w_t)[test]
        x_a = decode_all(ae, space.backward(w_a[test]).float())
        row = {
            "candidate": name,
            "informative_fraction": float(mask.double().mean()),
            "corr_eb_eo": pooled_correlation(e_b, e_o, mask),
            "estimate_mnse": float(((e_o.square() / var[test])[mask]).mean()),
            "analysis_mnse": float(((w_a - w_t)[test].square() / sa2[test]).mean()),
            "latent_rmse_analysis": float((w_a - w_t)[test].square().mean().sqrt()),
        }
        err = rmse(x_a.double(), x_t[test].double(), weights).numpy()
        row.update({c.name: float(e) for c, e in zip(models.channels, err)})
        row["mean_channels"] = float(np.mean(err))
        rows.append(row)
    x_b = decode_all(ae, space.backward(w_b[test]).float())
    err_b = rmse(x_b.double(), x_t[test].double(), weights).numpy()
    rows.append({"candidate": "background", "latent_rmse_analysis": float(e_b.square().mean().sqrt()),
                 **{f"background_mnse B {b}": float((e_b.square() / v[test]).mean()) for b, v in backgrounds.items()},
                 **{c.name: float(e) for c, e in zip(models.channels, err_b)}, "mean_channels": float(np.mean(err_b))})
    table = pd.DataFrame(rows).set_index("candidate")
    pd.set_option("display.width", 250)
    print(f"calibration year {year}: {n_t} observed cycles ({n_t - half} scored) after {args.spinup} days of "
          f"spin-up; prior from {prior_years}; {args.bands} bands")
    summary = [c for c in table.columns if c not in [ch.name for ch in models.channels]]
    print(table[summary].round(4).to_string())
    print("decoded analysis RMSE / anomaly std (second half)")
    print(table[[ch.name for ch in models.channels] + ["mean_channels"]].rename(
        columns=lambda c: "".join(w[:3] for w in c.split("_"))).round(4).to_string())
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
