"""CF metadata of the variables hloba knows (WeatherBench-2 style long names).

One place for names, units and standard names, so that every file the pipeline writes
carries the same attributes.
"""

from __future__ import annotations

CF_ATTRS: dict[str, dict[str, str]] = {
    "geopotential": {
        "units": "m2 s-2", "standard_name": "geopotential", "long_name": "Geopotential",
    },
    "temperature": {
        "units": "K", "standard_name": "air_temperature", "long_name": "Temperature",
    },
    "u_component_of_wind": {
        "units": "m s-1", "standard_name": "eastward_wind", "long_name": "U component of wind",
    },
    "v_component_of_wind": {
        "units": "m s-1", "standard_name": "northward_wind", "long_name": "V component of wind",
    },
    "specific_humidity": {
        "units": "kg kg-1", "standard_name": "specific_humidity", "long_name": "Specific humidity",
    },
    "mean_sea_level_pressure": {
        "units": "Pa", "standard_name": "air_pressure_at_mean_sea_level",
        "long_name": "Mean sea level pressure",
    },
    "2m_temperature": {
        "units": "K", "standard_name": "air_temperature", "long_name": "2 metre temperature",
    },
    "10m_u_component_of_wind": {
        "units": "m s-1", "standard_name": "eastward_wind", "long_name": "10 metre U wind component",
    },
    "10m_v_component_of_wind": {
        "units": "m s-1", "standard_name": "northward_wind", "long_name": "10 metre V wind component",
    },
}

COORD_ATTRS: dict[str, dict[str, str]] = {
    "latitude": {"units": "degrees_north", "standard_name": "latitude", "long_name": "Latitude", "axis": "Y"},
    "longitude": {"units": "degrees_east", "standard_name": "longitude", "long_name": "Longitude", "axis": "X"},
    "level": {
        "units": "hPa", "standard_name": "air_pressure", "long_name": "Pressure level",
        "positive": "down", "axis": "Z",
    },
    "time": {"standard_name": "time", "long_name": "Time", "axis": "T"},
}


def cf_attrs(name: str) -> dict[str, str]:
    """CF attributes of a known variable; a ``KeyError`` names the known ones."""
    try:
        return dict(CF_ATTRS[name])
    except KeyError:
        raise KeyError(f"unknown variable {name!r}; known: {sorted(CF_ATTRS)}") from None
