"""Bring your own data: the user's reference and observation files in the pipeline's layout.

:func:`open_reference` reads netCDF files (a path or glob) or a zarr store and returns one dataset
in the layout of the built-in world's reference files:

- variables renamed by ``variables`` (``{their name: ours}``, e.g. ERA5 ``z: geopotential``); only
  the mapped variables are kept;
- coordinates renamed to ``time``, ``level``, ``latitude``, ``longitude`` (ERA5's ``valid_time`` and
  ``pressure_level``, ``lat``/``lon``, ``plev``, ... are recognised; ``coords`` adds more);
- ``levels`` selected on 3-D variables; 2-D variables (no level) stay single-level channels;
- an optional ``region`` box (a regional subset of, e.g., a global file);
- latitudes ascending (descending files, as ERA5's, are flipped), longitudes ascending;
- the longitude axis is periodic when the grid covers 360 degrees (``periodic: auto``), or as
  ``periodic: true/false`` says; latitude is never periodic;
- the time step is the data's: the most common step; steps that are not whole multiples of it
  are an error, whole multiples are gaps whose missing times are listed and filled by linear
  interpolation in time (or an error with ``fill_missing: false``).

:func:`prepare_reference` writes it as one CF netCDF file per year. :func:`prepare_observations`
turns the user's observation files (parquet, CSV or netCDF in the table of
:mod:`hloba.obs.schema`) into one validated parquet file per year.
"""

from hloba.ingest.layout import ReferenceFilesError, subset_region, time_step
from hloba.ingest.observations import prepare_observations
from hloba.ingest.reference import (
    ReferenceSpec, data_interval_hours, open_reference, prepare_reference, reference_interval_hours,
)

__all__ = ["ReferenceFilesError", "ReferenceSpec", "data_interval_hours", "open_reference", "prepare_observations",
           "prepare_reference", "reference_interval_hours", "subset_region", "time_step"]
