"""Adapter for rule simulate_observations: one year of simulated observations."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.obs.networks import write_simulated_observations  # noqa: E402

write_simulated_observations(
    snakemake.input[0], snakemake.output[0], snakemake.params.observations, int(snakemake.wildcards.year)  # noqa: F821
)
