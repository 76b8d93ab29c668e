"""Experiment (issue 16): the std network fitted in float32 or bfloat16, alone or as the mean of
several networks' log variances (an ensemble of seeds), with or without a moving average of its
weights (``ema``).

    python scripts/std_ensemble_experiment.py [--results results] [--configfile F] [--year 2011]
        [--every 2] [--seed 0] [--cache /tmp/std_calibration.npz] [--year-cache F] [--only A,B]

As rule calibrate_uncertainty does, a tuned HLOBA stream runs over the calibration year and every
``uncertainty.calibration_every``-th analysis is decoded (cached in ``--cache``: the stream takes
a few minutes); each candidate is fitted on it (:func:`hloba.archive.std_model.fit_std_model`,
whose per-channel offset makes spread/RMSE 1 on the calibration times) and scored on every
``--every``-th analysis of the finished reanalysis ``--year`` against the built-in world's truth:
corr(std, |error|), spread/RMSE, the reliability slope and the CRPS change against the archive's
std, and each fit's time. ``mean of N`` averages the log variances of N networks (seeds
``--seed`` ...) before the offset (:class:`hloba.archive.std_model.StdEnsemble`).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.archive.dataset import archive_states
from hloba.archive.decode import decode_latent, decode_means
from hloba.archive.settings import UncertaintySettings
from hloba.archive.std_model import STD_MODEL_FIELDS, fit_std_model, physical_inputs
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.uncertainty import calibration_sample, std_network_data
from hloba.channels import stack_channels
from hloba.config import load_config, stream_years, year_sets
from hloba.models.autoencoder import load_autoencoder
from hloba.normalization import Normalizer
from hloba.runtime import file_sha256
from hloba.scores import gaussian_crps
from hloba.verify.reliability import reliability


def calibration_inputs(results: Path, config: dict, cache: Path, norm, latent_shape):
    """``(inputs, err2, times)`` of the calibration stream (anomaly-std units), cached in ``cache``."""
    if cache.exists():  # from an earlier run of this script on the same results
        with np.load(cache) as f:
            return f["x"], f["err2"], pd.DatetimeIndex(f["times"])
    years = year_sets(config)
    year = years.calibration[0]
    unc = UncertaintySettings.from_config(config)
    cfg = StreamConfig.from_config(config)
    inputs = StreamInputs.from_results(results, config, stream_years(year, cfg.spinup_days, years.all))
    s = calibration_sample(year, inputs, results / f"reference/{year}.nc", cfg, samples=unc.samples, seed=unc.seed,
                           days=unc.calibration_days, every=unc.calibration_every, run=RunSettings(log_every=200))
    times = pd.DatetimeIndex(s["latent"]["time"].values)
    x, err2 = std_network_data(s["latent"], s, s["truth"], norm, latent_shape)  # what the rule fits
    np.savez(cache, x=x, err2=err2, times=times.values)
    return x, err2, times


def year_inputs(results: Path, year: int, every: int, norm, latent_shape, samples: int, seed: int, cache=None):
    """The finished year's network inputs, analysis, archived std, truth, channels and grid (the
    arrays cached in ``cache`` when given)."""
    mean, archived, times, channels, grid = archive_states(results / f"reanalysis/{year}.nc")
    if cache is not None and cache.exists():
        with np.load(cache) as f:
            return f["x"], f["mean"], f["archived"], f["truth"], channels, grid
    index = np.arange(0, len(times), every)
    mean, archived, times = mean[index], archived[index], times[index]
    with xr.open_dataset(results / f"reference/{year}.nc") as ref:
        truth = stack_channels(ref.sel(time=times).load(), channels)
    with xr.open_dataset(results / f"latent/{year}.nc") as lat:
        lat = lat.sel(time=times).load()
    ae_path = results / "models/autoencoder.pt"
    sha = file_sha256(ae_path)
    _, mc_std = decode_latent(lat, ae_path, sha, samples, seed, 32, None, False)
    d = decode_means(lat, STD_MODEL_FIELDS, ae_path, sha, seed, 32, None, False)
    x = physical_inputs(mean, d["background"], d["estimate"], mc_std, lat["sigma_o2"].values, lat["sigma_b2"].values,
                        norm, times, latent_shape)
    if cache is not None:
        np.savez(cache, x=x, mean=mean, archived=archived, truth=truth)
    return x, mean, archived, truth, channels, grid


def score(label, mean, std, truth, w_lat, names) -> pd.DataFrame:
    _, summary = reliability(mean, std, truth, w_lat, names)
    crps = gaussian_crps(*(torch.from_numpy(np.ascontiguousarray(a, np.float64)) for a in (mean, std, truth)),
                         w_lat).numpy()
    return summary.assign(model=label, crps=crps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--configfile", default=None, help="overlay merged over config.yaml (as snakemake --configfile)")
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the first member's seed (the pipeline's: 0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=Path("/tmp/std_calibration.npz"))
    p.add_argument("--year-cache", type=Path, default=None, help="the scored year's inputs cached there (npz)")
    p.add_argument("--only", default=None, help="comma-separated candidates to fit (default: all)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    base = Path(__file__).resolve().parents[1] / "config.yaml"
    config = load_config(*([base] + ([Path(args.configfile)] if args.configfile else [])))
    unc = UncertaintySettings.from_config(config)
    r = args.results
    ae, payload = load_autoencoder(r / "models/autoencoder.pt")
    norm = Normalizer.from_state(payload["normalizer"])
    shape = ae.cfg.latent_shape
    x_cal, e2_cal, _ = calibration_inputs(r, config, args.cache, norm, shape)
    x, mean, archived, truth, channels, grid = year_inputs(r, args.year, args.every, norm, shape, unc.samples,
                                                           unc.seed, args.year_cache)
    names, w_lat = [c.name for c in channels], grid.area_weights()
    sd = norm.anomaly_std.numpy()
    periodic = (grid.latitude_period is not None, grid.longitude_period is not None)
    rows = [score("archive", mean, archived, truth, w_lat, names)]
    candidates = {
        "float32": {},
        "bfloat16": {"dtype": torch.bfloat16},
        "float32 mean of 3": {"members": 3},
        "bfloat16 mean of 3": {"dtype": torch.bfloat16, "members": 3},
        "bfloat16 mean of 5": {"dtype": torch.bfloat16, "members": 5},
        "bfloat16 ema": {"dtype": torch.bfloat16, "ema": 0.99},
        "bfloat16 ema mean of 2": {"dtype": torch.bfloat16, "ema": 0.99, "members": 2},
        "bfloat16 ema mean of 3": {"dtype": torch.bfloat16, "ema": 0.99, "members": 3},
    }
    for label, kw in candidates.items():
        if args.only and label not in args.only.split(","):
            continue
        net = {"epochs": unc.network_epochs, "hidden": unc.network_hidden, "layers": unc.network_layers, **kw}
        start = time.perf_counter()
        model, report = fit_std_model(x_cal, e2_cal, w_lat, sd, shape, periodic=periodic, seed=args.seed, **net)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        std = model.predict(x)
        print(f"{label}: best epochs {[r['best_epoch'] + 1 for r in report['members']]}, fit {fit_s:.0f} s, "
              f"predict {time.perf_counter() - start:.1f} s", flush=True)
        rows.append(score(label, mean, std, truth, w_lat, names))
    table = pd.concat(rows, ignore_index=True)
    base_crps = table[table.model == "archive"].set_index("channel")["crps"]
    table["crps_change_pct"] = 100 * (table["crps"] / table["channel"].map(base_crps) - 1)
    order = list(dict.fromkeys(table["model"]))
    print(f"fitted on {len(x_cal)} calibration times, scored on {len(x)} times of {args.year}")
    with pd.option_context("display.width", 220):
        for col in ("corr_std_abs_error", "spread_over_rmse", "reliability_slope", "crps_change_pct"):
            print(f"\n{col}:\n" + table.pivot(index="channel", columns="model", values=col)[order].round(3).to_string())


if __name__ == "__main__":
    main()
