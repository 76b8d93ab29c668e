"""Adapter for rule decode_year (dask worker processes need the __main__ guard)."""

from _common import setup

if __name__ == "__main__":
    log = setup(snakemake)  # noqa: F821
    from hloba.archive.year import decode_year

    sm = snakemake  # noqa: F821
    dask = sm.params.dask
    decode_year(
        sm.input.latent, sm.input.autoencoder, sm.output.reanalysis, **sm.params.uncertainty,
        time_chunk=dask["time_chunk"], workers=dask["workers"] or sm.threads,
        scheduler_address=dask["scheduler_address"], std_factors=sm.input.get("std_factors"),
        std_model=sm.input.get("std_model"),
    )
