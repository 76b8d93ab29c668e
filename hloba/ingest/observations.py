"""The user's observation files -> one validated parquet file per year."""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import pandas as pd
import xarray as xr

from hloba.ingest.layout import unreadable_file_message
from hloba.io import atomic_path

log = logging.getLogger(__name__)


def _read_observation_file(path) -> pd.DataFrame:
    """One of the user's observation files, its required columns checked; errors name the file."""
    from hloba.obs.schema import OBS_COLUMNS, read_observations
    from hloba.ingest.quality import DataQualityError

    try:
        df = read_observations(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader's error becomes one line naming the file
        if str(path) in str(err):
            raise
        raise DataQualityError(unreadable_file_message(path, err, "observation file")) from None
    lacking = [c for c in OBS_COLUMNS if c not in df.columns]
    if lacking:
        raise DataQualityError(f"observation file {path} lacks the column(s) {lacking} (it has "
                                  f"{sorted(map(str, df.columns))}); every file needs {list(OBS_COLUMNS)}")
    return df.assign(file=str(path))


def prepare_observations(pattern: str, reference, year: int, output, quality=None) -> pd.DataFrame:
    """Rule prepare_observations: the user's observations of ``year`` (files matching ``pattern``),
    validated against the prepared reference's channels and grid, as one parquet file.

    Errors, each naming the file, the variable and the year: a file that cannot be read or lacks a
    column; a file none of whose rows is usable (any time); a year without observations (the
    message lists each file's times); a variable whose rows of the year are all dropped or whose
    values do not fit the reference (units). Dropped rows and unobserved channels are warnings
    counted in ``quality`` (CSV, :func:`hloba.ingest.quality.observation_quality`)."""
    from hloba.channels import list_channels
    from hloba.grid import Grid
    from hloba.obs.schema import channel_of_observations, validate_observations, write_observations
    from hloba.ingest.quality import DataQualityError, observation_quality, raise_on_errors

    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise FileNotFoundError(f"observations.path {pattern!r} matches no files: give a parquet, CSV or netCDF "
                                "path or glob in the observation table's columns (README: your own data)")
    with xr.open_dataset(reference) as ref:
        channels, grid = list_channels(ref), Grid.from_dataset(ref)
        stats = {}
        for c in channels:  # mean and std over time and space: the scale the observations must fit
            field = ref[c.variable] if c.level is None else ref[c.variable].sel(level=c.level)
            stats[c.name] = (float(field.mean()), float(field.std()))
    frames, spans = [], []
    for f in files:
        df = _read_observation_file(f)
        usable, counts = validate_observations(df, channels, grid)
        if not len(usable):
            raise DataQualityError(
                f"observation file {f} contributes no usable observation ({len(df)} rows, dropped "
                f"{({k: v for k, v in counts.items() if v})}): check its variables, levels, positions, values "
                "and error_std against the reference")
        t = pd.to_datetime(df["time"], errors="coerce")
        spans.append(f"{Path(f).name} ({t.min()} to {t.max()})")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    t = pd.to_datetime(df["time"], errors="coerce")
    start = pd.Timestamp(year=year, month=1, day=1)
    end = pd.Timestamp(year=year + 1, month=1, day=1) - pd.Timedelta(1, "ns")
    this_year = df[(t >= start) & (t <= end)].reset_index(drop=True)
    outside = len(df) - len(this_year)
    if not len(this_year):
        raise DataQualityError(f"observations {pattern}: no observation of {year} in the files "
                               f"{'; '.join(spans[:5])}{' ...' if len(spans) > 5 else ''}: every configured year "
                               "needs observations (shifted times?)")
    clean, reasons = validate_observations(this_year, channels, grid, start, end, return_reasons=True)
    table = observation_quality(this_year, reasons, channel_of_observations(this_year["variable"], this_year["level"],
                                                                             channels), channels, stats, year)
    if quality is not None:
        with atomic_path(quality) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    raise_on_errors(table, f"observations of {year}")
    for row in table[table["status"] == "warning"].itertuples():
        log.warning("observations %d, %s %s: %s", year, row.file or "(all files)", row.variable, row.note)
    write_observations(clean.drop(columns=["channel", "file"]), output)
    log.info("wrote %s: %d observations of %d files (%d rows of other years, %d dropped)", output, len(clean),
             len(files), outside, len(this_year) - len(clean))
    return clean
