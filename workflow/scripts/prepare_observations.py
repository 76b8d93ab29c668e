"""Adapter for rule prepare_observations: the user's observations of one year and their quality table."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.ingest import prepare_observations  # noqa: E402

sm = snakemake  # noqa: F821
prepare_observations(sm.params.path, sm.input.reference, int(sm.wildcards.year), sm.output.observations,
                     quality=sm.output.quality)
