"""What each part of a year's latent analysis is worth, per channel: the decoded background
``D(z_b)``, O2Lnet's estimate ``D(z_o)``, the analysis ``D(z_a)`` and the autoencoder's own floor
``D(E(truth))``, as RMSE / anomaly std (area-weighted) against the truth of a finished run.

    python scripts/check_update_parts.py [--results results] [--year 2011] [--every 8] [--bands 2,4,8,16]

``--every``: score every n-th analysis time (the year's 1460 decode in about a minute at 8). A
channel whose analysis is worse than its background is one where the element-wise update, whose
gains are set for the latent space as a whole, takes more of the estimate than that channel's
errors warrant.

The last columns fit, per channel, the weight of the decoded increment ``D(z_a) - D(z_b)`` that
fits the truth best (least squares, in [0, 1], as rule tune_stream does for
``assimilation.decoded_increment: weighted``) on the first half of the scored times, and score
``D(z_b) + weight (D(z_a) - D(z_b))`` on the second half against the background and analysis there
(offline: the stream would cycle from the weighted analyses). On an archive written with weighted
increments the weights are those of what is left.

``--bands``: a second table splits the background's, the estimate's and the analysis's errors
into bands of total wavenumber with these edges (:func:`hloba.verify.spectra.band_rmse`;
unweighted, the built-in world's doubly periodic grid only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.assim.update import fit_increment_weights  # noqa: E402
from hloba.latent import weighted_increment  # noqa: E402
from hloba.latent import open_latent  # noqa: E402
from hloba.models.autoencoder import encode_all, load_autoencoder  # noqa: E402
from hloba.models.checkpoint import channels_from_state, grid_from_state  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.verify.spectra import band_labels, band_rmse  # noqa: E402
from hloba.verify.latent import decode_physical, truth_on  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--every", type=int, default=8)
    p.add_argument("--bands", default=None, help="band edges in total wavenumber, e.g. 2,4,8,16")
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
    table, decoded = {}, {}
    for name, label in (("z_b", "background"), ("z_o", "estimate"), ("z_a", "analysis")):
        z = torch.as_tensor(ds[name].values[::args.every])
        ok = torch.isfinite(z).flatten(1).all(dim=1)  # cycles without observations have no estimate
        x = decode_physical(ae, normalizer, z[ok], times[ok.numpy()])
        table[label] = rmse(x / scale, truth[ok] / scale, weights).numpy()
        decoded[label] = x.double() / scale if bool(ok.all()) else None
    z_t = encode_all(ae, normalizer.standardize(truth, times))
    table["autoencoder"] = rmse(decode_physical(ae, normalizer, z_t, times) / scale, truth / scale, weights).numpy()
    half = len(times) // 2
    x_b, x_a, x_t = decoded["background"], decoded["analysis"], truth.double() / scale
    g = fit_increment_weights(x_a[:half] - x_b[:half], x_t[:half] - x_b[:half], torch.as_tensor(weights))
    table["increment weight"] = g.numpy()
    for label, x in (("2nd half: background", x_b), ("2nd half: analysis", x_a),
                     ("2nd half: weighted", weighted_increment(x_b, x_a, g))):
        table[label] = rmse(x[half:], x_t[half:], weights).numpy()
    df = pd.DataFrame(table, index=[c.name for c in channels])
    df.insert(4, "analysis/background", df["analysis"] / df["background"])
    df.loc["mean"] = df.mean()
    pd.set_option("display.width", 200)
    print(f"{args.year}, every {args.every}th of {len(ds['time'])} analyses: decoded RMSE / anomaly std")
    print(df.round(4).to_string())
    if args.bands and any(x is None for x in decoded.values()):
        print("\nno table by band: some scored cycles have no O2Lnet estimate (no observations)")
    elif args.bands:
        print(f"\nby band of total wavenumber (edges {args.bands}), RMSE / anomaly std, unweighted:")
        print(band_table(decoded, x_t, [float(e) for e in args.bands.split(",")], channels).round(4).to_string())


def band_table(decoded: dict, x_t: torch.Tensor, edges: list[float], channels) -> pd.DataFrame:
    """Rows (channel, part), one column per band: the RMS of each part's error in that band."""
    rows = {(c.name, label): band_rmse((x[:, i] - x_t[:, i]).numpy(), edges)
            for i, c in enumerate(channels) for label, x in decoded.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=band_labels(edges))


if __name__ == "__main__":
    main()
