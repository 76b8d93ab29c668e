"""Adapter for rule prepare_reference: the user's reference files, one CF file per year."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.ingest import prepare_reference  # noqa: E402

sm = snakemake  # noqa: F821
prepare_reference(sm.params.reference, dict(zip(sm.params.years, sm.output[: len(sm.params.years)])),
                  sm.params.min_size, sm.output.missing, sm.params.interval_hours)
