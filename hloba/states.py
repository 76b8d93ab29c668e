"""Reference years as tensors (physical or standardised anomalies) for training, encoding and scoring."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.channels import Channel, list_channels, stack_channels
from hloba.grid import Grid
from hloba.normalization import Normalizer

log = logging.getLogger(__name__)


def load_years(paths, normalizer: Normalizer | None = None, channels: list[Channel] | None = None,
               ) -> tuple[torch.Tensor, pd.DatetimeIndex, list[Channel], Grid]:
    """States ``(time, C, ny, nx)`` of the reference files, in order, opened one at a time.

    With a ``normalizer`` they are standardised anomalies (float32); without, physical values in
    the files' dtype.
    """
    arrays, times = [], []
    grid = None
    for path in paths:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
        if channels is None:
            channels = list_channels(ds)
        grid = grid or Grid.from_dataset(ds)
        t = pd.DatetimeIndex(ds["time"].values)
        x = stack_channels(ds, channels)
        if normalizer is None:
            arrays.append(torch.from_numpy(x))
        else:
            arrays.append(normalizer.standardize(torch.from_numpy(x.astype(np.float64)), t))
        times.append(t)
        log.info("loaded %s: %d times", path, len(t))
    if not arrays:
        raise ValueError("no reference files given")
    return torch.cat(arrays), times[0].append(times[1:]) if len(times) > 1 else times[0], channels, grid


def trajectory_runs(paths) -> np.ndarray:
    """The run of each time of :func:`load_years` of ``paths``: a file's ``world_chain`` (the built-in
    world's independent runs, :mod:`hloba.world.chains`; 0 for files without it, such as yours), so
    that two consecutive times from two runs are not taken for a step of one trajectory."""
    runs = []
    for path in paths:
        with xr.open_dataset(path) as ds:
            runs.append(np.full(ds.sizes["time"], int(ds.attrs.get("world_chain", 0))))
    return np.concatenate(runs) if runs else np.zeros(0, int)
