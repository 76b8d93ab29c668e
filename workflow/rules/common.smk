# Validation and small input functions shared by all rules.
import sys
from pathlib import Path

import yaml

# Make the package importable when the workflow runs from a source checkout without an install.
sys.path.insert(0, str(Path(workflow.basedir)))

from hloba.archive.settings import DecodeSettings, UncertaintySettings
from hloba.assim.catalog import METHODS
from hloba.assim.settings import (
    RefineSettings,
    RunSettings,
    StreamConfig,
    check_refine,
    settings_read_by,
)
from hloba.config import (
    ConfigError,
    check_config,
    check_paths,
    evaluation_params,
    forecast_params,
    forecast_source_file,
    reference_role,
    stream_threads,
    stream_years,
    year_sets,
)
from hloba.ingest import reference_interval_hours
from hloba.models.settings import LOSS_KEYS as O2LNET_LOSS_KEYS
from hloba.models.settings import NETWORK_TRAINING_KEYS
from hloba.verify.settings import (
    UNREFINED,
    VARIANTS,
    ComparisonSettings,
    method_settings,
    own_tuning,
    trained_o2lnet,
    trained_o2lnet_tuning,
    variant_tuning,
)
from hloba.world.chains import split_years
from hloba.world.params import WorldConfig

with open(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml") as _f:
    _SCHEMA = yaml.safe_load(_f)
try:
    CONFIG_WARNINGS = check_config(config, _SCHEMA)
    check_paths(config)
    FORECAST_SOURCE = forecast_source_file(config["forecast"])
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None

YEARS = year_sets(config)
REFERENCE = config.get("reference", {"source": "builtin"})
REFERENCE_ROLE = reference_role(
    config
)  # "truth" (built-in world) or "reference" (files)
try:
    INTERVAL_HOURS = reference_interval_hours(config)
    # typed settings, built once; their dataclasses hold the only defaults
    ASSIMILATION = StreamConfig.from_config(config)
    RUN = RunSettings.from_config(config)
    UNCERTAINTY = UncertaintySettings.from_config(config)
    DECODE = DecodeSettings.from_config(config)
    COMPARISON = ComparisonSettings.from_config(config)
except (OSError, ValueError, TypeError) as _err:
    raise WorkflowError(str(_err)) from None
FORECAST = forecast_params(config, INTERVAL_HOURS)
ALL_YEARS = YEARS.all
try:
    O2LNET_REFINE = RefineSettings.from_dict(config.get("o2lnet", {}).get("refine"))
    check_refine(O2LNET_REFINE, ASSIMILATION, ALL_YEARS)
except (ValueError, TypeError) as _err:
    raise WorkflowError(str(_err)) from None
# the trained O2Lnet's file; with o2lnet.refine on, rule refine_o2lnet writes the refined one
# (results/models/o2lnet.pt) from it and the tuning made for it (tune_stream_base)
O2LNET_BASE_TUNING = trained_o2lnet_tuning("results")
O2LNET_TRAINED = (
    trained_o2lnet("results") if O2LNET_REFINE.enabled else "results/models/o2lnet.pt"
)
# the years' streams share the cores (--set-threads assimilate_year=N overrides); a cluster
# executor leaves the total unset (each job has its own node)
try:
    _CORES = workflow.cores
except WorkflowError:
    _CORES = None
STREAM_THREADS = stream_threads(len(YEARS.reanalysis), _CORES)
# the jobs after training (tuning, each year's uncertainty, decoding and evaluation) run side by
# side: on 2 cores one thread each, two at a time, took 14.3 minutes against 17.1 with two threads
# one after the other (README: Reruns and clusters); compare_method keeps 2 threads, since its
# runs are the cost table's timings, each method alone on the cores
SHARED_THREADS = stream_threads(2, _CORES)
ENV = "../../envs/hloba.yaml"


wildcard_constraints:
    year=r"\d{4}",
    variant="|".join(VARIANTS),


def reference_files(years):
    return [f"results/reference/{year}.nc" for year in years]


def reference_source_files():
    """The user's reference files (``reference.source: files``), so that a change reruns prepare_reference."""
    import glob

    return sorted(glob.glob(REFERENCE["path"]))


def observation_source_files():
    import glob

    return sorted(glob.glob(config["observations"].get("path", "")))


def autoencoder_min_size():
    """Fewest grid points per side the autoencoder accepts (two patches)."""
    return 2 * config.get("autoencoder", {}).get("patch", 4)


def observation_files(years):
    return [f"results/obs/{year}.parquet" for year in years]


# Keys of the autoencoder/o2lnet sections that describe the network (the training loop's:
# NETWORK_TRAINING_KEYS, O2Lnet's loss: O2LNET_LOSS_KEYS, both hloba.models.settings); the split
# lives here so that each reaches its function through params.
ARCHITECTURE_KEYS = {
    "autoencoder": ("latent_channels", "patch", "width", "blocks"),
    "o2lnet": ("width", "blocks", "window_hours", "window_lead_hours"),
    "emulator": ("patch", "width", "blocks"),
}


def network_architecture(name):
    section = config.get(name, {})
    return {k: section[k] for k in ARCHITECTURE_KEYS[name] if k in section}


def training_options(name):
    section = config.get(name, {})
    options = {k: section[k] for k in NETWORK_TRAINING_KEYS if k in section}
    return options | config.get("training", {})


def o2lnet_options():
    section = config.get("o2lnet", {})
    return {k: section[k] for k in O2LNET_LOSS_KEYS if k in section}


def gpus_requested():
    """Portable GPU resource: one GPU when training is pinned to CUDA (profiles map it to the cluster)."""
    return 1 if config.get("training", {}).get("device") == "cuda" else 0


def forecast_model_inputs(wildcards):
    """Files the configured forecast model needs (the trained emulator, or the user's script)."""
    forecast = config["forecast"]
    if forecast["model"] == "emulator":
        return {"emulator": "results/models/emulator.pt"}
    if forecast["model"] == "torchscript":
        return {"scripted_model": forecast["path"]}
    if (
        FORECAST_SOURCE
    ):  # the Python callable's module: a change reruns what it forecast
        return {"forecast_module": FORECAST_SOURCE}
    return {}


def cold_start_input(wildcards):
    """The cold-start state file, when the streams start from one (a change reruns them)."""
    cold = ASSIMILATION.cold_start
    return {} if cold == "climatology" else {"cold_start": cold}


def stream_observation_files(wildcards):
    """Observation files a year's stream reads: its spin-up's years and its own."""
    return observation_files(
        stream_years(int(wildcards.year), ASSIMILATION.spinup_days, ALL_YEARS)
    )


def assimilation_gpus():
    return 1 if RUN.device == "cuda" else 0


def latent_files(years):
    return [f"results/latent/{year}.nc" for year in years]


TUNING_YEAR = YEARS.calibration[-1]


def stream_tuning_input(wildcards):
    """The tuning file, when the stream's method is tuned and tuning is on."""
    return method_tuning_input(ASSIMILATION.method)


def method_tuning_input(method):
    if not (METHODS[method].tuned and ASSIMILATION.tuning_days > 0):
        return {}
    return {"tuning": "results/ensemble/stream_tuning.nc"}


def method_covariance_input(method):
    if not METHODS[method].needs_static_covariance:
        return {}
    return {"oi_covariance": "results/ensemble/oi_covariance.nc"}


def oi_covariance_input(wildcards):
    """The static covariance, when the streams' method needs it."""
    return method_covariance_input(ASSIMILATION.method)


def tuning_observation_files(wildcards):
    return observation_files(
        stream_years(TUNING_YEAR, ASSIMILATION.spinup_days, ALL_YEARS)
    )


def reanalysis_files(years):
    return [f"results/reanalysis/{year}.nc" for year in years]


def figure_files(years):
    return [f"results/figures/{year}/maps.png" for year in years]


def evaluation_files(years):
    return [f"results/evaluation/{year}/scores.csv" for year in years]


def uncertainty_factor_input(wildcards):
    """The calibrated std for decoding (factors or network), when the streams' method is tuned (HLOBA)."""
    if not (METHODS[ASSIMILATION.method].tuned and UNCERTAINTY.calibrate):
        return {}
    if UNCERTAINTY.model == "network":
        return {"std_model": "results/ensemble/uncertainty_model.pt"}
    return {"std_factors": "results/ensemble/uncertainty_factors.nc"}


COMPARISON_YEAR = COMPARISON.compared_year(YEARS.reanalysis)


def refined_on():
    """The years of O2Lnet's refinement streams (none when it is off)."""
    return O2LNET_REFINE.years if O2LNET_REFINE.enabled else ()


def refine_years():
    """The years O2Lnet's refinement streams read (their spin-ups' too) and the tuning year."""
    streams = [*O2LNET_REFINE.years, TUNING_YEAR]
    years = {
        y for s in streams for y in stream_years(s, ASSIMILATION.spinup_days, ALL_YEARS)
    }
    return sorted(years)


def refine_observation_files(wildcards):
    return observation_files(refine_years())


def stream_year_groups():
    """The years each stream reads (its spin-up's and its own): one chain of the world holds each."""
    streams = [
        (y, ASSIMILATION.spinup_days)
        for y in (*YEARS.reanalysis, *YEARS.calibration, *refined_on())
    ]
    streams.append((COMPARISON_YEAR, COMPARISON.spinup_days))
    return [stream_years(year, days, ALL_YEARS) for year, days in streams]


# the built-in world's years as independent runs (rules make_world_{k})
try:
    WORLD_CHAINS = (
        split_years(
            ALL_YEARS,
            stream_year_groups(),
            WorldConfig.from_dict(config["world"]).max_chains,
        )
        if REFERENCE["source"] == "builtin"
        else []
    )
except (ValueError, TypeError) as _err:
    raise WorkflowError(str(_err)) from None


def seam_years():
    """Reanalysis years whose previous year is also reanalysed: their spin-up meets its archive."""
    return [y for y in YEARS.reanalysis if y - 1 in YEARS.reanalysis]


def seam_files():
    if not seam_years():
        return []
    return ["results/evaluation/seams.csv", "results/evaluation/seams.png"]


def comparison_files():
    """The comparison's outputs, when methods are configured."""
    if not COMPARISON.methods:
        return []
    return [f"results/comparison/{name}" for name in ("scorecard.csv", "cost.csv")]


def compared_runs(wildcards):
    return [f"results/comparison/runs/{m}.nc" for m in COMPARISON.methods]


def compare_method_inputs(wildcards):
    """What one compared method needs besides the models: its tuning (a variant's own when it
    changes a tuned setting) or its static covariance."""
    method = ComparisonSettings.base_method(wildcards.method)
    tuning = method_tuning_input(method)
    if tuning and own_tuning(wildcards.method, ASSIMILATION):
        tuning = {"tuning": variant_tuning("results", wildcards.method)}
    if tuning and unrefined(wildcards):  # the tuning made for the trained O2Lnet
        tuning = {"tuning": O2LNET_BASE_TUNING}
    return tuning | method_covariance_input(method)


def unrefined(wildcards):
    """The compared variant that reads O2Lnet as trained, when o2lnet.refine refines it."""
    return wildcards.method == UNREFINED and O2LNET_REFINE.enabled


def compared_o2lnet(wildcards):
    return O2LNET_TRAINED if unrefined(wildcards) else "results/models/o2lnet.pt"


def compared_assimilation(wildcards):
    """A compared method's stream settings, less those only another method reads (its params:
    a change to HLOBA's own settings reruns HLOBA and its variants, not the baselines).
    """
    method = ComparisonSettings.base_method(wildcards.method)
    return settings_read_by(ASSIMILATION.to_dict(), method)


def variant_assimilation(wildcards):
    """A compared variant's stream settings (rule tune_variant)."""
    return method_settings(wildcards.variant, ASSIMILATION).to_dict()


def comparison_observation_files(wildcards):
    return observation_files(
        stream_years(COMPARISON_YEAR, COMPARISON.spinup_days, ALL_YEARS)
    )
