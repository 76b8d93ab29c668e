"""What each part of a year's latent analysis is worth, per channel: the decoded background
``D(z_b)``, O2Lnet's estimate ``D(z_o)``, the analysis ``D(z_a)`` and the autoencoder's own floor
``D(E(truth))``, as RMSE / anomaly std (area-weighted) against the truth of a finished run.

    python scripts/check_update_parts.py [--results results] [--year 2011] [--every 8]

``--every``: score every n-th analysis time (the year's 1460 decode in about a minute at 8). A
channel whose analysis is worse than its background is one where the element-wise update, whose
gains are set for the latent space as a whole, takes more of the estimate than that channel's
errors warrant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.latent import open_latent  # noqa: E402
from hloba.models.autoencoder import encode_all, load_autoencoder  # noqa: E402
from hloba.models.checkpoint import channels_from_state, grid_from_state  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.verify.latent import decode_physical, truth_on  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--every", type=int, default=8)
    args = p.parse_args()
    r = Path(args.results)
    ae, payload = load_autoencoder(r / "models/autoencoder.pt")
    normalizer = Normalizer.from_state(payload["normalizer"])
    channels = channels_from_state(payload["channels"])
    weights = grid_from_state(payload["grid"]).area_weights()
    ds = open_latent(r / f"latent/{args.year}.nc", need=("z_a", "z_b", "z_o"))
    times = pd.DatetimeIndex(ds["time"].values)[::args.every]
    truth = truth_on([r / f"reference/{args.year}.nc"], times, channels)
    scale = normalizer.anomaly_std.double()[None, :, None, None]
    table = {}
    for name, label in (("z_b", "background"), ("z_o", "estimate"), ("z_a", "analysis")):
        z = torch.as_tensor(ds[name].values[::args.every])
        ok = torch.isfinite(z).flatten(1).all(dim=1)  # cycles without observations have no estimate
        x = decode_physical(ae, normalizer, z[ok], times[ok.numpy()])
        table[label] = rmse(x / scale, truth[ok] / scale, weights).numpy()
    z_t = encode_all(ae, normalizer.standardize(truth, times))
    table["autoencoder"] = rmse(decode_physical(ae, normalizer, z_t, times) / scale, truth / scale, weights).numpy()
    df = pd.DataFrame(table, index=[c.name for c in channels])
    df["analysis/background"] = df["analysis"] / df["background"]
    df.loc["mean"] = df.mean()
    pd.set_option("display.width", 200)
    print(f"{args.year}, every {args.every}th of {len(ds['time'])} analyses: decoded RMSE / anomaly std")
    print(df.round(4).to_string())


if __name__ == "__main__":
    main()
