# Data preparation: the reference (the built-in atmosphere or the user's files) and normalisation statistics.


if REFERENCE["source"] == "builtin":

    # one job per chain of the world (hloba.world.chains): independent runs, in parallel
    for world_chain, chain_years in enumerate(WORLD_CHAINS):

        rule:
            name:
                f"make_world_{world_chain}"
            output:
                reference_files(chain_years),
            log:
                f"results/logs/make_world/{world_chain}.log",
            benchmark:
                f"results/benchmarks/make_world/{world_chain}.tsv"
            conda:
                ENV
            threads: 1
            resources:
                mem_mb=4000,
                runtime=240,
            params:
                world=config["world"],
                years=list(chain_years),
                chain=world_chain,
            script:
                "../scripts/make_world.py"

else:

    rule prepare_reference:
        input:
            reference_source_files(),
        output:
            # update(): a failed rerun restores the year's previous file instead of deleting it
            reference=update("results/reference/{year}.nc"),
            quality=update(
                report(
                    "results/quality/{year}/reference.csv",
                    caption="../report/quality_reference.rst",
                    category="Data quality",
                    labels={"year": "{year}", "table": "reference"},
                )
            ),
        log:
            "results/logs/prepare_reference/{year}.log",
        benchmark:
            "results/benchmarks/prepare_reference/{year}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=8000,
            runtime=120,
        params:
            reference=REFERENCE,
            min_size=autoencoder_min_size(),
            interval_hours=INTERVAL_HOURS,
        script:
            "../scripts/prepare_reference.py"


rule compute_normalization:
    input:
        reference_files(YEARS.training),
    output:
        "results/prep/normalization.nc",
    log:
        "results/logs/compute_normalization.log",
    benchmark:
        "results/benchmarks/compute_normalization.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        harmonics=config.get("normalization", {}).get("climatology_harmonics", 3),
    script:
        "../scripts/compute_normalization.py"
