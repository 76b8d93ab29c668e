# Forecast models and the time-lagged ensemble calibration.


rule train_emulator:
    input:
        train=reference_files(YEARS.training),
        validation=reference_files(YEARS.validation),
        normalization="results/prep/normalization.nc",
    output:
        checkpoint="results/models/emulator.pt",
        report="results/models/emulator_report.json",
    log:
        "results/logs/train_emulator.log",
    benchmark:
        "results/benchmarks/train_emulator.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpus_requested(),
    params:
        architecture=network_architecture("emulator"),
        training=training_options("emulator"),
        rollout=config.get("emulator", {}).get("rollout", 2),
        interval_hours=INTERVAL_HOURS,
    script:
        "../scripts/train_emulator.py"


rule generate_lagged_ensemble:
    input:
        unpack(forecast_model_inputs),
        references=reference_files(YEARS.calibration),
        autoencoder="results/models/autoencoder.pt",
    output:
        calibration="results/ensemble/calibration.nc",
        error_growth=report(
            "results/ensemble/error_growth.png",
            caption="../report/forecast_model.rst",
            category="Forecast model",
        ),
        sigma_clim_map=report(
            "results/ensemble/sigma_clim_map.png",
            caption="../report/forecast_model.rst",
            category="Forecast model",
        ),
    log:
        "results/logs/generate_lagged_ensemble.log",
    benchmark:
        "results/benchmarks/generate_lagged_ensemble.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        forecast=FORECAST,
        ensemble=config.get("ensemble", {}),
    script:
        "../scripts/generate_lagged_ensemble.py"


rule oi_covariance:
    input:
        unpack(forecast_model_inputs),
        references=reference_files(YEARS.calibration),
    output:
        "results/ensemble/oi_covariance.nc",
    log:
        "results/logs/oi_covariance.log",
    benchmark:
        "results/benchmarks/oi_covariance.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        forecast=FORECAST,
        nmc=COMPARISON.nmc,
    script:
        "../scripts/oi_covariance.py"
