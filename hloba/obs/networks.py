"""Simulated observing networks: observations of a reference (truth) year with known errors.

Network kinds:

- ``fixed``: stations at fixed random sites (the same every year), every ``interval_hours``:
  radiosondes (all channels, both levels), surface stations (lower level only);
- ``swath``: a satellite-like band ``swath_width_deg`` wide in longitude that moves east by
  ``swath_step_deg`` each cycle, ``count`` random points in it, usually one variable;
- ``random``: ``count`` randomly placed reports each cycle (aircraft-like).

Report times count ``interval_hours`` from the year's first time, so they follow the data's
phase (daily data at 12 UTC get daily reports at 12 UTC). ``enabled: false`` switches a network
off (an overlay cannot delete a key of ``config.yaml``, whose dictionaries it merges into).

Locations are continuous latitude/longitude, not grid points; values are H(truth) plus Gaussian
noise with the configured error std per variable, and a fraction of gross errors of
``gross_error_size`` error stds (flagged in the ``gross_error`` column, for testing QC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.channels import Channel, list_channels, stack_channels
from hloba.grid import Grid
from hloba.obs.operator import apply_operator, interpolation_weights

log = logging.getLogger(__name__)

KINDS = ("fixed", "swath", "random")


@dataclass(frozen=True)
class NetworkConfig:
    name: str
    kind: str
    count: int
    channels: tuple[str, ...] | str = "all"
    interval_hours: float = 6.0
    swath_width_deg: float = 20.0
    swath_step_deg: float = 37.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"observation network {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.count < 1:
            raise ValueError(f"observation network {self.name!r}: count must be >= 1")

    def channel_indices(self, channels: list[Channel]) -> list[int]:
        names = [c.name for c in channels]
        if self.channels == "all":
            return list(range(len(channels)))
        unknown = [c for c in self.channels if c not in names]
        if unknown:
            raise ValueError(f"observation network {self.name!r}: unknown channel(s) {unknown}; the data have {names}")
        return [names.index(c) for c in self.channels]


@dataclass(frozen=True)
class ObservingSystem:
    networks: tuple[NetworkConfig, ...]
    error_std: dict[str, float]
    seed: int = 7
    gross_error_fraction: float = 0.0
    gross_error_size: float = 8.0

    @classmethod
    def from_dict(cls, values: dict) -> "ObservingSystem":
        networks = tuple(
            NetworkConfig(name=name, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()
                                        if k != "enabled"})
            for name, spec in values["networks"].items() if spec.get("enabled", True)
        )
        if not networks:
            raise ValueError("observations.networks: every network is switched off (enabled: false); keep one")
        return cls(
            networks=networks, error_std=dict(values["error_std"]), seed=int(values.get("seed", 7)),
            gross_error_fraction=float(values.get("gross_error_fraction", 0.0)),
            gross_error_size=float(values.get("gross_error_size", 8.0)),
        )

    def error_of(self, variable: str) -> float:
        try:
            return float(self.error_std[variable])
        except KeyError:
            raise ValueError(f"observations.error_std has no entry for variable {variable!r}") from None


def random_locations(grid: Grid, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniformly distributed points inside the domain."""
    lat0, lat1 = grid.latitude[0] - 0.5 * grid.dlat, grid.latitude[-1] + 0.5 * grid.dlat
    if grid.longitude_period is not None:
        lon0, lon1 = grid.longitude[0], grid.longitude[0] + grid.longitude_period
    else:
        lon0, lon1 = grid.longitude[0] - 0.5 * grid.dlon, grid.longitude[-1] + 0.5 * grid.dlon
    return rng.uniform(lat0, lat1, n), rng.uniform(lon0, np.nextafter(lon1, lon0), n)


def _network_rows(net: NetworkConfig, times: pd.DatetimeIndex, grid: Grid, channels: list[Channel],
                  site_rng: np.random.Generator, rng: np.random.Generator) -> dict[str, np.ndarray]:
    hours = (times - times[0]) / pd.Timedelta(hours=1)  # from the data's first time: its own phase
    cycles = np.flatnonzero(np.isclose(np.mod(hours, net.interval_hours), 0.0))
    chans = np.array(net.channel_indices(channels))
    if net.kind == "fixed":
        lat, lon = random_locations(grid, net.count, site_rng)
        t_idx = np.repeat(cycles, net.count * len(chans))
        site = np.tile(np.repeat(np.arange(net.count), len(chans)), len(cycles))
        lat, lon = lat[site], lon[site]
        ch = np.tile(chans, len(cycles) * net.count)
        station = np.array([f"{net.name}-{s:04d}" for s in range(net.count)])[site]
    else:
        n = len(cycles) * net.count
        t_idx = np.repeat(cycles, net.count)
        lat, lon = random_locations(grid, n, rng)
        if net.kind == "swath":
            period = grid.longitude_period or (grid.longitude[-1] - grid.longitude[0] + grid.dlon)
            start = grid.longitude[0] + np.mod(np.arange(len(cycles)) * net.swath_step_deg, period)
            offset = rng.uniform(0.0, min(net.swath_width_deg, period), n)
            lon = start[np.repeat(np.arange(len(cycles)), net.count)] + offset
            if grid.longitude_period is not None:
                lon = grid.longitude[0] + np.mod(lon - grid.longitude[0], period)
            else:
                lon = np.minimum(lon, grid.longitude[-1] + 0.5 * grid.dlon)
            ch = rng.choice(chans, n)
            station = np.full(n, f"{net.name}")
        else:
            ch = rng.choice(chans, n)
            station = np.array([f"{net.name}-{i:06d}" for i in range(n)])
    return {"t_idx": t_idx, "channel": ch, "latitude": lat, "longitude": lon, "station_id": station}


def simulate_observations(truth: xr.Dataset, system: ObservingSystem, year: int) -> pd.DataFrame:
    """Observations of one truth year by every network of ``system`` (rows in time order)."""
    grid = Grid.from_dataset(truth)
    channels = list_channels(truth)
    x = torch.from_numpy(stack_channels(truth, channels).astype(np.float64))
    times = pd.DatetimeIndex(truth["time"].values)
    rng = np.random.default_rng([system.seed, year])
    frames = []
    for k, net in enumerate(system.networks):
        site_rng = np.random.default_rng([system.seed, 10_000 + k])  # same sites every year
        rows = _network_rows(net, times, grid, channels, site_rng, rng)
        w = interpolation_weights(grid, rows["channel"], rows["latitude"], rows["longitude"])
        exact = apply_operator(x, w, torch.as_tensor(rows["t_idx"])).numpy()
        sigma = np.array([system.error_of(c.variable) for c in channels])[rows["channel"]]
        value = exact + sigma * rng.standard_normal(len(exact))
        gross = rng.random(len(exact)) < system.gross_error_fraction
        value[gross] += rng.choice([-1.0, 1.0], gross.sum()) * system.gross_error_size * sigma[gross]
        frames.append(pd.DataFrame({
            "time": times[rows["t_idx"]],
            "latitude": rows["latitude"],
            "longitude": rows["longitude"],
            "level": np.array([np.nan if c.level is None else c.level for c in channels])[rows["channel"]],
            "variable": np.array([c.variable for c in channels], dtype=object)[rows["channel"]],
            "value": value,
            "error_std": sigma,
            "platform": net.name,
            "station_id": rows["station_id"],
            "gross_error": gross,
        }))
        log.info("%d: network %s: %d observations (%d gross errors)", year, net.name, len(exact), gross.sum())
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def write_simulated_observations(reference_path, output_path, system: dict | ObservingSystem, year: int) -> pd.DataFrame:
    """Simulate one year of observations from a reference file and write them as parquet."""
    from hloba.obs.schema import write_observations

    if isinstance(system, dict):
        system = ObservingSystem.from_dict(system)
    with xr.open_dataset(reference_path) as truth:
        df = simulate_observations(truth.load(), system, year)
    write_observations(df, output_path)
    log.info("%d: wrote %d observations to %s", year, len(df), output_path)
    return df
