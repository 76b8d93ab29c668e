"""Adapter for rule oi_covariance."""

from _common import forecast_spec, setup

log = setup(snakemake)  # noqa: F821

from hloba.assim.oi import oi_covariance_file  # noqa: E402

sm = snakemake  # noqa: F821
oi_covariance_file(list(sm.input.references), sm.output[0], forecast_spec(sm), **sm.params.nmc)
