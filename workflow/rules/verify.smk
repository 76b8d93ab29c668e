# Verification of the reanalysis against the truth (OSSE) and the observations.


rule evaluate_year:
    input:
        unpack(forecast_model_inputs),
        reanalysis="results/reanalysis/{year}.nc",
        reference="results/reference/{year}.nc",
        feedback="results/feedback/{year}.parquet",
        normalization="results/prep/normalization.nc",
    output:
        scores=report(
            "results/evaluation/{year}/scores.csv",
            caption="../report/scores.rst",
            category="Verification",
            labels={"year": "{year}", "table": "gridded scores"},
        ),
        observations=report(
            "results/evaluation/{year}/observations.csv",
            caption="../report/observations.rst",
            category="Verification",
            labels={"year": "{year}", "table": "O-B and O-A"},
        ),
        forecast=report(
            "results/evaluation/{year}/forecast_skill.csv",
            caption="../report/forecast_skill.rst",
            category="Verification",
            labels={"year": "{year}", "table": "forecast skill from the analyses"},
        ),
        withheld=report(
            "results/evaluation/{year}/withheld.csv",
            caption="../report/withheld.rst",
            category="Verification",
            labels={"year": "{year}", "table": "withheld observations"},
        ),
        withheld_figure=report(
            "results/evaluation/{year}/withheld.png",
            caption="../report/withheld.rst",
            category="Verification",
            labels={"year": "{year}", "figure": "withheld observations"},
        ),
        reliability=report(
            "results/evaluation/{year}/reliability.csv",
            caption="../report/reliability.rst",
            category="Verification",
            labels={"year": "{year}", "table": "reliability of the std"},
        ),
        reliability_figure=report(
            "results/evaluation/{year}/reliability.png",
            caption="../report/reliability.rst",
            category="Verification",
            labels={"year": "{year}", "figure": "reliability of the std"},
        ),
    log:
        "results/logs/evaluate_year/{year}.log",
    benchmark:
        "results/benchmarks/evaluate_year/{year}.tsv"
    conda:
        ENV
    threads: SHARED_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        forecast=FORECAST,
        evaluation=evaluation_params(config),
        reference_role=REFERENCE_ROLE,
    script:
        "../scripts/evaluate_year.py"


rule tune_variant:
    input:
        unpack(forecast_model_inputs),
        unpack(cold_start_input),
        autoencoder="results/models/autoencoder.pt",
        o2lnet="results/models/o2lnet.pt",
        calibration="results/ensemble/calibration.nc",
        observations=tuning_observation_files,
        references=reference_files([TUNING_YEAR]),
    output:
        tuning=variant_tuning("results", "{variant}"),
    log:
        "results/logs/tune_variant/{variant}.log",
    benchmark:
        "results/benchmarks/tune_variant/{variant}.tsv"
    conda:
        ENV
    threads: SHARED_THREADS
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=assimilation_gpus(),
        log_every=RUN.log_every,
        checkpoint_every=RUN.checkpoint_every,
        device=RUN.device,
    params:
        year=TUNING_YEAR,
        assimilation=variant_assimilation,
        forecast=FORECAST,
    script:
        "../scripts/tune_stream.py"


rule compare_method:
    input:
        unpack(forecast_model_inputs),
        unpack(cold_start_input),
        unpack(compare_method_inputs),
        autoencoder="results/models/autoencoder.pt",
        o2lnet=compared_o2lnet,
        calibration="results/ensemble/calibration.nc",
        observations=comparison_observation_files,
    output:
        "results/comparison/runs/{method}.nc",
    log:
        "results/logs/compare_method/{method}.log",
    benchmark:
        "results/benchmarks/compare_method/{method}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=assimilation_gpus(),
        # how the stream runs, not what it makes: resources, so that a change reruns nothing
        log_every=RUN.log_every,
        checkpoint_every=RUN.checkpoint_every,
        device=RUN.device,
    params:
        year=COMPARISON_YEAR,
        days=COMPARISON.days,
        spinup_days=COMPARISON.spinup_days,
        assimilation=compared_assimilation,
        forecast=FORECAST,
    script:
        "../scripts/compare_method.py"


rule compare_methods:
    input:
        runs=compared_runs,
        reference=reference_files([COMPARISON_YEAR]),
        normalization="results/prep/normalization.nc",
    output:
        scorecard=report(
            "results/comparison/scorecard.csv",
            caption="../report/scorecard.rst",
            category="Method comparison",
            labels={"table": "scorecard"},
        ),
        cost=report(
            "results/comparison/cost.csv",
            caption="../report/cost.rst",
            category="Method comparison",
            labels={"table": "cost"},
        ),
        figure=report(
            "results/comparison/scorecard.png",
            caption="../report/scorecard.rst",
            category="Method comparison",
            labels={"figure": "scorecard"},
        ),
    log:
        "results/logs/compare_methods.log",
    benchmark:
        "results/benchmarks/compare_methods.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    script:
        "../scripts/compare_methods.py"


rule report_seams:
    input:
        latent=latent_files(seam_years()),
        previous=reanalysis_files([y - 1 for y in seam_years()]),
        autoencoder="results/models/autoencoder.pt",
        normalization="results/prep/normalization.nc",
    output:
        table=report(
            "results/evaluation/seams.csv",
            caption="../report/seams.rst",
            category="Verification",
            labels={"table": "seams between yearly streams"},
        ),
        figure=report(
            "results/evaluation/seams.png",
            caption="../report/seams.rst",
            category="Verification",
            labels={"figure": "seams between yearly streams"},
        ),
    log:
        "results/logs/report_seams.log",
    benchmark:
        "results/benchmarks/report_seams.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/report_seams.py"
