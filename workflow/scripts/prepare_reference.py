"""Adapter for rule prepare_reference: the user's reference files, one CF file (and quality table) per year."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.ingest import prepare_reference  # noqa: E402

sm = snakemake  # noqa: F821
year = int(sm.wildcards.year)
prepare_reference(sm.params.reference, {year: sm.output.reference}, sm.params.min_size, {year: sm.output.quality},
                  sm.params.interval_hours)
