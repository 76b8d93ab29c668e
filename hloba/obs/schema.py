"""The observation table (one row per observation, DESIGN section 5) and its validation.

Columns: ``time``, ``latitude``, ``longitude``, ``level`` (hPa; NaN for single-level variables),
``variable``, ``value``, ``error_std`` (same units as ``value``), ``platform``, ``station_id``.
Feedback files add ``background``, ``analysis`` and ``qc`` (0 used, 1 rejected by the first-guess
check, 2 not assimilated, 3 withheld for verification).
Simulated files may add ``gross_error`` (True where a gross error was planted).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hloba.channels import Channel
from hloba.grid import Grid

log = logging.getLogger(__name__)

OBS_COLUMNS = ("time", "latitude", "longitude", "level", "variable", "value", "error_std", "platform", "station_id")
FEEDBACK_COLUMNS = ("background", "analysis", "qc")

# reasons a row is dropped, in the order they are checked (a row counts for the first that applies)
REJECT_REASONS = ("missing value", "unknown variable or level", "off domain", "outside period", "non-positive error_std", "duplicate")


def empty_observations() -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.Series([], dtype="datetime64[ns]"), "latitude": [], "longitude": [], "level": [],
        "variable": pd.Series([], dtype=str), "value": [], "error_std": [],
        "platform": pd.Series([], dtype=str), "station_id": pd.Series([], dtype=str),
    })


def channel_of_observations(variable: pd.Series, level: pd.Series, channels: list[Channel]) -> np.ndarray:
    """Index of each observation's channel, -1 where no channel matches.

    A 3-D channel matches its variable at its level; a single-level channel matches its variable at
    any level (NaN included).
    """
    out = np.full(len(variable), -1, dtype=np.int64)
    var = variable.astype(str).to_numpy()
    lev = pd.to_numeric(level, errors="coerce").to_numpy(float)
    for k, ch in enumerate(channels):
        sel = var == ch.variable
        if ch.level is not None:
            sel &= np.isclose(lev, ch.level)
        out[sel & (out < 0)] = k
    return out


def validate_observations(
    df: pd.DataFrame, channels: list[Channel], grid: Grid, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
    return_reasons: bool = False,
) -> tuple[pd.DataFrame, dict[str, int] | pd.Series]:
    """Drop bad rows; return the clean table (with a ``channel`` column) and counts per reason
    (``return_reasons``: instead, each row's reason, ``""`` where it is kept).

    ``start`` and ``end`` bound the period (inclusive). A missing required column raises.
    """
    missing = [c for c in OBS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"observation table lacks required column(s) {missing}; required: {list(OBS_COLUMNS)}"
        )
    df = df.reset_index(drop=True).copy()
    df["time"] = pd.to_datetime(df["time"], errors="coerce")
    for col in ("latitude", "longitude", "level", "value", "error_std"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    reason = np.zeros(len(df), dtype=np.int8)  # 0 kept, k: REJECT_REASONS[k - 1] (the first that applies)

    def flag(mask, why):
        reason[np.asarray(mask) & (reason == 0)] = REJECT_REASONS.index(why) + 1

    flag(df[["time", "latitude", "longitude", "value", "error_std", "platform"]].isna().any(axis=1)
         | ~np.isfinite(df["value"].to_numpy(float)), "missing value")
    channel = channel_of_observations(df["variable"], df["level"], channels)
    flag(channel < 0, "unknown variable or level")
    flag(~grid.contains(df["latitude"].to_numpy(), df["longitude"].to_numpy()), "off domain")
    if start is not None or end is not None:
        t = df["time"]
        out = np.zeros(len(df), bool)
        if start is not None:
            out |= (t < start).to_numpy()
        if end is not None:
            out |= (t > end).to_numpy()
        flag(out, "outside period")
    flag(~(df["error_std"] > 0), "non-positive error_std")
    key = ["time", "latitude", "longitude", "level", "variable", "platform", "station_id"]
    flag(df.duplicated(subset=key, keep="first").to_numpy(), "duplicate")
    kept = reason == 0
    clean = df[kept].copy()
    clean["channel"] = channel[kept]
    if return_reasons:
        names = np.array(["", *REJECT_REASONS], dtype=object)
        return clean.reset_index(drop=True), pd.Series(names[reason], index=df.index, dtype=object)
    counts = np.bincount(reason, minlength=len(REJECT_REASONS) + 1)
    result = {why: int(counts[k + 1]) for k, why in enumerate(REJECT_REASONS)}
    return clean.reset_index(drop=True), result


def read_observations(path: str | Path, start=None, end=None) -> pd.DataFrame:
    """Read an observation file (parquet, CSV or netCDF) in the schema above; a parquet file
    with a timestamp ``time`` column is read only between ``start`` and ``end`` (inclusive) when
    they are given (other files whole: :func:`validate_observations` drops the rest)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"observation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv", ".nc", ".nc4", ".netcdf") and path.stat().st_size == 0:
        raise ValueError(f"observation file {path} is empty (0 bytes): an interrupted download or copy; replace it")
    if suffix in (".parquet", ".pq"):
        df = _read_parquet_period(path, start, end)
    elif suffix == ".csv":
        df = pd.read_csv(path)
    elif suffix in (".nc", ".nc4", ".netcdf"):
        with xr.open_dataset(path) as ds:
            df = ds.to_dataframe().reset_index()
    else:
        raise ValueError(f"observation file {path}: unknown format {suffix!r}; use .parquet, .csv or .nc")
    return df


def _read_parquet_period(path: Path, start, end) -> pd.DataFrame:
    """The rows of a parquet file between ``start`` and ``end``, filtered while reading when its
    ``time`` column holds timestamps (a stream of a month reads a month, not the year)."""
    import pyarrow.parquet as pq

    bounds = [(op, pd.Timestamp(t)) for op, t in ((">=", start), ("<=", end)) if t is not None]
    if bounds:
        schema = pq.read_schema(path)
        field = schema.field("time") if "time" in schema.names else None
        if field is not None and str(field.type).startswith("timestamp") and getattr(field.type, "tz", None) is None:
            return pd.read_parquet(path, filters=[("time", op, t.to_datetime64()) for op, t in bounds])
    return pd.read_parquet(path)


def load_observations(
    paths, channels: list[Channel], grid: Grid, start=None, end=None,
) -> pd.DataFrame:
    """Read, validate and concatenate observation files, logging the rejections per reason. Rows
    of a parquet file outside ``start``..``end`` are left out while reading (not counted)."""
    frames = []
    for path in paths:
        clean, counts = validate_observations(read_observations(path, start, end), channels, grid, start, end)
        dropped = {k: v for k, v in counts.items() if v}
        if dropped:
            log.warning("%s: dropped %d rows: %s", path, sum(dropped.values()), dropped)
        log.info("%s: %d observations kept", path, len(clean))
        frames.append(clean)
    return pd.concat(frames, ignore_index=True) if frames else empty_observations()


def write_observations(df: pd.DataFrame, path: str | Path) -> None:
    """Write an observation table as parquet, atomically."""
    from hloba.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
