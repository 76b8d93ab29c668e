"""Adapter for rule plot_reanalysis: maps for one date and uncertainty/error time series."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.archive.figures import plot_maps, plot_uncertainty_series  # noqa: E402

sm = snakemake  # noqa: F821
role = sm.params.reference_role
plot_maps(sm.input.reanalysis, sm.input.reference, f"{sm.wildcards.year}-{sm.params.map_date}", sm.output.maps,
          reference_name=role)
plot_uncertainty_series(sm.input.reanalysis, sm.input.reference, sm.output.series, reference_name=role)
