"""The seams between the independent yearly streams (DESIGN section 3).

Each year's stream starts ``spinup_days`` before Jan 1 from a cold start; the previous year's
stream has analysed the same days as the end of its year. The seam is how far the new stream's
spin-up analyses ``D(z_a)`` (weighted ones as the stream cycled from them:
:func:`hloba.latent.analysis_weights`) are from the previous year's archive at the same times:
large at the cold start, shrinking as the new stream converges; what is left on the last spin-up
cycle is the jump a user of the multi-year archive sees at Jan 1. Per channel, the area-weighted
RMS difference in physical units and in units of the channel's anomaly std.
"""

from __future__ import annotations

import logging

import pandas as pd
import torch
import xarray as xr

from hloba.plotting import plt, save_figure
from hloba.latent import analysis_weights, kept_part, latent_precision, open_latent
from hloba.models.checkpoint import channels_from_state
from hloba.normalization import Normalizer
from hloba.models.autoencoder import load_autoencoder
from hloba.archive.dataset import archive_states
from hloba.verify.latent import decode_analysis
from hloba.scores import rmse

log = logging.getLogger(__name__)


def seam_differences(latent_path, previous_archive, autoencoder_path, anomaly_std: dict) -> pd.DataFrame:
    """Per spin-up cycle of ``latent_path`` that the previous year's archive holds, and channel:
    the RMS difference of the decoded spin-up analysis from the archive."""
    latent = open_latent(latent_path, need=("z_a_spinup",))
    year = int(latent.attrs["year"])
    z = torch.as_tensor(latent["z_a_spinup"].values)
    spin_times = pd.DatetimeIndex(latent["spinup_time"].values)
    start = pd.Timestamp(latent["time"].values[0])
    mean, _, times, channels, grid = archive_states(previous_archive)
    common = spin_times.intersection(times)
    if not len(common):
        raise ValueError(f"{previous_archive} holds none of the spin-up times of {latent_path} "
                         f"({spin_times[0]} to {spin_times[-1]})")
    ae, payload = load_autoencoder(autoencoder_path, inference_dtype=latent_precision(latent))  # as the stream ran it
    names = [c.name for c in channels_from_state(payload["channels"])]
    if names != [c.name for c in channels]:
        raise ValueError(f"{previous_archive} channels {[c.name for c in channels]} differ from {autoencoder_path}'s {names}")
    index = spin_times.get_indexer(common)
    weights = analysis_weights(latent)
    z_b = None if weights is None else torch.as_tensor(latent["z_b_spinup"].values)[index]
    with torch.no_grad():
        spin = decode_analysis(ae, Normalizer.from_state(payload["normalizer"]), z[index], common, weights, z_b,
                               kept_part(latent, index, spinup=True))
    archive = torch.as_tensor(mean[times.get_indexer(common)])
    rows = []
    for k, t in enumerate(common):
        diff = rmse(spin[k:k + 1], archive[k:k + 1], grid.area_weights()).numpy()
        for name, d in zip(names, diff):
            rows.append({"year": year, "time": t, "days_before_start": (start - t) / pd.Timedelta(days=1),
                         "channel": name, "rms_difference": d, "rms_difference_normalised": d / anomaly_std[name]})
    return pd.DataFrame(rows)


def seam_report(pairs, autoencoder_path, normalization, csv_path, figure_path) -> pd.DataFrame:
    """Rule report_seams: ``pairs`` of (this year's latent file, the previous year's archive)."""
    from hloba.io import atomic_path

    with xr.open_dataset(normalization) as norm:
        anomaly_std = {str(c): float(v) for c, v in zip(norm["channel"].values, norm["anomaly_std"].values)}
    table = pd.concat([seam_differences(latent, archive, autoencoder_path, anomaly_std) for latent, archive in pairs],
                      ignore_index=True)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    last = table[table["days_before_start"] == table.groupby("year")["days_before_start"].transform("min")]
    log.info("seams at the last spin-up cycle (RMS difference / anomaly std):\n%s",
             last.pivot(index="channel", columns="year", values="rms_difference_normalised").round(3).to_string())
    fig, ax = plt.subplots(figsize=(8, 4))
    for (year, channel), part in table.groupby(["year", "channel"]):
        ax.plot(-part["days_before_start"], part["rms_difference_normalised"], lw=1, label=f"{year} {channel}")
    ax.set_xlabel("days relative to the stream's Jan 1")
    ax.set_ylabel("RMS(spin-up - previous archive) / anomaly std")
    ax.set_yscale("log")
    ax.set_title("seams between yearly streams")
    ax.legend(fontsize=6, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, figure_path)
    return table
