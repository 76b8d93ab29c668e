"""The data's clock: a step and a phase (the offset of its times from 00 UTC).

Daily data stamped at 12 UTC have step 24 h and phase 12 h; 6-hourly data from 03 UTC step 6 h
and phase 3 h; the built-in world step 6 h and phase 0. A year holds every step of its phase from
Jan 1 to Dec 31; every rule's times follow the data's (the stream reads the phase from the
calibration file, which records it from the reference's times).
"""

from __future__ import annotations

import math

import pandas as pd


def cycle_phase(times: pd.DatetimeIndex, step: pd.Timedelta) -> pd.Timedelta:
    """Offset of ``times`` from 00 UTC modulo ``step`` (``0 <= phase < step``); the times must share it."""
    times = pd.DatetimeIndex(times)
    step = pd.Timedelta(step)
    offsets = (times - times.normalize()) % step
    if len(offsets) and (offsets != offsets[0]).any():
        odd = times[offsets != offsets[0]][0]
        raise ValueError(f"times do not share one phase of their {step} step: {times[0]} and {odd}")
    return offsets[0] if len(offsets) else pd.Timedelta(0)


def year_times(year: int, step: pd.Timedelta, phase: pd.Timedelta = pd.Timedelta(0)) -> pd.DatetimeIndex:
    """Every time of ``year`` on the clock ``(step, phase)``: Jan 1 00 UTC + phase, + step, ..."""
    start = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(phase)
    return pd.date_range(start, pd.Timestamp(year=year + 1, month=1, day=1), freq=pd.Timedelta(step),
                         inclusive="left")


def cycle_times(year: int, interval: pd.Timedelta, spinup_days: float,
                phase: pd.Timedelta = pd.Timedelta(0)) -> tuple[pd.DatetimeIndex, int]:
    """All cycle times of the stream for ``year`` and the index of its first cycle of ``year``:
    ``spinup_days`` (whole steps, rounded up) before Jan 1 at ``phase`` after 00 UTC, to Dec 31."""
    times = year_times(year, interval, phase)
    n_spin = int(math.ceil(pd.Timedelta(days=spinup_days) / interval))
    return pd.date_range(times[0] - n_spin * interval, times[-1], freq=interval), n_spin


def period_cycles(times: pd.DatetimeIndex, first: int, days: float) -> int:
    """Cycles of ``times`` up to ``days`` after the cycle ``first`` (clipped to the stream's end)."""
    interval = times[1] - times[0]
    return min(len(times), first + int(round(pd.Timedelta(days=days) / interval)))


def window_cycles(window_hours: float, interval: pd.Timedelta, key: str = "assimilation.window_hours") -> int:
    """Steps in a window of ``window_hours`` (the config ``key``) at the data's step ``interval``:
    a window shorter than one step, or not a whole number of steps, is an error naming both."""
    n = pd.Timedelta(hours=window_hours) / pd.Timedelta(interval)
    if n < 1 or abs(n - round(n)) > 1e-9:
        raise ValueError(f"{key} {window_hours:g} is not a whole number (>= 1) of the data's "
                         f"{pd.Timedelta(interval) / pd.Timedelta(hours=1):g}-hour steps: give a multiple of the step")
    return int(round(n))
