# The reanalysis archive: dask-parallel decoding with Monte-Carlo uncertainty.


rule calibrate_uncertainty:
    input:
        unpack(forecast_model_inputs),
        unpack(cold_start_input),
        unpack(stream_tuning_input),
        autoencoder="results/models/autoencoder.pt",
        o2lnet="results/models/o2lnet.pt",
        calibration="results/ensemble/calibration.nc",
        observations=tuning_observation_files,
        reference=f"results/reference/{TUNING_YEAR}.nc",
    output:
        factors="results/ensemble/uncertainty_factors.nc",
        model="results/ensemble/uncertainty_model.pt",
    log:
        "results/logs/calibrate_uncertainty.log",
    benchmark:
        "results/benchmarks/calibrate_uncertainty.tsv"
    conda:
        ENV
    threads: SHARED_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=assimilation_gpus(),
        # how the stream runs, not what it makes: resources, so that a change reruns nothing
        log_every=RUN.log_every,
        checkpoint_every=RUN.checkpoint_every,
        device=RUN.device,
    params:
        year=TUNING_YEAR,
        assimilation=ASSIMILATION.to_dict(),
        forecast=FORECAST,
        uncertainty=UNCERTAINTY.sampling(),
        calibration=UNCERTAINTY.calibration(),
    script:
        "../scripts/calibrate_uncertainty.py"


rule decode_year:
    input:
        unpack(uncertainty_factor_input),
        latent="results/latent/{year}.nc",
        autoencoder="results/models/autoencoder.pt",
    output:
        # update(): a failed rerun restores the finished archive year instead of deleting it
        reanalysis=update("results/reanalysis/{year}.nc"),
    log:
        "results/logs/decode_year/{year}.log",
    benchmark:
        "results/benchmarks/decode_year/{year}.tsv"
    conda:
        ENV
    threads: SHARED_THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        uncertainty=UNCERTAINTY.sampling(),
        dask=DECODE.to_dict(),
    script:
        "../scripts/decode_year.py"


rule archive_zarr:
    input:
        years=reanalysis_files(YEARS.reanalysis),
    output:
        store=directory("results/reanalysis.zarr"),
    log:
        "results/logs/archive_zarr.log",
    benchmark:
        "results/benchmarks/archive_zarr.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    script:
        "../scripts/archive_zarr.py"


rule plot_reanalysis:
    input:
        reanalysis="results/reanalysis/{year}.nc",
        reference="results/reference/{year}.nc",
    output:
        maps=report(
            "results/figures/{year}/maps.png",
            caption="../report/maps.rst",
            category="Reanalysis",
            labels={"year": "{year}", "figure": "maps"},
        ),
        series=report(
            "results/figures/{year}/uncertainty_series.png",
            caption="../report/uncertainty_series.rst",
            category="Reanalysis",
            labels={"year": "{year}", "figure": "uncertainty and error"},
        ),
    log:
        "results/logs/plot_reanalysis/{year}.log",
    benchmark:
        "results/benchmarks/plot_reanalysis/{year}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        map_date=config.get("figures", {}).get("map_date", "07-01T00"),
        reference_role=REFERENCE_ROLE,
    script:
        "../scripts/plot_reanalysis.py"
