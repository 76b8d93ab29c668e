"""Does O2Lnet's local variance make the archive's std follow the error? (issue #16, item 2)

    python scripts/local_std_experiment.py [--results results] [--year 2011] [--every 8]
        [--samples 8] [--threads 2]

Offline, on a finished year (``results/latent/{year}.nc``, its reference and the autoencoder).
The pipeline draws ``D(z_a + V (sigma_w * eps))``: the update rotation ``V`` has global modes, so
the decoded std keeps no trace of where the observations are. Each variant here multiplies the
latent perturbation element-wise by ``r`` before decoding, ``D(z_a + r * V (sigma_w * eps))``,
with ``r^2`` normalised to mean 1 per latent channel and time (the overall size stays the
pipeline's):

- ``pipeline``: ``r = 1``;
- ``o2lnet``: ``r^2`` from O2Lnet's variance ``sigma_o2`` (large far from the observations);
- ``element``: ``r^2`` from the element-wise posterior ``1 / (1/sigma_b2 + 1/sigma_o2)``;
- ``element_sqrt``: the square root of the ``element`` modulation (half its contrast).

Every ``--every``-th analysis time is decoded with ``--samples`` draws. Per channel: corr(std,
|error|) (scale-free), and, after scaling each variant's std per channel to spread/RMSE = 1 on the
same times (the same for all variants; the pipeline does this on the calibration year), the
reliability slope and the CRPS; and the ratio of the time-mean std far from / near the fixed
stations (radiosondes and surface stations, thirds of the grid by distance to the nearest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.channels import list_channels  # noqa: E402
from hloba.grid import Grid  # noqa: E402
from hloba.models.autoencoder import load_autoencoder  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.scores import gaussian_crps  # noqa: E402
from hloba.verify.latent import truth_on  # noqa: E402
from hloba.verify.reliability import fixed_stations, reliability, station_distance_thirds  # noqa: E402


def modulations(latent: xr.Dataset, index, shape) -> dict[str, torch.Tensor]:
    """``r: (time, n_latent)`` of each variant, ``r^2`` of mean 1 per latent channel and time."""
    so2 = torch.as_tensor(latent["sigma_o2"].values[index], dtype=torch.float64)
    sb2 = torch.as_tensor(latent["sigma_b2"].values[index], dtype=torch.float64)

    def unit(v):
        v = v.reshape(len(index), shape[0], -1)
        return (v / v.mean(dim=2, keepdim=True)).reshape(len(index), -1)

    element = unit(1.0 / (1.0 / sb2 + 1.0 / so2))
    return {"pipeline": torch.ones_like(so2), "o2lnet": unit(so2).sqrt(), "element": element.sqrt(),
            "element_sqrt": element.sqrt().sqrt()}


@torch.no_grad()
def decode_std(ae, norm, z_a, s2_update, rotation, r, times, samples: int, seed: int = 0):
    """``(mean, std)`` physical of ``D(z_a + r * V (sigma_w * eps))`` over ``samples`` draws."""
    g = torch.Generator().manual_seed(seed)
    z = torch.as_tensor(z_a, dtype=torch.float32)
    sd = torch.as_tensor(s2_update, dtype=torch.float32).clamp(min=0).sqrt()
    v = torch.as_tensor(rotation, dtype=torch.float32) if rotation is not None else None
    mean = norm.destandardize(ae.decode(z), times)
    draws = []
    for _ in range(samples):
        dz = sd * torch.randn(z.shape, generator=g)
        if v is not None:
            dz = dz @ v.T
        draws.append(norm.destandardize(ae.decode(z + r.float() * dz), times))
    return mean, torch.stack(draws).std(dim=0)


def distance_thirds(grid: Grid, obs_path) -> tuple[np.ndarray, np.ndarray]:
    obs = pd.read_parquet(obs_path, columns=["time", "station_id", "latitude", "longitude"])
    return station_distance_thirds(grid, *fixed_stations(obs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--every", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = Path(args.results)
    latent = xr.open_dataset(r / f"latent/{args.year}.nc")
    index = np.arange(0, latent.sizes["time"], args.every)
    times = pd.DatetimeIndex(latent["time"].values[index])
    ae, payload = load_autoencoder(r / "models/autoencoder.pt")
    norm = Normalizer.from_state(payload["normalizer"])
    ref_path = r / f"reference/{args.year}.nc"
    with xr.open_dataset(ref_path) as ref:
        channels = list_channels(ref)
        grid = Grid.from_dataset(ref)
    truth = truth_on([ref_path], times, channels)
    near, far = distance_thirds(grid, r / f"obs/{args.year}.parquet")
    names = [c.name for c in channels]
    w = grid.area_weights()
    rotation = latent["rotation"].values if "rotation" in latent else None
    rows = []
    for variant, rr in modulations(latent, index, ae.cfg.latent_shape).items():
        mean, std = decode_std(ae, norm, latent["z_a"].values[index], latent["sigma_a2_update"].values[index],
                               rotation, rr, times, args.samples)
        _, summary = reliability(mean.numpy(), std.numpy(), truth.numpy(), w, names)
        scale = torch.as_tensor(summary["spread_over_rmse"].values)[None, :, None, None]
        scaled = std.double() / scale
        _, calibrated = reliability(mean.numpy(), scaled.numpy(), truth.numpy(), w, names)
        crps = gaussian_crps(mean, scaled, truth, w).numpy()
        tmean = std.double().mean(dim=0).numpy()
        for i, name in enumerate(names):
            rows.append({"variant": variant, "channel": name,
                         "corr": summary["corr_std_abs_error"].iloc[i],
                         "slope": calibrated["reliability_slope"].iloc[i], "crps": crps[i],
                         "far_over_near": tmean[i][far].mean() / tmean[i][near].mean()})
        print(f"{variant} done", flush=True)
    table = pd.DataFrame(rows)
    base = table[table["variant"] == "pipeline"].set_index("channel")["crps"]
    table["crps_change_pct"] = 100 * (table["crps"] / table["channel"].map(base) - 1)
    with pd.option_context("display.width", 200):
        for col in ("corr", "slope", "crps_change_pct", "far_over_near"):
            print(f"\n{col}:\n" + table.pivot(index="channel", columns="variant", values=col).round(3).to_string())


if __name__ == "__main__":
    main()
