"""Would a finer weighing of HLOBA's decoded increments help? Offline on a finished year's archive.

    python scripts/increment_weighting_experiment.py [--results results] [--year 2011] [--bands 6]
        [--lags 1,2,3]

The archive's analysis is ``x_w(k) = D(z_b) + g_c d(k) + kept`` with ``d(k) = D(z_a) - D(z_b)`` the
decoded increment of cycle ``k`` and ``g_c`` rule tune_stream's weight per channel (the latent
file's ``increment_weight`` and ``kept_background``; an archive written with ``decoded_increment:
weighted``). Weights are fitted by least squares against the truth on the first half of the year
and scored on the second (RMSE / anomaly std, area-weighted), for:

- ``scalar refit``: one weight per channel in [0, 1], refitted on this year
  (:func:`hloba.assim.update.fit_increment_weights`, which tune_stream fits on the calibration
  year's 60 days);
- ``bands``: one weight per channel and band of total wavenumber (``--bands`` bands, geometric
  edges; the increment filtered in Fourier space, the domain being doubly periodic);
- ``later increments``: ``x_w(k) + sum_j a_jc g_c d(k + j)`` over ``--lags``, a fixed-lag smoother
  that carries the next cycles' increments back unmoved (no backward model).

Offline, so the stream does not cycle from these analyses; each row says what a better weighing of
the same inputs is worth at most on this year.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.assim.update import fit_increment_weights  # noqa: E402
from hloba.bands import band_weighted as weighted_by_band  # noqa: E402
from hloba.latent import kept_part, open_latent  # noqa: E402
from hloba.models.autoencoder import load_autoencoder  # noqa: E402
from hloba.models.checkpoint import channels_from_state, grid_from_state  # noqa: E402
from hloba.normalization import Normalizer  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.verify.spectra import band_index, total_wavenumber  # noqa: E402
from hloba.verify.latent import decode_physical, physical_anomaly, truth_on  # noqa: E402


def wavenumber_bands(ny: int, nx: int, n_bands: int) -> torch.Tensor:
    """Band index ``(ny, nx)`` of each Fourier coefficient by total wavenumber: band 0 the mean and
    wavenumbers below 1.5, the rest in geometric steps up to the largest."""
    k = total_wavenumber(ny, nx)
    return torch.as_tensor(band_index(k, np.geomspace(1.5, k.max() + 1e-6, n_bands)[:-1]))


def band_weighted(d: torch.Tensor, e: torch.Tensor, bands: torch.Tensor, fit: slice) -> torch.Tensor:
    """``d`` filtered by the least-squares weight of each channel and band on ``e`` over ``fit``
    (Fourier coefficients of one band are orthogonal to the others', so each band fits alone)."""
    dh, eh = torch.fft.fft2(d), torch.fft.fft2(e)
    n_bands = int(bands.max()) + 1
    weights = torch.zeros(d.shape[1], n_bands, dtype=d.dtype)
    for b in range(n_bands):
        m = bands == b
        dd = dh[fit][..., m].abs().square().sum(dim=(0, 2))
        de = (dh[fit][..., m].conj() * eh[fit][..., m]).real.sum(dim=(0, 2))
        weights[:, b] = torch.where(dd > 0, de / dd.clamp_min(1e-300), 0.0)
    return torch.fft.ifft2(dh * weights[:, bands][None]).real


def later_increments(inc: torch.Tensor, e: torch.Tensor, lags: list[int], fit: slice) -> torch.Tensor:
    """``sum_j a_jc inc(k + j)`` for the first ``len(inc) - max(lags)`` cycles, ``a`` fitted per channel
    by least squares on ``e`` over ``fit``."""
    m = len(inc) - max(lags)
    x = torch.stack([inc[j:j + m] for j in lags], dim=-1)  # (m, C, ny, nx, lags)
    out = torch.zeros_like(inc[:m])
    for c in range(inc.shape[1]):
        a = torch.linalg.lstsq(x[fit, c].reshape(-1, len(lags)), e[fit, c].reshape(-1, 1)).solution[:, 0]
        out[:, c] = (x[:, c] * a).sum(-1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--bands", type=int, default=6)
    p.add_argument("--lags", default="1,2,3", help="later cycles whose increments the smoother adds")
    args = p.parse_args()
    r, lags = Path(args.results), [int(j) for j in args.lags.split(",")]
    ae, payload = load_autoencoder(r / "models/autoencoder.pt")
    norm = Normalizer.from_state(payload["normalizer"])
    channels = channels_from_state(payload["channels"])
    area = torch.as_tensor(grid_from_state(payload["grid"]).area_weights())
    ds = open_latent(r / f"latent/{args.year}.nc", need=("z_a", "z_b", "increment_weight", "kept_background"))
    times = pd.DatetimeIndex(ds["time"].values)
    scale = norm.anomaly_std.double()[None, :, None, None]
    d_b = decode_physical(ae, norm, torch.as_tensor(ds.z_b.values), times).double() / scale
    inc = decode_physical(ae, norm, torch.as_tensor(ds.z_a.values), times).double() / scale - d_b
    base = d_b + physical_anomaly(norm, kept_part(ds)) / scale
    truth = truth_on([r / f"reference/{args.year}.nc"], times, channels).double() / scale
    g = torch.as_tensor(ds.increment_weight.values, dtype=torch.float64)  # per channel, or channel and band
    m = len(times) - max(lags)  # every row is scored on the same cycles
    fit, score = slice(0, m // 2), slice(m // 2, m)
    archive = base + weighted_by_band(inc, g)  # as the archive decodes it (hloba.latent.decoded_analysis)
    e = truth - base
    refit = fit_increment_weights(inc[fit], e[fit], area)  # as rule tune_stream fits them
    rows = {
        "background": base,
        "archive": archive,
        "scalar refit": base + refit[None, :, None, None] * inc,
        f"{args.bands} bands": base + band_weighted(inc, e, wavenumber_bands(*inc.shape[-2:], args.bands), fit),
    }
    rows[f"later increments {args.lags}"] = archive[:m] + later_increments(weighted_by_band(inc, g), (truth - archive)[:m],
                                                                           lags, fit)
    table = {name: rmse(x[score], truth[score], area).numpy() for name, x in rows.items()}
    df = pd.DataFrame(table, index=[c.name for c in channels])
    df.loc["mean"] = df.mean()
    pd.set_option("display.width", 200)
    print(f"{args.year}: weights fitted on cycles 0-{m // 2 - 1}, scored on {m // 2}-{m - 1} (RMSE / anomaly std)")
    print(df.round(4).to_string())
    print("ratio to the archive: " + ", ".join(f"{k} {v:.3f}" for k, v in (df.loc["mean"] / df.loc["mean", "archive"]).items()))


if __name__ == "__main__":
    main()
