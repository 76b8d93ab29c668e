# Data preparation: the built-in reference atmosphere and normalisation statistics.


rule make_world:
    output:
        reference_files(ALL_YEARS),
    log:
        "results/logs/make_world.log",
    benchmark:
        "results/benchmarks/make_world.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        world=config["world"],
        years=list(ALL_YEARS),
    script:
        "../scripts/make_world.py"


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
