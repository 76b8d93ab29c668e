"""Adapter for rule generate_lagged_ensemble."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.ensemble.generate import generate_lagged_ensemble  # noqa: E402

sm = snakemake  # noqa: F821
generate_lagged_ensemble(
    list(sm.input.references), sm.input.autoencoder, sm.output.calibration, sm.params.forecast,
    world_qg=sm.params.world_qg, emulator_path=sm.input.get("emulator"),
    figures={"error_growth": sm.output.error_growth, "sigma_clim_map": sm.output.sigma_clim_map},
    **sm.params.ensemble,
)
