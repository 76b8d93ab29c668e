"""Run the built-in atmosphere and write reference years as CF-compliant xarray datasets.

One continuous trajectory per chain (:mod:`hloba.world.chains`): it starts ``spinup_days`` before
Jan 1 of the chain's first year from broadband noise (the spin-up is discarded), then runs through
every year up to its last one, yielding each requested year as it completes. Chain ``k`` starts
from the ``k + 1``-th noise field drawn with the world's seed, so chain 0 is the trajectory of a
world with one chain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from hloba import __version__
from hloba.normalization import fractional_day_of_year
from hloba.variables import COORD_ATTRS, cf_attrs
from hloba.world.atmosphere import grid_coordinates, longitude_period, mid_level_hpa, physical_fields
from hloba.world.params import WORLD_PRECISIONS, WorldConfig
from hloba.world.qg import SECONDS_PER_DAY, QGModel, random_initial_state

log = logging.getLogger(__name__)

PRECISIONS = {name: getattr(torch, name) for name in WORLD_PRECISIONS}  # world.precision -> dtype


def world_dtype(config: WorldConfig) -> torch.dtype:
    """The dtype the world steps in (``world.precision``)."""
    return PRECISIONS[config.precision]


def day_of_year(times: pd.DatetimeIndex | pd.Timestamp) -> np.ndarray:
    """Fractional day of year (0 at Jan 1 00:00) used by the seasonal forcing."""
    return fractional_day_of_year(times)


def year_times(year: int, interval_hours: float) -> pd.DatetimeIndex:
    """Output times of one calendar year: Jan 1 00:00 up to the last time before the next Jan 1."""
    start = pd.Timestamp(year=year, month=1, day=1)
    end = pd.Timestamp(year=year + 1, month=1, day=1)
    times = pd.date_range(start, end, freq=pd.Timedelta(hours=interval_hours), inclusive="left")
    return times


def fields_to_dataset(
    fields: dict[str, np.ndarray], times: pd.DatetimeIndex, config: WorldConfig, chain: int = 0,
) -> xr.Dataset:
    """Wrap stacked physical fields (time first) as a CF dataset in the layout of DESIGN section 5."""
    p = config.qg
    lat, lon = grid_coordinates(p, config.center_latitude)
    levels = np.array([p.upper_level_hpa, p.lower_level_hpa])
    data_vars = {}
    for name, values in fields.items():
        attrs = cf_attrs(name)
        if values.ndim == 4:
            dims = ("time", "level", "latitude", "longitude")
        else:
            dims = ("time", "latitude", "longitude")
            attrs["level_hpa"] = mid_level_hpa(p) if name == "temperature" else p.lower_level_hpa
        data_vars[name] = xr.Variable(dims, values.astype(np.float32), attrs)
    coords = {
        "time": xr.Variable("time", times, COORD_ATTRS["time"]),
        "level": xr.Variable("level", levels, COORD_ATTRS["level"]),
        "latitude": xr.Variable("latitude", lat, COORD_ATTRS["latitude"]),
        "longitude": xr.Variable("longitude", lon, COORD_ATTRS["longitude"]),
    }
    attrs = {
        "Conventions": "CF-1.8",
        "title": "hloba built-in atmosphere: two-layer quasi-geostrophic model with moisture",
        "source": f"hloba {__version__} two-layer QG (Phillips) world",
        "hloba_version": __version__,
        "world_parameters": json.dumps(p.to_dict(), sort_keys=True),
        "world_seed": config.seed,
        "world_precision": config.precision,
        "world_transforms": config.transforms,
        "world_chain": int(chain),
        "spinup_days": config.spinup_days,
        "longitude_periodic": 1,
        "longitude_period_degrees": longitude_period(p, config.center_latitude),
        "latitude_periodic": 1,
    }
    return xr.Dataset(data_vars, coords, attrs)


def year_fields(model: QGModel, states: Sequence[torch.Tensor], doys: np.ndarray, chunk: int = 124) -> dict[str, np.ndarray]:
    """The atmospheric fields (float32, time first) of spectral states ``(1, 3, ny, nx//2+1)`` on days of
    year ``doys``, :func:`physical_fields` of ``chunk`` states at a time (the same numbers as one by one)."""
    parts: dict[str, list[np.ndarray]] = {}
    for a in range(0, len(states), chunk):
        grid = model.to_grid(torch.cat(list(states[a:a + chunk])))
        doy = torch.as_tensor(np.asarray(doys[a:a + chunk]), dtype=torch.float64)
        for name, value in physical_fields(model, grid, doy).items():
            parts.setdefault(name, []).append(value.cpu().numpy().astype(np.float32))
    return {name: np.concatenate(values) for name, values in parts.items()}


def simulate_years(
    config: WorldConfig,
    years: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    chain: int = 0,
) -> Iterator[tuple[int, xr.Dataset]]:
    """Yield ``(year, dataset)`` for each requested year, in order, from one continuous run: chain
    ``chain`` of the world (its own initial noise)."""
    years = sorted(set(int(y) for y in years))
    if not years:
        raise ValueError("no years requested: give at least one year")
    p = config.qg
    if config.transforms == "pocketfft" and torch.device(device).type != "cpu":
        raise ValueError(f"world.transforms: pocketfft steps the world on the CPU, not on {device}: "
                         "run make_world on the CPU or set world.transforms: torch")
    model = QGModel(p, dtype=world_dtype(config), transforms=config.transforms).to(device)
    if int(chain) < 0:
        raise ValueError(f"chain {chain} must be >= 0")
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(int(chain) + 1):
        state = random_initial_state(p, 1, generator, config.initial_rms_wind_m_s, dtype=world_dtype(config),
                                     transforms=config.transforms)
    state = state.to(device)
    sh = model.to_spectral(state) * model.dealias
    interval = pd.Timedelta(hours=config.output_interval_hours)
    start = pd.Timestamp(year=years[0], month=1, day=1) - pd.Timedelta(days=config.spinup_days)
    start = start.floor(interval)
    stop = pd.Timestamp(year=years[-1] + 1, month=1, day=1)
    n_outputs = int((stop - start) / interval)
    dt_days = p.dt_seconds / SECONDS_PER_DAY
    log.info(
        "world chain %d: %dx%d, dt %.1f min, %s, %s transforms, spin-up from %s, %d outputs to %s, years %s",
        chain, p.nx, p.ny, p.dt_minutes, config.precision, config.transforms, start, n_outputs, stop, years,
    )
    times = pd.date_range(start, periods=n_outputs, freq=interval)
    doys = day_of_year(times)
    kept: list[int] = []  # outputs of the year being run, as spectral states in `states`
    states: list[torch.Tensor] = []
    bar = tqdm(total=n_outputs, desc=f"world chain {chain}", unit="6h" if interval == pd.Timedelta(hours=6) else "step",
               disable=not progress, mininterval=5.0)
    with torch.no_grad():
        for n, time in enumerate(times):
            if time.year in years:
                kept.append(n)
                states.append(sh)
            doy0 = torch.tensor(doys[n], dtype=torch.float64)
            for i in range(config.steps_per_output):
                sh = model.step_spectral(sh, doy0 + i * dt_days)
            if not torch.isfinite(sh).all():
                raise FloatingPointError(
                    f"the world blew up after {time}: lower world.qg.dt_minutes or the shear"
                )
            bar.update(1)
            if kept and (n + 1 == n_outputs or times[n + 1].year != time.year):
                fields = year_fields(model, states, doys[kept])
                ds = fields_to_dataset(fields, times[kept], config, chain)
                log.info("world: year %d done (max wind %.1f m/s)", time.year, float(np.abs(ds.u_component_of_wind).max()))
                kept, states = [], []
                yield time.year, ds
    bar.close()
