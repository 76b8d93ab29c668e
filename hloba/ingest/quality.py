"""The data-quality gate of the user's files: what is checked before a year is written.

Reference fields (:func:`reference_quality`), per channel of one year:

- NaN values (any): an error naming the variable, the level, the year, the count and the first time;
- a field constant over the year (no variability): an error;
- values outside the variable's physical limits (:data:`PHYSICAL_LIMITS`), or a median far from what
  the variable takes on Earth (:func:`expected_median`): an error, with a hint when the values fit
  other units (geopotential height in m instead of geopotential in m2 s-2, degrees C instead of K,
  hPa instead of Pa, g/kg instead of kg/kg).

Observations (:func:`observation_quality`), per variable of one year, against the prepared
reference of that year: a variable whose rows were all dropped, or whose median is many standard
deviations from the reference's (with the same unit hints), is an error; rows dropped for a reason
and reference channels without any observation are warnings counted in the quality table.

The functions return tables (one row per channel or variable) whose ``status`` is ``ok``,
``warning`` or ``error`` and whose ``note`` says why; :func:`raise_on_errors` turns the first error
into one line naming the file(s), the variable and the year.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

G = 9.80665  # m s-2, standard gravity
R_DRY = 287.05  # J kg-1 K-1
P0_HPA = 1013.25

# Hard limits per variable (the pipeline's units): no atmospheric value lies outside them.
PHYSICAL_LIMITS = {
    "geopotential": (-2.0e4, 6.0e5),  # m2 s-2
    "temperature": (150.0, 350.0),  # K
    "2m_temperature": (170.0, 345.0),
    "u_component_of_wind": (-200.0, 200.0),  # m s-1
    "v_component_of_wind": (-200.0, 200.0),
    "10m_u_component_of_wind": (-100.0, 100.0),
    "10m_v_component_of_wind": (-100.0, 100.0),
    "specific_humidity": (-1.0e-3, 0.05),  # kg kg-1 (reanalyses have tiny negative values)
    "mean_sea_level_pressure": (8.5e4, 1.1e5),  # Pa
}

# Other units users' files come in: (name of the units, factor, offset) with ours = theirs * factor + offset.
UNIT_HINTS = {
    "geopotential": [("geopotential height in m (multiply by g = 9.80665)", G, 0.0)],
    "temperature": [("degrees C (add 273.15)", 1.0, 273.15)],
    "2m_temperature": [("degrees C (add 273.15)", 1.0, 273.15)],
    "specific_humidity": [("g/kg (divide by 1000)", 1.0e-3, 0.0)],
    "mean_sea_level_pressure": [("hPa (multiply by 100)", 100.0, 0.0)],
}


class DataQualityError(ValueError):
    """The user's data fail the quality gate; the message names file, variable and year."""


def expected_median(variable: str, level: float | None) -> tuple[float, float] | None:
    """The band ``(low, high)`` in which the median of ``variable`` at ``level`` (hPa) lies on
    Earth, or ``None`` when only the hard limits apply.

    Geopotential follows the hypsometric relation with a 250 K layer mean, ``R T ln(p0 / p)``,
    widened by 40 % and 5000 m2 s-2 (cold and warm climates, surface pressure); the other
    variables use their hard limits."""
    if variable == "geopotential" and level is not None and level > 0:
        phi = R_DRY * 250.0 * math.log(P0_HPA / float(level))
        return phi - 0.4 * abs(phi) - 5000.0, phi + 0.4 * abs(phi) + 5000.0
    if variable in PHYSICAL_LIMITS:
        return PHYSICAL_LIMITS[variable]
    return None


def unit_hint(variable: str, median: float, band: tuple[float, float]) -> str:
    """``"; the values look like X"`` when a conversion of ``median`` falls in ``band``, else ``""``."""
    for units, factor, offset in UNIT_HINTS.get(variable, []):
        if band[0] <= median * factor + offset <= band[1]:
            return f"; the values look like {units}"
    return ""


def _label(variable: str, level) -> str:
    return variable if level is None or (isinstance(level, float) and math.isnan(level)) else f"{variable} at {level:g} hPa"


def field_problems(values: np.ndarray, variable: str, level: float | None, times=None) -> tuple[str, str]:
    """``(status, note)`` of one channel's values ``(time, ...)`` of one year."""
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1) if np.ndim(values) > 1 else np.asarray(
        values, dtype=np.float64)[:, None]
    nan = ~np.isfinite(flat)
    if nan.all():
        return "error", "no finite value (NaN everywhere)"
    if nan.any():
        first = int(np.flatnonzero(nan.any(axis=1))[0])
        when = f" (first at {pd.Timestamp(times[first])})" if times is not None else ""
        return "error", f"{int(nan.sum())} NaN values of {nan.size}{when}: fill them or drop the variable"
    lo, hi = float(flat.min()), float(flat.max())
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1.0):
        return "error", f"constant ({lo:g}) over the whole year: a field without variability cannot be learnt"
    median = float(np.median(flat))
    band = expected_median(variable, level)
    limits = PHYSICAL_LIMITS.get(variable)
    if band is not None and not band[0] <= median <= band[1]:
        return "error", (f"median {median:.6g} is outside {band[0]:.6g}..{band[1]:.6g}, where this variable lies "
                         f"in its units ({units_of(variable)}){unit_hint(variable, median, band)}")
    if limits is not None and (lo < limits[0] or hi > limits[1]):
        outside = int(((flat < limits[0]) | (flat > limits[1])).sum())
        return "error", (f"{outside} values outside the physical limits {limits[0]:g}..{limits[1]:g} "
                         f"{units_of(variable)} (range {lo:.6g}..{hi:.6g})")
    return "ok", ""


def units_of(variable: str) -> str:
    from hloba.variables import CF_ATTRS

    return CF_ATTRS.get(variable, {}).get("units", "its units")


def reference_quality(ds, year: int, filled_times=()) -> pd.DataFrame:
    """One row per channel of the prepared reference year ``ds`` (time, [level,] latitude, longitude):
    counts, range, ``status`` and ``note``; filled missing times are a warning on every channel."""
    rows = []
    times = ds["time"].values
    n_filled = len(filled_times)
    for name, var in ds.data_vars.items():
        levels = [float(v) for v in var["level"].values] if "level" in var.dims else [None]
        for level in levels:
            values = (var.sel(level=level) if level is not None else var).values
            status, note = field_problems(values, str(name), level, times)
            if status == "ok" and n_filled:
                status, note = "warning", f"{n_filled} missing time steps filled by interpolation"
            finite = values[np.isfinite(values)]
            rows.append({
                "year": year, "variable": str(name), "level": level, "n_values": int(values.size),
                "n_nan": int(values.size - finite.size), "min": float(finite.min()) if finite.size else np.nan,
                "median": float(np.median(finite)) if finite.size else np.nan,
                "max": float(finite.max()) if finite.size else np.nan, "units": var.attrs.get("units", ""),
                "filled_times": n_filled, "status": status, "note": note,
            })
    return pd.DataFrame(rows)


def raise_on_errors(table: pd.DataFrame, what: str) -> None:
    """Raise :class:`DataQualityError` for the first ``error`` row: ``what`` names the file(s) and year."""
    bad = table[table["status"] == "error"]
    if len(bad):
        row = bad.iloc[0]
        more = f" (and {len(bad) - 1} more problem(s): see the quality table)" if len(bad) > 1 else ""
        label = _label(row["variable"], row["level"] if "level" in row else None)
        where = f"{row['file']} ({what})" if row.get("file") else what
        raise DataQualityError(f"{where}: {label}: {row['note']}{more}")


def observation_quality(df: pd.DataFrame, reasons: pd.Series, channel: np.ndarray, channels, reference_stats,
                        year: int) -> pd.DataFrame:
    """One row per (file, variable) of the year's rows ``df`` (with a ``file`` column), and one per
    reference channel nobody observed.

    ``reasons``: why each row was dropped ("" kept); ``channel``: each row's channel index (-1 none);
    ``reference_stats``: ``{channel name: (mean, std)}`` of the prepared reference year."""
    from hloba.obs.schema import REJECT_REASONS

    rows = []
    df = df.assign(_reason=np.asarray(reasons), _channel=channel)
    for (path, variable), part in df.groupby(["file", "variable"], sort=True):
        kept = part[part["_reason"] == ""]
        counts = {why: int((part["_reason"] == why).sum()) for why in REJECT_REASONS}
        row = {"year": year, "file": str(path), "variable": str(variable), "level": np.nan, "n_rows": len(part),
               "n_kept": len(kept), **{f"dropped_{k.replace(' ', '_')}": v for k, v in counts.items()},
               "median": float(kept["value"].median()) if len(kept) else np.nan, "status": "ok", "note": ""}
        dropped = {k: v for k, v in counts.items() if v}
        known = part[part["_channel"] >= 0]
        if not len(kept) and len(known):
            row["status"], row["note"] = "error", f"all {len(part)} rows of {year} dropped: {dropped}"
        elif not len(known):
            row["status"], row["note"] = "warning", "not a variable/level of the reference: ignored"
        else:
            row["status"], row["note"] = _observation_units(kept, channels, reference_stats)
            if row["status"] == "ok" and dropped:
                row["status"], row["note"] = "warning", f"dropped {dropped}"
        rows.append(row)
    observed = set(int(c) for c in channel[np.asarray(reasons) == ""])
    for k, ch in enumerate(channels):
        if k not in observed:
            rows.append({"year": year, "file": "", "variable": ch.variable, "level": ch.level, "n_rows": 0,
                         "n_kept": 0, "status": "warning", "note": "no observation of this channel in the year"})
    return pd.DataFrame(rows)


def _observation_units(kept: pd.DataFrame, channels, reference_stats) -> tuple[str, str]:
    """Each channel's kept values against the reference's mean and std: a median beyond ten
    standard deviations (over space and time) is an error, with a unit hint where one fits."""
    for k, part in kept.groupby("_channel"):
        ch = channels[int(k)]
        mean, std = reference_stats[ch.name]
        median = float(part["value"].median())
        if abs(median - mean) > 10.0 * std:
            band = (mean - 3.0 * std, mean + 3.0 * std)
            at = "" if ch.level is None else f"at {ch.level:g} hPa, "
            return "error", (f"{at}median {median:.6g} is {abs(median - mean) / std:.0f} standard deviations "
                             f"from the reference's mean {mean:.6g} {units_of(ch.variable)}"
                             f"{unit_hint(ch.variable, median, band)}")
    return "ok", ""
