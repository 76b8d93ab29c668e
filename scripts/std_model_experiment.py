"""Experiment (issue 16): which model-space quantities tell where the analysis is wrong?

    python scripts/std_model_experiment.py [--year 2011] [--results results] [--split 07-01]
        [--every 2] [--threads 2]

On a finished year (``results/reanalysis/{year}.nc``, ``results/latent/{year}.nc``, the autoencoder
and the reference, the built-in world's truth), per channel and grid value, the candidate
predictors of the error variance are (logarithms, each smoothed over 3 x 3 grid points where it is
a local magnitude):

- ``std``: the Monte-Carlo std squared (as rule decode_year draws it; column ``archive`` is the
  archive's std, the network's or the factor's);
- ``increment``: the squared decoded increment ``D(z_a) - D(z_b)``;
- ``gradient``: the squared horizontal gradient of the analysis;
- ``climate``: the fit period's mean squared error at that grid point (smoothed 5 x 5);

and a log-linear model ``log sigma^2 = b0 + sum_k b_k f_k`` is fitted per channel by Gaussian
negative log-likelihood on the values before ``--split``, then scored on the rest: corr(sigma,
|error|), spread/RMSE, the reliability slope and the CRPS change against the archive's std. The
single-predictor columns show what each quantity alone carries. Column ``network`` is the
pipeline's std network (:mod:`hloba.archive.std_model`) fitted on the same values, with the
inputs ``--inputs`` (the pipeline's; ``fields``: without the latent variances and the O2Lnet
difference; ``density``: the pipeline's and the log observation count per grid cell).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.archive.dataset import archive_states  # noqa: E402
from hloba.archive.decode import decode_latent, decode_means  # noqa: E402
from hloba.archive.std_model import STD_MODEL_FIELDS, fit_std_model, physical_inputs  # noqa: E402
from hloba.channels import stack_channels  # noqa: E402
from hloba.models.autoencoder import load_autoencoder  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.runtime import file_sha256  # noqa: E402
from hloba.scores import gaussian_crps  # noqa: E402
from hloba.verify.reliability import reliability  # noqa: E402

EPS = 1e-12


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Box mean over ``width x width`` grid points of the last two axes (periodic)."""
    out = np.zeros_like(x)
    h = width // 2
    for dy in range(-h, h + 1):
        for dx in range(-h, h + 1):
            out += np.roll(x, (dy, dx), axis=(-2, -1))
    return out / width**2


def gradient2(x: np.ndarray) -> np.ndarray:
    gy = 0.5 * (np.roll(x, -1, axis=-2) - np.roll(x, 1, axis=-2))
    gx = 0.5 * (np.roll(x, -1, axis=-1) - np.roll(x, 1, axis=-1))
    return gy**2 + gx**2


def fit_loglinear(features: np.ndarray, err2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients ``(1 + k,)`` of ``log sigma^2`` minimising the weighted Gaussian NLL."""
    f = torch.as_tensor(features, dtype=torch.float64)
    e2 = torch.as_tensor(err2, dtype=torch.float64)
    ww = torch.as_tensor(w / w.sum(), dtype=torch.float64)
    x = torch.cat([torch.ones(len(f), 1, dtype=torch.float64), f], dim=1)
    beta = torch.zeros(x.shape[1], dtype=torch.float64)
    beta[0] = float(np.log(np.average(err2, weights=w)))
    beta.requires_grad_(True)
    opt = torch.optim.LBFGS([beta], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        ls = x @ beta
        loss = (ww * (ls + e2 * torch.exp(-ls))).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach().numpy()


def observation_density(path, times, grid) -> np.ndarray:
    """``(time, 1, ny, nx)``: log(1 + observations per grid cell at each time), smoothed 5 x 5."""
    obs = pd.read_parquet(path, columns=["time", "latitude", "longitude"])
    obs = obs[obs["time"].isin(times)]
    lat, lon = np.asarray(grid.latitude), np.asarray(grid.longitude)
    iy = np.clip(np.round((obs["latitude"].to_numpy() - lat[0]) / (lat[1] - lat[0])).astype(int), 0, len(lat) - 1)
    ix = np.round((obs["longitude"].to_numpy() - lon[0]) / (lon[1] - lon[0])).astype(int) % len(lon)
    it = pd.Index(times).get_indexer(obs["time"])
    counts = np.zeros((len(times), 1, len(lat), len(lon)))
    np.add.at(counts, (it, 0, iy, ix), 1.0)
    return np.log1p(smooth(counts, 5) * 25).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--split", default="07-01")
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--samples", type=int, default=16, help="Monte-Carlo draws of the decoded std")
    p.add_argument("--inputs", choices=["pipeline", "fields", "density"], default="pipeline",
                   help="the network's inputs: the pipeline's; only the decoded fields and Monte-Carlo std "
                        "(no latent variances); the pipeline's and the observation density")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = args.results
    mean, std, times, channels, grid = archive_states(r / f"reanalysis/{args.year}.nc")
    index = np.arange(0, len(times), args.every)
    mean, std, times = mean[index], std[index], times[index]
    with xr.open_dataset(r / f"reference/{args.year}.nc") as ref:
        truth = stack_channels(ref.sel(time=times).load(), channels)
    ae, payload = load_autoencoder(r / "models/autoencoder.pt")
    norm = Normalizer.from_state(payload["normalizer"])
    with xr.open_dataset(r / f"latent/{args.year}.nc") as lat:
        lat = lat.sel(time=times).load()
    latent_var = {k: lat[k].values for k in ("sigma_o2", "sigma_b2")}
    # the Monte-Carlo std as decode_year draws it (the archive's std may be the network's), and the
    # background and O2Lnet estimate the network reads
    archived = std
    ae_path = r / "models/autoencoder.pt"
    sha = file_sha256(ae_path)
    _, std = decode_latent(lat, ae_path, sha, args.samples, 0, 32, None, False)
    decoded = decode_means(lat, STD_MODEL_FIELDS, ae_path, sha, 0, 32, None, False)
    background, estimate = decoded["background"], decoded["estimate"]

    density = observation_density(r / f"obs/{args.year}.parquet", times, grid)
    names, w_lat = [c.name for c in channels], grid.area_weights()
    fit = np.asarray(times < pd.Timestamp(f"{args.year}-{args.split}"))
    test = ~fit
    err2 = (mean - truth) ** 2
    feats = {
        "std": np.log(std.astype(np.float64) ** 2 + EPS),
        "increment": np.log(smooth((mean - background) ** 2, 3) + EPS),
        "gradient": np.log(smooth(gradient2(mean), 3) + EPS),
        "climate": np.log(np.broadcast_to(smooth(err2[fit].mean(axis=0), 5), mean.shape) + EPS),
    }
    sets = {"std": ["std"], "increment": ["increment"], "gradient": ["gradient"], "climate": ["climate"],
            "std+increment": ["std", "increment"], "all": list(feats)}
    w = np.broadcast_to(w_lat[None, :, None], mean[:, 0].shape)
    rows = []
    for label, keys in sets.items():
        sig = np.empty_like(mean[test])
        for i in range(len(names)):
            f_fit = np.stack([feats[k][fit, i].ravel() for k in keys], axis=1)
            mu, sd = f_fit.mean(axis=0), f_fit.std(axis=0) + EPS
            beta = fit_loglinear((f_fit - mu) / sd, err2[fit, i].ravel(), w[fit].ravel())
            f_test = np.stack([feats[k][test, i].ravel() for k in keys], axis=1)
            ls = beta[0] + ((f_test - mu) / sd) @ beta[1:]
            sig[:, i] = np.exp(0.5 * ls).reshape(sig[:, i].shape)
        _, summary = reliability(mean[test], sig, truth[test], w_lat, names)
        crps = gaussian_crps(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (mean[test], sig, truth[test])),
                             w_lat).numpy()
        rows.append(summary.assign(model=label, crps=crps))
        print(f"{label} done", flush=True)
    # the network of the pipeline (hloba.archive.std_model), its inputs with or without the
    # observation density; fitted on the fit period (its last fifth picks the epoch)
    x = physical_inputs(mean, background, estimate, std, latent_var["sigma_o2"], latent_var["sigma_b2"], norm,
                        times, ae.cfg.latent_shape)
    n_fields = 4 * len(names)
    fields = np.concatenate([x[:, :2 * len(names)], x[:, 3 * len(names):n_fields]], axis=1)
    x = {"pipeline": x, "fields": fields, "density": np.concatenate([x, density], axis=1)}[args.inputs]
    x = x.astype(np.float32)
    sd = norm.anomaly_std.numpy()
    model, _ = fit_std_model(x[fit], (err2[fit] / sd[None, :, None, None] ** 2).astype(np.float32), w_lat, sd,
                             ae.cfg.latent_shape, epochs=args.epochs,
                             periodic=(grid.latitude_period is not None, grid.longitude_period is not None))
    sig = model.predict(x[test])
    _, summary = reliability(mean[test], sig, truth[test], w_lat, names)
    crps = gaussian_crps(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (mean[test], sig, truth[test])),
                         w_lat).numpy()
    rows.append(summary.assign(model="network", crps=crps))
    sets["network"] = []
    _, arch = reliability(mean[test], archived[test], truth[test], w_lat, names)
    arch_crps = gaussian_crps(*(torch.from_numpy(np.ascontiguousarray(a))
                                for a in (mean[test], archived[test], truth[test])), w_lat).numpy()
    rows.insert(0, arch.assign(model="archive", crps=arch_crps))
    table = pd.concat(rows, ignore_index=True)
    base = dict(zip(names, arch_crps))
    table["crps_change_pct"] = 100 * (table["crps"] / table["channel"].map(base) - 1)
    print(f"fit {int(fit.sum())} times before {args.year}-{args.split}, scored on {int(test.sum())} after")
    with pd.option_context("display.width", 200):
        for col in ("corr_std_abs_error", "spread_over_rmse", "reliability_slope", "crps_change_pct"):
            print(f"\n{col}:\n" + table.pivot(index="channel", columns="model", values=col)
                  [["archive", *sets]].round(3).to_string())


if __name__ == "__main__":
    main()
