"""Observations withheld from assimilation, for verification where there is no truth.

``evaluation.withhold: {fraction, seed}`` keeps a random set of observations out of every stream
and method: whole **stations** (a ``station_id`` that reports from one position, at more than one
time: radiosondes, surface stations) and single **reports** of moving or one-off platforms
(satellite swaths, aircraft, ships: a ``station_id`` seen at several positions, or once). Each
network (``platform``) of stations loses ``fraction`` of its stations, not a number that varies with
the draw: its stations are ranked by a keyed hash of their ids and the first ``n * fraction`` are
withheld (a whole number: ``floor(n * fraction + u)`` with ``u`` a keyed hash of the platform, so
``n * fraction`` on average). Drawn station by station instead, 10 % of 80 radiosondes was 2
stations with one seed and 12 with another, and the change a withholding makes to the scores
followed that count more than the fraction asked for. Reports are withheld one by one, a keyed
hash of the report's id, time, position, variable and level compared with ``fraction``. The set is
the same in every stream, year, method and rerun that read the same stations, for simulated and
for file observations alike (a station that appears or disappears in a year's files can move the
ranks of that network there). Withheld rows are still checked against the
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


def withheld_stations(stations: pd.DataFrame, fraction: float, seed: int = 0) -> set:
    """The withheld ids of ``stations`` (columns ``platform``, ``station_id``, one row a station):
    per platform of ``n`` stations the ``floor(n * fraction + u)`` of smallest keyed hash."""
    stations = stations.drop_duplicates(["platform", "station_id"])
    rank = stations.assign(_u=_uniform(stations[["station_id"]], seed)).sort_values(["platform", "_u", "station_id"])
    platforms = rank["platform"].drop_duplicates()
    offset = dict(zip(platforms, _uniform(platforms.to_frame(), seed + 1)))
    out = set()
    for platform, group in rank.groupby("platform", sort=False):
        count = int(np.floor(len(group) * fraction + offset[platform]))
        out.update(group["station_id"].iloc[:count])
    return out


def withheld_mask(table: pd.DataFrame, fraction: float, seed: int = 0) -> np.ndarray:
    """``True`` for the rows of ``table`` (the observation schema) kept out of assimilation."""
    if fraction <= 0 or not len(table):
        return np.zeros(len(table), dtype=bool)
    station = fixed_stations(table).to_numpy()
    ids = withheld_stations(table.loc[station, ["platform", "station_id"]], fraction, seed)
    report_cols = ["station_id", "time", "latitude", "longitude", "variable", "level"]
    by_report = _uniform(table[report_cols], seed) < fraction
    return np.where(station, table["station_id"].isin(ids).to_numpy(), by_report)
