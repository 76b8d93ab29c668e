"""Rule decode_year: latent analyses of a year -> ``results/reanalysis/{year}.nc``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from hloba.archive.cluster import dask_client
from hloba.archive.dataset import reanalysis_dataset
from hloba.archive.decode import decode_latent, decode_means
from hloba.archive.settings import DecodeSettings, UncertaintySettings
from hloba.archive.std_model import STD_MODEL_FIELDS, load_std_model, network_std
from hloba.runtime import file_sha256
from hloba.io import write_netcdf
from hloba.latent import open_latent
from hloba.models.checkpoint import channels_from_state, grid_from_state, load_checkpoint
from hloba.normalization import Normalizer

log = logging.getLogger(__name__)


def decode_year(latent_path, autoencoder_path, output, *, samples: int = UncertaintySettings.samples,
                seed: int = UncertaintySettings.seed, time_chunk: int = DecodeSettings.time_chunk,
                workers: int = 1, scheduler_address: str | None = None, std_factors=None, std_model=None,
                progress: bool = True, draw_background: bool = False) -> xr.Dataset:
    """Decode the year's analyses and uncertainty and write the archive file atomically.

    ``std_factors``: rule calibrate_uncertainty's file; each channel's std is multiplied by its
    factor (without it the raw Monte-Carlo std is written). ``std_model``: the same rule's std
    network, which then gives the std instead (:mod:`hloba.archive.std_model`)."""
    payload = load_checkpoint(autoencoder_path, "autoencoder")
    channels, grid = channels_from_state(payload["channels"]), grid_from_state(payload["grid"])
    sha = file_sha256(autoencoder_path)
    latent = open_latent(latent_path)
    want = latent.attrs.get("autoencoder_sha256")
    if want and want != sha:
        raise ValueError(f"{latent_path} was made with another autoencoder than {autoencoder_path} "
                         "(checkpoint hashes differ): rerun assimilate_year")
    log.info("decoding %s: %d times, %d samples, chunks of %d, %s", latent_path, latent.sizes["time"], samples,
             time_chunk, scheduler_address or f"{workers} local worker(s)")
    with dask_client(workers, scheduler_address) as client:
        mean, std = decode_latent(latent, autoencoder_path, sha, samples, seed, time_chunk, client, progress,
                                  draw_background=draw_background)
        decoded = None if not std_model else {"mean": mean, "mc_std": std, **decode_means(
            latent, STD_MODEL_FIELDS, autoencoder_path, sha, seed, time_chunk, client, progress)}
    factors = None
    if std_model:
        std = model_std(std_model, decoded, latent, payload, channels)
    elif std_factors:
        with xr.open_dataset(std_factors) as f:
            order = [str(c) for c in f["channel"].values]
            if order != [c.name for c in channels]:
                raise ValueError(f"{std_factors} has channels {order}, the autoencoder {[c.name for c in channels]}: "
                                 "rerun calibrate_uncertainty")
            factors = f["std_factor"].values
        std = std * factors[None, :, None, None].astype(np.float32)
    ds = reanalysis_dataset(mean, std, latent["time"].values, channels, grid, latent.attrs, samples, seed)
    if factors is not None:
        ds.attrs["uncertainty_std_factors"] = [float(v) for v in factors]
    ds.attrs["uncertainty_model"] = "network" if std_model else ("factor" if factors is not None else "samples")
    write_netcdf(ds, output)
    return ds


def model_std(path, decoded: dict, latent: xr.Dataset, autoencoder_payload: dict, channels) -> np.ndarray:
    """The std network's archive std for the decoded year (checked against the autoencoder)."""
    model, payload = load_std_model(path)
    names = [c.name for c in channels_from_state(payload["channels"])]
    if names != [c.name for c in channels] or not np.array_equal(
            payload["normalizer"]["anomaly_std"].numpy(), autoencoder_payload["normalizer"]["anomaly_std"].numpy()):
        raise ValueError(f"{path} was fitted for another autoencoder (channels {names} or its normalisation "
                         "differ): rerun calibrate_uncertainty")
    times = pd.DatetimeIndex(latent["time"].values)
    log.info("std network %s on %d times", path, len(times))
    return network_std(model, decoded, latent["sigma_o2"].values, latent["sigma_b2"].values,
                       Normalizer.from_state(autoencoder_payload["normalizer"]), times, model.latent_shape)


def write_zarr_archive(paths, output) -> None:
    """All years' files as one consolidated zarr store, written beside ``output`` and renamed
    onto it only when complete (a killed job leaves no store at ``output``)."""
    import os
    import shutil
    from pathlib import Path

    output = Path(output)
    tmp = output.with_name(f".{output.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    with xr.open_mfdataset([str(p) for p in paths], combine="by_coords", join="outer") as ds:
        ds = ds.chunk({"time": 124})
        for var in ds.variables.values():
            var.encoding = {}
        ds.to_zarr(tmp, mode="w", consolidated=True)
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)
    log.info("zarr archive %s: %d files", output, len(paths))
