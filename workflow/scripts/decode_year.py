"""Adapter for rule decode_year (dask worker processes need the __main__ guard)."""

from _common import setup

if __name__ == "__main__":
    log = setup(snakemake)  # noqa: F821
    from hloba.archive.year import decode_year

    sm = snakemake  # noqa: F821
    uncertainty, dask = sm.params.uncertainty, sm.params.dask
    decode_year(
        sm.input.latent, sm.input.autoencoder, sm.output.reanalysis, samples=uncertainty.get("samples", 16),
        seed=uncertainty.get("seed", 0), time_chunk=dask.get("time_chunk", 40),
        workers=dask.get("workers") or sm.threads, scheduler_address=dask.get("scheduler_address"),
        std_factors=sm.input.get("std_factors"),
    )
