"""Observations prepared for O2Lnet: nearest grid cell, standardised anomaly, cycle index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hloba.grid import Grid
from hloba.normalization import Normalizer
from hloba.normalization import fractional_day_of_year, harmonic_design
from hloba.obs.operator import InterpolationWeights, apply_operator, interpolation_weights


@dataclass
class GriddedObservations:
    """Observations sorted by cycle; ``offsets[k]:offsets[k + 1]`` are those of cycle ``k``."""

    times: pd.DatetimeIndex
    offsets: torch.Tensor  # (n_cycles + 1,)
    channel: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    value: torch.Tensor  # standardised anomaly
    network: torch.Tensor
    platforms: list[str]
    # the trajectory of each cycle (the built-in world's runs, hloba.states.trajectory_runs); None: one
    runs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.times)

    def cycle(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))


LOCATE_CHUNK = 1 << 18  # observations per pass: the (n_coef, chunk) arrays stay below 16 MB


def observation_climatology(normalizer: Normalizer, w: InterpolationWeights, times: np.ndarray) -> np.ndarray:
    """Climatology interpolated to each observation's place (weights ``w``) and time ``(n_obs,)``."""
    per_coef = apply_operator(normalizer.coefficients, w)  # (n_coef, n_obs)
    design = torch.as_tensor(harmonic_design(fractional_day_of_year(times), normalizer.n_harmonics))
    return (design * per_coef.T).sum(dim=1).numpy()


def nearest_cells(w: InterpolationWeights) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the grid cell nearest to each observation."""
    row = torch.where(w.wi < 0.5, w.i0, w.i1).numpy()
    col = torch.where(w.wj < 0.5, w.j0, w.j1).numpy()
    return row, col


def locate_observations(normalizer: Normalizer, grid: Grid, channel: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                        times: np.ndarray, chunk: int = LOCATE_CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each observation's climatology, nearest row and nearest column, ``chunk`` observations at a
    time: the same numbers as all at once, in bounded memory (O2Lnet's eight training years are 18
    million observations)."""
    times = np.asarray(times)
    clim, row, col = np.empty(len(channel)), np.empty(len(channel), np.int64), np.empty(len(channel), np.int64)
    for a in range(0, len(channel), chunk):
        part = slice(a, a + chunk)
        w = interpolation_weights(grid, channel[part], lat[part], lon[part])
        clim[part] = observation_climatology(normalizer, w, times[part])
        row[part], col[part] = nearest_cells(w)
    return clim, row, col


def nearest_cycle(cycle_times: pd.DatetimeIndex, times) -> tuple[np.ndarray, np.ndarray]:
    """Index of the cycle nearest to each time (ties go to the earlier cycle), and whether it lies
    within half a cycle interval of it."""
    cycle_times = pd.DatetimeIndex(cycle_times)
    t = pd.DatetimeIndex(times)
    pos = np.clip(cycle_times.searchsorted(t), 1, max(len(cycle_times) - 1, 1))
    before, after = cycle_times[pos - 1], cycle_times[np.minimum(pos, len(cycle_times) - 1)]
    cyc = np.where(np.abs(t - before) <= np.abs(after - t), pos - 1, pos)
    cyc = np.minimum(cyc, len(cycle_times) - 1)
    interval = (cycle_times[1] - cycle_times[0]) if len(cycle_times) > 1 else pd.Timedelta(hours=6)
    return cyc, np.asarray(np.abs(cycle_times[cyc] - t) <= interval / 2)


def grid_observations(df: pd.DataFrame, cycle_times: pd.DatetimeIndex, grid: Grid, normalizer: Normalizer,
                      platforms: list[str] | None = None) -> GriddedObservations:
    """Prepare validated observations (with a ``channel`` column) of the cycles ``cycle_times``.

    An observation belongs to the cycle nearest in time (within half an interval); others are
    left out.
    """
    cycle_times = pd.DatetimeIndex(cycle_times)
    cyc, keep = nearest_cycle(cycle_times, df["time"])
    order = np.flatnonzero(keep)[np.argsort(cyc[keep], kind="stable")]  # kept rows, by cycle
    cyc = cyc[order]
    # the columns needed, in that order (indexing copies: writable arrays for torch.as_tensor below)
    channel = df["channel"].to_numpy(np.int64)[order]
    lat, lon = df["latitude"].to_numpy(float)[order], df["longitude"].to_numpy(float)[order]
    clim, row, col = locate_observations(normalizer, grid, channel, lat, lon, df["time"].to_numpy()[order])
    std = normalizer.anomaly_std.numpy()[channel]
    value = (df["value"].to_numpy(float)[order] - clim) / std
    codes, names = pd.factorize(df["platform"].to_numpy()[order], use_na_sentinel=False)
    names = [str(name) for name in names]  # as .astype(str) names them
    platforms = platforms or sorted(set(names))
    position = {name: k for k, name in enumerate(platforms)}
    network = np.array([position.get(name, -1) for name in names], dtype=np.int64)[codes]  # -1: other
    offsets = np.searchsorted(cyc, np.arange(len(cycle_times) + 1)).copy()
    return GriddedObservations(
        cycle_times, torch.as_tensor(offsets), torch.as_tensor(channel), torch.as_tensor(row),
        torch.as_tensor(col), torch.as_tensor(value, dtype=torch.float32), torch.as_tensor(network), list(platforms),
    )


def batch_observations(obs: GriddedObservations, cycles, keep_prob: torch.Tensor | None = None,
                       generator: torch.Generator | None = None, keep_cells: torch.Tensor | None = None):
    """Concatenate the observations of ``cycles`` with their sample index, optionally thinned.

    ``keep_prob: (len(cycles), n_platforms)`` is the probability of keeping each observation of a
    platform in a sample (random thinning of the networks, value by value). ``keep_cells:
    (len(cycles), n_platforms, ny, nx)`` (bool) keeps a platform's observations in the grid cells it
    marks and drops the rest (thinning by station: a fixed station's values share a cell). Returns
    ``sample, channel, row, col, value``.

    The rows of all cycles are gathered at once; the thinning draws one uniform number per row in
    the order of the cycles, as drawing cycle by cycle would (the same numbers from ``generator``).
    """
    cycles = torch.as_tensor(cycles, dtype=torch.long).reshape(-1)
    starts = obs.offsets[cycles]
    counts = obs.offsets[cycles + 1] - starts
    sample = torch.repeat_interleave(torch.arange(len(cycles)), counts)
    # row i of sample b is starts[b] + (i - the number of rows before sample b)
    rows = torch.arange(len(sample)) + torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    if keep_prob is not None:
        p = keep_prob[sample, obs.network[rows].clamp(min=0)]
        keep = torch.rand(len(rows), generator=generator) < p
        sample, rows = sample[keep], rows[keep]
    if keep_cells is not None:
        keep = keep_cells[sample, obs.network[rows].clamp(min=0), obs.row[rows], obs.col[rows]]
        sample, rows = sample[keep], rows[keep]
    return sample, obs.channel[rows], obs.row[rows], obs.col[rows], obs.value[rows]


def window_observations(obs: GriddedObservations, cycles, slots, n_channels: int,
                        keep_prob: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        keep_cells: torch.Tensor | None = None):
    """The observations of a window of cycles per sample: slot ``j`` (cycle ``k + slots[j]``) gets
    channels ``j * n_channels + channel``; cycles outside ``obs``, or of another run than the sample's
    (``obs.runs``: at a boundary between the built-in world's runs), contribute nothing. Returns
    ``sample, channel, row, col, value`` as :func:`batch_observations` (render with
    ``n_channels * len(slots)`` channels); ``keep_cells`` thins every slot of a sample alike (a
    station is in the whole window or in none of it)."""
    cycles = torch.as_tensor(cycles, dtype=torch.long).reshape(-1)
    parts = []
    for j, offset in enumerate(slots):
        target = cycles + int(offset)
        valid = (target >= 0) & (target < len(obs))
        if obs.runs is not None:  # a window never reads another run's cycles (another weather)
            valid &= obs.runs[target.clamp(0, len(obs) - 1)] == obs.runs[cycles]
        if not bool(valid.any()):
            continue
        kp = None if keep_prob is None else keep_prob[valid]
        kc = None if keep_cells is None else keep_cells[valid]
        sample, ch, row, col, val = batch_observations(obs, target[valid], kp, generator, kc)
        parts.append((torch.nonzero(valid).flatten()[sample], ch + j * n_channels, row, col, val))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty, empty, torch.zeros(0, dtype=obs.value.dtype)
    return tuple(torch.cat(x) for x in zip(*parts))
