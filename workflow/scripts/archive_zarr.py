"""Adapter for rule archive_zarr: the multi-year archive as one consolidated zarr store."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.archive.year import write_zarr_archive  # noqa: E402

write_zarr_archive(list(snakemake.input.years), snakemake.output.store)  # noqa: F821
