# Per-cycle latent assimilation: one independent, resumable stream per year.


rule tune_stream:
    input:
        unpack(forecast_model_inputs),
        unpack(cold_start_input),
        autoencoder="results/models/autoencoder.pt",
        o2lnet="results/models/o2lnet.pt",
        calibration="results/ensemble/calibration.nc",
        observations=tuning_observation_files,
        references=reference_files([TUNING_YEAR]),
    output:
        tuning="results/ensemble/stream_tuning.nc",
    log:
        "results/logs/tune_stream.log",
    benchmark:
        "results/benchmarks/tune_stream.tsv"
    conda:
        ENV
    threads: SHARED_THREADS
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=assimilation_gpus(),
        # how the stream runs, not what it makes: resources, so that a change reruns nothing
        log_every=RUN.log_every,
        checkpoint_every=RUN.checkpoint_every,
        device=RUN.device,
    params:
        year=TUNING_YEAR,
        assimilation=ASSIMILATION.to_dict(),
        forecast=FORECAST,
    script:
        "../scripts/tune_stream.py"


if O2LNET_REFINE.enabled:

    # the tuning for the trained O2Lnet, which its refinement learns through
    use rule tune_stream as tune_stream_base with:
        input:
            unpack(forecast_model_inputs),
            unpack(cold_start_input),
            autoencoder="results/models/autoencoder.pt",
            o2lnet=O2LNET_TRAINED,
            calibration="results/ensemble/calibration.nc",
            observations=tuning_observation_files,
            references=reference_files([TUNING_YEAR]),
        output:
            tuning=O2LNET_BASE_TUNING,
        log:
            "results/logs/tune_stream_base.log",
        benchmark:
            "results/benchmarks/tune_stream_base.tsv"
        threads: 2  # it runs alone, between O2Lnet's training and its refinement

    rule refine_o2lnet:
        input:
            unpack(forecast_model_inputs),
            unpack(cold_start_input),
            autoencoder="results/models/autoencoder.pt",
            o2lnet=O2LNET_TRAINED,
            calibration="results/ensemble/calibration.nc",
            tuning=O2LNET_BASE_TUNING,
            observations=refine_observation_files,
            references=reference_files([*O2LNET_REFINE.years, TUNING_YEAR]),
        output:
            checkpoint="results/models/o2lnet.pt",
            report="results/models/o2lnet_refine_report.json",
        log:
            "results/logs/refine_o2lnet.log",
        benchmark:
            "results/benchmarks/refine_o2lnet.tsv"
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=12000,
            runtime=120,
            gpu=assimilation_gpus(),
            log_every=RUN.log_every,
            checkpoint_every=RUN.checkpoint_every,
            device=RUN.device,
        params:
            refine=O2LNET_REFINE.to_dict(),
            tuning_year=TUNING_YEAR,
            assimilation=ASSIMILATION.to_dict(),
            forecast=FORECAST,
        script:
            "../scripts/refine_o2lnet.py"


rule assimilate_year:
    input:
        unpack(forecast_model_inputs),
        unpack(cold_start_input),
        unpack(stream_tuning_input),
        unpack(oi_covariance_input),
        autoencoder="results/models/autoencoder.pt",
        o2lnet="results/models/o2lnet.pt",
        calibration="results/ensemble/calibration.nc",
        observations=stream_observation_files,
    output:
        # update(): a failed rerun restores the year's previous outputs instead of deleting them
        latent=update("results/latent/{year}.nc"),
        feedback=update("results/feedback/{year}.parquet"),
        diagnostics=update(
            report(
                "results/diagnostics/{year}.csv",
                caption="../report/diagnostics.rst",
                category="Assimilation",
                labels={"year": "{year}"},
            )
        ),
    log:
        "results/logs/assimilate_year/{year}.log",
    benchmark:
        "results/benchmarks/assimilate_year/{year}.tsv"
    conda:
        ENV
    threads: STREAM_THREADS
    resources:
        mem_mb=8000,
        runtime=360,
        gpu=assimilation_gpus(),
        # how the stream runs, not what it makes: resources, so that a change reruns nothing
        log_every=RUN.log_every,
        checkpoint_every=RUN.checkpoint_every,
        device=RUN.device,
    params:
        assimilation=ASSIMILATION.to_dict(),
        forecast=FORECAST,
        resume_dir="results/checkpoints/assimilate",
    script:
        "../scripts/assimilate_year.py"
