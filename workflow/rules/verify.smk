# Verification of the reanalysis against the truth (OSSE) and the observations.


rule evaluate_year:
    input:
        reanalysis="results/reanalysis/{year}.nc",
        reference="results/reference/{year}.nc",
        feedback="results/feedback/{year}.parquet",
        normalization="results/prep/normalization.nc",
    output:
        scores=report(
            "results/evaluation/{year}/scores.csv",
            category="Verification",
            labels={"year": "{year}", "table": "gridded scores"},
        ),
        observations=report(
            "results/evaluation/{year}/observations.csv",
            category="Verification",
            labels={"year": "{year}", "table": "O-B and O-A"},
        ),
    log:
        "results/logs/evaluate_year/{year}.log",
    benchmark:
        "results/benchmarks/evaluate_year/{year}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        "../scripts/evaluate_year.py"
