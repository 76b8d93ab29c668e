"""HLOBA's background covariance from cycling errors instead of forecasts from the truth (issue #15,
step 3; offline, on a finished pipeline's files).

    python scripts/cycling_covariance_experiment.py [--results results] [--configfile config.yaml]
        [--days 60] [--variants forecast cycling_diagonal cycling_static cycling] [--out-dir DIR]
        [--set calibrate_observation_variance=true]

The pipeline's calibration (rule generate_lagged_ensemble) fits the static variance, the rotation
``V`` and the hybrid weights ``(a, b)`` to one forecast step from the truth: model error only. Here
HLOBA's own stream (the pipeline's calibration and tuning) runs ``--days`` on the calibration year
and its background errors ``e = z_b - z_t`` and lagged members are kept. Each variant is a
calibration file that differs only in the background part:

- ``forecast``: the pipeline's (the reference; retuned and scored like the others);
- ``cycling_diagonal``: the pipeline's ``V``; static variance ``mean((V^T e)^2)`` and ``(a, b)``
  refitted to the cycling errors;
- ``cycling_static``: as ``cycling_diagonal`` with the static term alone (``a = 1, b = 0``);
- ``cycling``: ``V`` and ``L`` from the shrunk covariance of the cycling errors, ``(a, b)`` refitted.

Each variant is then tuned as rule tune_stream does (its own tuning file) and run on the
comparison period; the table gives the decoded analysis RMSE / anomaly std per channel, the held-out
off-diagonal error energy of the rotation (``V`` from the first half of the sample, errors of the
second) against its sampling floor, and the tuning's per-band variance ratios ``mean(e^2)/sigma^2``
of background and estimate.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.assim.methods import REGISTRY  # noqa: E402
from hloba.assim.methods.hloba import Hloba  # noqa: E402
from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.tuning import tune_stream_file  # noqa: E402
from hloba.cli import parse_set  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.ensemble.calibration import nnls_two, shrunk_covariance  # noqa: E402
from hloba.ensemble.generate import latent_encoder  # noqa: E402
from hloba.io import write_netcdf  # noqa: E402
from hloba.models.checkpoint import channels_from_state, load_checkpoint  # noqa: E402
from hloba.models.diagnostics import latent_decorrelation  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.states import load_years  # noqa: E402
from hloba.verify.compare import truth_on  # noqa: E402

RUN = RunSettings(device="cpu", progress=False)
VARIANTS = ("forecast", "cycling_diagonal", "cycling_static", "cycling")


class RecordingHloba(Hloba):
    """HLOBA that keeps each cycle's lagged members (the background's ensemble)."""

    kept: dict = {}

    def analyse(self, c):
        RecordingHloba.kept[c.k] = c.zs.detach().cpu().clone()
        return super().analyse(c)


def cycling_sample(results: Path, config: dict, cfg: StreamConfig, year: int, days: float,
                   z_year: torch.Tensor, year_times: pd.DatetimeIndex):
    """The stream's background errors ``(T, n)`` and lagged members ``(T, K, n)`` over ``days`` of
    ``year`` after the spin-up, with the pipeline's calibration and tuning; ``z_year``: the encoded
    truth at ``year_times``."""
    REGISTRY["hloba"] = RecordingHloba
    inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=True)
    models = method_models(cfg.with_(method="hloba"), inputs, "cpu")
    r = run_period(year, models, inputs.observations, cfg.with_(method="hloba"), days, RUN)
    REGISTRY["hloba"] = Hloba
    ks = [k for k in range(r.first, r.stop) if k in RecordingHloba.kept]
    members = torch.stack([RecordingHloba.kept[k] for k in ks]).double()
    z_t = z_year[torch.as_tensor(year_times.get_indexer(r.times[ks]))]
    z_b = r.fields["z_b"][ks].double()
    print(f"cycling sample: {len(ks)} cycles of {year} from {r.times[ks[0]]}, latent background RMSE "
          f"{(z_b - z_t).square().mean().sqrt():.4f}, of its time mean {(z_b - z_t).mean(0).square().mean().sqrt():.4f}")
    return z_b - z_t, members


def rotation_of(e: torch.Tensor) -> torch.Tensor:
    cov, _ = shrunk_covariance(e)
    lam, v = torch.linalg.eigh(cov)
    return v[:, torch.argsort(lam, descending=True)]


def variant_calibration(cal: xr.Dataset, name: str, e: torch.Tensor, members: torch.Tensor,
                        z_clim: torch.Tensor) -> tuple[xr.Dataset, dict]:
    """``cal`` with the background part refitted to the cycling errors ``e`` (see the module text)."""
    v = rotation_of(e) if name == "cycling" else torch.as_tensor(cal["rotation"].values, dtype=torch.float64)
    half = len(e) // 2
    v_half = rotation_of(e[:half]) if name == "cycling" else v
    held_out = latent_decorrelation(e[half:] @ v_half)
    info = {"off_diagonal_held_out": held_out["off_diagonal_energy_fraction"],
            "sampling_floor": held_out["sampling_floor"]}
    if name == "forecast":
        return cal, info
    out = cal.copy(deep=True)
    ew2, e2 = (e @ v).square(), e.square()
    lam, clim = ew2.mean(0), e2.mean(0)
    sw2, s2 = (members @ v).var(dim=1), members.var(dim=1)
    a_w, b_w = nnls_two(lam.expand_as(ew2).numpy(), sw2.numpy(), ew2.numpy())
    a, b = nnls_two(clim.expand_as(e2).numpy(), s2.numpy(), e2.numpy())
    if name == "cycling_static":
        a, b, a_w, b_w = 1.0, 0.0, 1.0, 0.0
    out["rotation"] = (("latent", "mode"), v.float().numpy())
    out["sigma_clim2_rotated"] = ("mode", lam.float().numpy())
    out["sigma_clim2"] = ("latent", clim.float().numpy())
    out["s2_mean"] = ("latent", s2.mean(0).float().numpy())
    z = z_clim - z_clim.mean(0)
    out["prior_var_rotated"] = ("mode", (z @ v).var(0).float().numpy())
    out.attrs.update(hybrid_a=a, hybrid_b=b, hybrid_a_rotated=a_w, hybrid_b_rotated=b_w,
                     corr_s2_e2_rotated=float(np.corrcoef(sw2.numpy().ravel(), ew2.numpy().ravel())[0, 1]),
                     background_errors="cycling")
    info.update(hybrid_a_rotated=a_w, hybrid_b_rotated=b_w, corr_s2_e2_rotated=out.attrs["corr_s2_e2_rotated"])
    return out, info


def channel_names(results: Path) -> list[str]:
    """The channels of ``results``' autoencoder, in the order :func:`score` gives its RMSEs."""
    payload = load_checkpoint(Path(results) / "models/autoencoder.pt", "autoencoder")
    return [c.name for c in channels_from_state(payload["channels"])]


def score(results: Path, config: dict, cfg: StreamConfig, inputs: StreamInputs) -> np.ndarray:
    """Decoded analysis RMSE / anomaly std per channel on the comparison period."""
    comparison = config.get("comparison", {})
    year = comparison.get("year") or year_sets(config).reanalysis[-1]
    days = comparison.get("days", 20)
    cfg = cfg.with_(method="hloba", spinup_days=comparison.get("spinup_days", 10))
    m = method_models(cfg, inputs, "cpu")
    r = run_period(year, m, inputs.observations, cfg, days, RUN, keep_analyses=True)
    n = int(round(pd.Timedelta(days=days) / m.interval))
    truth = truth_on([results / f"reference/{year}.nc"], r.times[r.first:r.first + n], m.channels)
    err = rmse(r.analyses[:n].double(), truth.double(), m.grid.area_weights()).numpy()
    return err / m.normalizer.anomaly_std.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--days", type=float, default=None, help="cycling sample length (default: tuning_days)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out-dir", default="results/experiments/cycling_covariance")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="assimilation settings for every variant, e.g. calibrate_observation_variance=true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(REPO / args.configfile)
    cfg = StreamConfig.from_config(config)
    cfg = cfg.with_(**parse_set(args.set))
    year = year_sets(config).calibration[-1]  # rule tune_stream's year
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tuning_inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=False)
    models = method_models(cfg.with_(method="hloba"), tuning_inputs, "cpu")
    x, t, _, _ = load_years([results / f"reference/{year}.nc"], channels=models.channels)
    year_times = pd.DatetimeIndex(t)
    z_clim = latent_encoder(models.autoencoder.cpu(), models.normalizer)(x, year_times).double()
    e, members = cycling_sample(results, config, cfg, year, args.days or cfg.tuning_days, z_clim, year_times)
    references = [results / f"reference/{y}.nc" for y in (year - 1, year)]
    with xr.open_dataset(tuning_inputs.calibration) as ds:
        cal = ds.load()
    comparison = config.get("comparison", {})
    cmp_year = comparison.get("year") or year_sets(config).reanalysis[-1]
    rows = []
    for name in args.variants:
        ds, info = variant_calibration(cal, name, e, members, z_clim)
        cal_path = Path(tuning_inputs.calibration) if name == "forecast" else out / f"calibration_{name}.nc"
        if name != "forecast":
            write_netcdf(ds, cal_path)
        tuning_path = out / f"tuning_{name}.nc"
        tuned = tune_stream_file(year, replace(tuning_inputs, calibration=str(cal_path)), references, tuning_path,
                                 cfg, RUN)
        inputs = StreamInputs.from_results(results, config, (cmp_year - 1, cmp_year), tuning=True)
        inputs = replace(inputs, calibration=str(cal_path), tuning=str(tuning_path))
        err = score(results, config, cfg, inputs)
        b_ratio, o_ratio = tuned["background_variance_ratio"].values, tuned["observation_variance_ratio"].values
        rows.append({"variant": name, **{c.name: v for c, v in zip(models.channels, err)}, "mean": err.mean(),
                     **info, "b_ratio_range": f"{b_ratio.min():.2f}-{b_ratio.max():.2f}",
                     "o_ratio_range": f"{np.nanmin(o_ratio):.2f}-{np.nanmax(o_ratio):.2f}",
                     "error_correlation": tuned.attrs["error_correlation_pooled"]})
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).set_index("variant")
    pd.set_option("display.width", 250)
    print(f"\nHLOBA analysis RMSE / anomaly std on {cmp_year}'s comparison period; cycling sample on {year}; "
          f"settings changed: {args.set or 'none'}")
    print(table.rename(columns=lambda c: "".join(w[:3] for w in c.split("_"))).round(3).to_string())
    table.to_csv(out / "summary.csv")


if __name__ == "__main__":
    main()
