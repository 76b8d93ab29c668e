"""Observations withheld from assimilation, for verification where there is no truth.

``evaluation.withhold: {fraction, seed}`` keeps a random set of observations out of every stream
and method: whole **stations** (a ``station_id`` that reports from one position, at more than one
time: radiosondes, surface stations) and single **reports** of moving or one-off platforms
(satellite swaths, aircraft, ships: a ``station_id`` seen at several positions, or once). The
choice is a keyed hash of the station id (or of the report's id, time, position, variable and
level) compared with ``fraction``, so it is the same in every stream, year, method and rerun, for
simulated and for file observations alike. Withheld rows are still checked against the
background and get ``H(x_b)`` and ``H(x_a)`` in the feedback file, with ``qc = 3``; rule
evaluate_year scores background and analysis against them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# the feedback's qc codes: used, rejected by the first-guess check, not assimilated (free run, or the
# stream has not reached the cycle), withheld for verification
QC_USED, QC_FIRST_GUESS, QC_NOT_ASSIMILATED, QC_WITHHELD = 0, 1, 2, 3


def _uniform(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per row of ``frame`` (keyed by ``seed``)."""
    key = f"hloba-wh{int(seed) % 10**8:08d}"  # 16 characters, as pandas' hash key needs
    h = pd.util.hash_pandas_object(frame.astype(str), index=False, hash_key=key).to_numpy(np.uint64)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def fixed_stations(table: pd.DataFrame) -> pd.Series:
    """``True`` per row whose ``station_id`` reports from a single position at more than one time."""
    pos = table["latitude"].round(3).astype(str) + "," + table["longitude"].round(3).astype(str)
    by = table.assign(_pos=pos).groupby("station_id", sort=False)
    fixed = (by["_pos"].nunique() == 1) & (by["time"].nunique() > 1)
    return table["station_id"].map(fixed).fillna(False).astype(bool)


def withheld_mask(table: pd.DataFrame, fraction: float, seed: int = 0) -> np.ndarray:
    """``True`` for the rows of ``table`` (the observation schema) kept out of assimilation."""
    if fraction <= 0 or not len(table):
        return np.zeros(len(table), dtype=bool)
    station = fixed_stations(table).to_numpy()
    by_station = _uniform(table[["station_id"]], seed)
    report_cols = ["station_id", "time", "latitude", "longitude", "variable", "level"]
    by_report = _uniform(table[report_cols], seed)
    return np.where(station, by_station, by_report) < fraction
