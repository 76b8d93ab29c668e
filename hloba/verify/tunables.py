"""Choosing a baseline's tunables (B scale, iteration cap) from a sweep on the calibration year.

A sweep runs a method once per setting and scores each run against the truth of a year that is
not compared (``scripts/sweep_b_scale.py``); :func:`choose_setting` picks from its table.
"""

from __future__ import annotations

import pandas as pd


def choose_setting(table: pd.DataFrame, tolerance: float = 0.0, skill: str = "mean_rmse",
                   cost: str = "analysis_ms_per_cycle") -> str:
    """The cheapest setting whose ``skill`` (lower is better) is within ``tolerance`` (relative)
    of the best; ``table`` has one row per setting (its index the label). ``tolerance=0`` picks
    the best; equal skill goes to the lower cost, then to the first row."""
    if table.empty:
        raise ValueError("no settings to choose from: the sweep ran nothing")
    for column in (skill, cost):
        if column not in table:
            raise ValueError(f"the sweep table has no column {column!r} (columns: {list(table.columns)})")
    if not tolerance >= 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
    good = table[table[skill] <= table[skill].min() * (1.0 + tolerance)]
    return str(good.sort_values([cost, skill], kind="stable").index[0])
