"""Adapter for rule generate_lagged_ensemble."""

from _common import forecast_spec, setup

log = setup(snakemake)  # noqa: F821

from hloba.ensemble.generate import generate_lagged_ensemble  # noqa: E402

sm = snakemake  # noqa: F821
generate_lagged_ensemble(
    list(sm.input.references), sm.input.autoencoder, sm.output.calibration, forecast_spec(sm),
    figures={"error_growth": sm.output.error_growth, "sigma_clim_map": sm.output.sigma_clim_map},
    **sm.params.ensemble,
)
