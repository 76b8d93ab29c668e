# The reanalysis archive: dask-parallel decoding with Monte-Carlo uncertainty.


rule decode_year:
    input:
        latent="results/latent/{year}.nc",
        autoencoder="results/models/autoencoder.pt",
    output:
        reanalysis="results/reanalysis/{year}.nc",
    log:
        "results/logs/decode_year/{year}.log",
    benchmark:
        "results/benchmarks/decode_year/{year}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        uncertainty=config.get("uncertainty", {}),
        dask=config.get("dask", {}),
    script:
        "../scripts/decode_year.py"
