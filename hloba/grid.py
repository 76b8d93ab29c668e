"""The model grid as the rest of the pipeline sees it: regular latitude-longitude, optionally periodic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


@dataclass(frozen=True)
class Grid:
    """Regular grid, latitudes and longitudes ascending, in degrees.

    ``longitude_period`` (degrees) is set when the domain wraps around in longitude (a global grid:
    360; the built-in world: its sector width); ``latitude_period`` likewise for the doubly periodic
    built-in world. ``None`` means a bounded (regional) axis.
    """

    latitude: tuple[float, ...]
    longitude: tuple[float, ...]
    longitude_period: float | None = None
    latitude_period: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "latitude", tuple(float(v) for v in self.latitude))
        object.__setattr__(self, "longitude", tuple(float(v) for v in self.longitude))
        for name in ("longitude_period", "latitude_period"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else float(value))

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "Grid":
        lat = np.asarray(ds["latitude"].values, dtype=float)
        lon = np.asarray(ds["longitude"].values, dtype=float)
        lon_period = ds.attrs.get("longitude_period_degrees")
        if lon_period is None and ds.attrs.get("longitude_periodic", 0) and len(lon) > 1:
            lon_period = float(np.diff(lon).mean() * len(lon))
        lat_period = None
        if ds.attrs.get("latitude_periodic", 0) and len(lat) > 1:
            lat_period = float(np.diff(lat).mean() * len(lat))
        return cls(tuple(lat), tuple(lon), lon_period, lat_period)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.latitude), len(self.longitude)

    @property
    def dlat(self) -> float:
        return (self.latitude[-1] - self.latitude[0]) / max(len(self.latitude) - 1, 1)

    @property
    def dlon(self) -> float:
        return (self.longitude[-1] - self.longitude[0]) / max(len(self.longitude) - 1, 1)

    def contains(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """Whether points lie in the domain (cell edges half a spacing beyond the outer centres)."""
        lat = np.asarray(latitude, dtype=float)
        lon = np.asarray(longitude, dtype=float)
        ok_lat = (lat >= self.latitude[0] - 0.5 * self.dlat) & (lat <= self.latitude[-1] + 0.5 * self.dlat)
        if self.longitude_period is not None and self.longitude_period >= 360.0 - 1e-6:
            ok_lon = np.isfinite(lon)
        elif self.longitude_period is not None:
            ok_lon = (lon >= self.longitude[0]) & (lon < self.longitude[0] + self.longitude_period)
        else:
            ok_lon = (lon >= self.longitude[0] - 0.5 * self.dlon) & (lon <= self.longitude[-1] + 0.5 * self.dlon)
        return ok_lat & ok_lon & np.isfinite(lat)

    def area_weights(self) -> np.ndarray:
        """Cosine-latitude weights ``(ny,)`` normalised to mean 1."""
        w = np.cos(np.deg2rad(np.asarray(self.latitude)))
        return w / w.mean()
