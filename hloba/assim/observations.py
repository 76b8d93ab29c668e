"""The stream's observations, assigned to cycles, and its cold-start state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.assim.models import StreamError
from hloba.channels import stack_channels
from hloba.grid import Grid
from hloba.normalization import Normalizer
from hloba.obs.gridded import grid_observations, nearest_cycle
from hloba.obs.operator import interpolation_weights
from hloba.obs.schema import load_observations
from hloba.obs.withhold import withheld_mask


@dataclass
class StreamObservations:
    """The stream's observations, sorted by cycle; ``table.iloc[offsets[k]:offsets[k + 1]]`` is cycle k."""

    table: pd.DataFrame
    offsets: np.ndarray
    channel: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    value_std: torch.Tensor  # standardised anomaly (O2Lnet input)
    value: torch.Tensor  # physical
    r2: torch.Tensor  # observation error variance, physical
    weights: object  # InterpolationWeights
    withheld: torch.Tensor  # bool: kept out of assimilation (evaluation.withhold), still checked

    def cycle(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))


def prepare_observations(paths, times: pd.DatetimeIndex, channels, grid: Grid, normalizer: Normalizer,
                         device, withhold_fraction: float = 0.0, withhold_seed: int = 0,
                         last: pd.Timestamp | None = None) -> StreamObservations:
    """Read, validate and assign the observations of the stream's cycles (nearest cycle, +- dt/2);
    with ``last``, only those of the cycles up to that time (the later cycles have none)."""
    interval = times[1] - times[0]
    end = (times[-1] if last is None else last) + interval / 2
    df = load_observations(paths, channels, grid, times[0] - interval / 2, end)
    gridded = grid_observations(df, times, grid, normalizer)
    # grid_observations keeps and orders rows by cycle with a stable sort: the same order here.
    cyc, keep = nearest_cycle(times, df["time"])
    table = df[keep].iloc[np.argsort(cyc[keep], kind="stable")].reset_index(drop=True)
    if len(table) != len(gridded.value):
        raise StreamError("observation bookkeeping mismatch between the table and the gridded observations")
    channel = table["channel"].to_numpy(np.int64)
    w = interpolation_weights(grid, channel, table["latitude"].to_numpy(float), table["longitude"].to_numpy(float))
    return StreamObservations(
        table, gridded.offsets.numpy(), gridded.channel.to(device), gridded.row.to(device), gridded.col.to(device),
        gridded.value.to(device), torch.as_tensor(np.array(table["value"].to_numpy(float)), device=device),
        torch.as_tensor(table["error_std"].to_numpy(float) ** 2, device=device), w.to(device),
        torch.as_tensor(withheld_mask(table, withhold_fraction, withhold_seed), device=device),
    )


def cold_start_state(cold_start: str, time: pd.Timestamp, channels, grid: Grid, normalizer: Normalizer) -> torch.Tensor:
    """``(1, C, ny, nx)`` physical state: the climatology at ``time``, or the state file's time nearest to it."""
    if cold_start == "climatology":
        return normalizer.climatology([time]).double()
    path = Path(cold_start)
    if not path.exists():
        raise StreamError(f"assimilation.cold_start {cold_start!r}: no such file (use 'climatology' or a netCDF state file)")
    with xr.open_dataset(path) as ds:
        if "time" in ds.dims:
            ds = ds.sel(time=[time], method="nearest")
        else:
            ds = ds.expand_dims("time")
        if Grid.from_dataset(ds).shape != grid.shape:
            raise StreamError(f"cold-start file {path} has grid {Grid.from_dataset(ds).shape}, the models {grid.shape}")
        try:
            x = stack_channels(ds.load(), channels)
        except KeyError as err:
            raise StreamError(f"cold-start file {path} lacks {err}: it must hold every channel of the models") from None
    return torch.from_numpy(x.astype(np.float64))
