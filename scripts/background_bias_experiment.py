"""How much of HLOBA's background error is the forecast model's bias, and what a better weighing
could gain (issue #15, step 3; offline, on a finished pipeline's files).

    python scripts/background_bias_experiment.py [--results results] [--configfile config.yaml]
        [--subtract-bias] [--tuning FILE]

1. The latent bias of one forecast step from the truth on the calibration year (what
   generate_lagged_ensemble's static variance ``sigma_clim2 = mean(e^2)`` is made of):
   RMS of ``mean_t e`` against the RMS of ``e``, and how alike the year's and the winter's means are.
2. HLOBA's stream on the comparison period (``comparison.year``, ``spinup_days``, ``days``; the
   pipeline's models and tuning): decoded RMSE / anomaly std per channel of the estimate ``z_o``,
   the background ``z_b``, the background less the calibration year's bias, and the analysis
   ``z_a``, each with the RMS of its time-mean error (its bias).
3. The ceiling of an element-wise update on those inputs: the constant gain per element (latent
   and rotated coordinates) that best fits the truth of the same period (in-sample, an upper bound).

``--subtract-bias`` runs the stream with the calibration year's bias subtracted from every
member's latent forecast before the update (and ``--tuning`` a tuning file made the same way,
e.g. by ``--retune FILE``, which runs rule tune_stream's streams with the subtraction and writes it).
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

from hloba.assim.methods import REGISTRY  # noqa: E402
from hloba.assim.methods.hloba import Hloba  # noqa: E402
from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs, results_forecast  # noqa: E402
from hloba.assim.tuning import tune_stream_file  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.ensemble.calibration import lagged_forecasts  # noqa: E402
from hloba.ensemble.generate import latent_encoder  # noqa: E402
from hloba.models.autoencoder import load_autoencoder  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.states import load_years  # noqa: E402
from hloba.verify.compare import truth_on  # noqa: E402

RUN = RunSettings(device="cpu", progress=False)


def model_bias(results: Path, config: dict, year: int) -> torch.Tensor:
    """Mean latent error of one forecast step from the truth over ``year``; prints its share."""
    ae, payload = load_autoencoder(results / "models/autoencoder.pt")
    x, times, channels, _ = load_years([results / f"reference/{year}.nc"])
    model = results_forecast(results, config).build(channels)
    lagged = lagged_forecasts(model, latent_encoder(ae, Normalizer.from_state(payload["normalizer"])), x, times, 2,
                              progress=False)
    e = (lagged.members[:, 0] - lagged.z).double()
    bias = e.mean(0)
    winter = torch.as_tensor(lagged.times.month.isin([12, 1, 2]))
    print(f"latent error of one forecast step from the truth, {year}: RMS {e.square().mean().sqrt():.4f}, "
          f"of its time mean (bias) {bias.square().mean().sqrt():.4f}; winter mean RMS "
          f"{e[winter].mean(0).square().mean().sqrt():.4f}, correlation with the year's "
          f"{torch.corrcoef(torch.stack([bias, e[winter].mean(0)]))[0, 1]:.4f}")
    return bias.float()


def bias_corrected(bias: torch.Tensor) -> type:
    class BiasCorrectedHloba(Hloba):
        def analyse(self, c):
            return super().analyse(replace(c, zs=c.zs - bias.to(c.zs)))
    return BiasCorrectedHloba


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--subtract-bias", action="store_true")
    p.add_argument("--tuning", default=None, help="tuning file instead of results/ensemble/stream_tuning.nc")
    p.add_argument("--retune", default=None, help="write a tuning file made with --subtract-bias's streams")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(REPO / args.configfile)
    years, comparison = year_sets(config), config.get("comparison", {})
    calibration_year = years.calibration[0]
    year = comparison.get("year") or years.reanalysis[-1]
    bias = model_bias(results, config, calibration_year)
    cfg = StreamConfig.from_config(config)
    if args.subtract_bias:
        REGISTRY["hloba"] = bias_corrected(bias)
    if args.retune:
        tuning_inputs = StreamInputs.from_results(results, config, (calibration_year - 1, calibration_year),
                                                  tuning=False)
        tune_stream_file(calibration_year, tuning_inputs, [results / f"reference/{y}.nc" for y in
                                                           (calibration_year - 1, calibration_year)], args.retune,
                         cfg, RUN)
        args.tuning = args.retune
    cfg = cfg.with_(method="hloba", spinup_days=comparison.get("spinup_days", 10))
    inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=True)
    inputs = replace(inputs, tuning=args.tuning) if args.tuning else inputs
    m = method_models(cfg, inputs, "cpu")
    days = comparison.get("days", 20)
    r = run_period(year, m, inputs.observations, cfg, days, RUN)
    sl = slice(r.first, r.first + int(round(pd.Timedelta(days=days) / m.interval)))
    times = list(r.times[sl])
    truth = truth_on([results / f"reference/{year}.nc"], r.times[sl], m.channels).double()
    std, weights = m.normalizer.anomaly_std.numpy(), m.grid.area_weights()
    with torch.no_grad():
        z_t = m.autoencoder.encode(m.normalizer.standardize(truth, times).float())

    def decoded(z):
        with torch.no_grad():
            return m.normalizer.destandardize(m.autoencoder.decode(z.float()), times).double()

    fields = {k: r.fields[k][sl] for k in ("z_o", "z_b", "z_a")}
    fields["z_b - bias"] = fields["z_b"] - bias
    rows = []
    for name, z in fields.items():
        err = decoded(z) - truth
        rows.append({"field": name, **dict(zip([c.name for c in m.channels], (rmse(err, 0 * truth, weights).numpy()
                                                                            / std))), "kind": "RMSE"})
        rows.append({"field": name, **dict(zip([c.name for c in m.channels], (rmse(
            err.mean(0, keepdim=True), 0 * truth[:1], weights).numpy() / std))), "kind": "bias"})
    z_b = fields["z_b"] if args.subtract_bias else fields["z_b - bias"]
    for label, rot in (("latent", None), ("rotated", m.space.rotation)):
        R = torch.eye(z_b.shape[1]) if rot is None else rot
        wb, wo, wt = z_b @ R, fields["z_o"] @ R, z_t @ R
        d = wo - wb
        k = (((wt - wb) * d).sum(0) / d.square().sum(0).clamp(min=1e-12)).clamp(0, 1)
        err = decoded((wb + k * d) @ R.T) - truth
        rows.append({"field": f"best constant gain, {label} (in-sample)", **dict(zip(
            [c.name for c in m.channels], rmse(err, 0 * truth, weights).numpy() / std)), "kind": "RMSE"})
    table = pd.DataFrame(rows).set_index(["kind", "field"])
    table["mean"] = table.mean(axis=1)
    pd.set_option("display.width", 250)
    print(f"{year}, {days} days after {cfg.spinup_days} of spin-up, subtract bias: {args.subtract_bias}, tuning: "
          f"{args.tuning or 'the pipeline'}; decoded / anomaly std")
    print(table.rename(columns=lambda c: "".join(w[:3] for w in c.split("_"))).round(3).to_string())
    e_b, e_o = (z_b - z_t).flatten(), (fields["z_o"] - z_t).flatten()
    print(f"latent error correlation, background (less the bias) and estimate: "
          f"{torch.corrcoef(torch.stack([e_b, e_o]))[0, 1]:.3f}")


if __name__ == "__main__":
    main()
