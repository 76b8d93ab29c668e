# Observations, the autoencoder and O2Lnet: the learned latent space.


if config["observations"]["source"] == "simulated":

    rule simulate_observations:
        input:
            "results/reference/{year}.nc",
        output:
            "results/obs/{year}.parquet",
        log:
            "results/logs/simulate_observations/{year}.log",
        benchmark:
            "results/benchmarks/simulate_observations/{year}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            observations=config["observations"],
        script:
            "../scripts/simulate_observations.py"

else:

    rule prepare_observations:
        input:
            files=observation_source_files(),
            reference="results/reference/{year}.nc",
        output:
            observations=update("results/obs/{year}.parquet"),
            quality=update(
                report(
                    "results/quality/{year}/observations.csv",
                    caption="../report/quality_observations.rst",
                    category="Data quality",
                    labels={"year": "{year}", "table": "observations"},
                )
            ),
        log:
            "results/logs/prepare_observations/{year}.log",
        benchmark:
            "results/benchmarks/prepare_observations/{year}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            path=config["observations"].get("path", ""),
        script:
            "../scripts/prepare_observations.py"


rule train_autoencoder:
    input:
        train=reference_files(YEARS.training),
        validation=reference_files(YEARS.validation),
        normalization="results/prep/normalization.nc",
    output:
        checkpoint="results/models/autoencoder.pt",
        report="results/models/autoencoder_report.json",
    log:
        "results/logs/train_autoencoder.log",
    benchmark:
        "results/benchmarks/train_autoencoder.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpus_requested(),
    params:
        architecture=network_architecture("autoencoder"),
        training=training_options("autoencoder"),
    script:
        "../scripts/train_autoencoder.py"


rule train_o2lnet:
    input:
        train_refs=reference_files(YEARS.training),
        train_obs=observation_files(YEARS.training),
        validation_refs=reference_files(YEARS.validation),
        validation_obs=observation_files(YEARS.validation),
        autoencoder="results/models/autoencoder.pt",
    output:
        checkpoint=O2LNET_TRAINED,
        report="results/models/o2lnet_report.json",
    log:
        "results/logs/train_o2lnet.log",
    benchmark:
        "results/benchmarks/train_o2lnet.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=12000,
        runtime=120,
        gpu=gpus_requested(),
    params:
        architecture=network_architecture("o2lnet"),
        training=training_options("o2lnet"),
        options=o2lnet_options(),
    script:
        "../scripts/train_o2lnet.py"
