"""Typed settings of the assimilation stage, built once at the boundary (rule adapters, the CLI).

The dataclasses' defaults are the only defaults: the workflow builds :class:`StreamConfig` from
the config once (``common.smk``) and reads ``spinup_days``, ``tuning_days`` and ``method`` from it.

- :class:`StreamConfig`: what a stream's outputs depend on (the rule's ``params``, and the resume
  fingerprint);
- :class:`RunSettings`: how it runs (log and checkpoint cadence, device), which changes no output
  and so reruns nothing;
- :class:`StreamInputs`: the files and the forecast model every stream entry point reads;
- :class:`RefineSettings`: the ``o2lnet.refine`` section (rule ``refine_o2lnet``).

Nothing here imports torch: the Snakefile builds these settings while it parses, on every start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hloba.assim.catalog import DECODED_INCREMENTS, LEAD_GUESSES, METHODS, NAMES, UPDATE_FORMS, WEIGHTED_STATES
from hloba.models.settings import check_precision

if TYPE_CHECKING:  # torch-free at import: the Snakefile builds these settings while it parses
    from hloba.forecast import ForecastSpec

RUN_KEYS = ("checkpoint_every", "log_every", "device")
# hloba's static background variance: the calibration's (6-hour forecasts from the truth, the paper's)
# or refitted by rule tune_stream to the background errors of a cycling stream
BACKGROUND_VARIANCES = ("forecast", "cycling")


@dataclass(frozen=True)
class StreamConfig:
    """The config's ``assimilation`` section (less :data:`RUN_KEYS`) and ``evaluation.withhold``."""

    method: str = "hloba"
    spinup_days: float = 30.0
    qc_threshold: float = 4.0  # kappa of the first-guess check
    max_rejected_fraction: float = 0.5  # of a channel's observations over a day, else the stream stops
    withhold_fraction: float = 0.0  # of stations/reports kept out of assimilation (evaluation.withhold)
    withhold_seed: int = 0
    rotation: bool = True  # update in the calibration's decorrelating coordinates
    adaptive_inflation: bool = True
    update: str = "posterior"  # hloba: weigh O2Lnet's posterior as it is (the paper) or its likelihood
    calibrate_observation_variance: bool = False  # hloba: per-band factor of the estimate's variance (tune_stream)
    background_variance: str = "forecast"  # hloba: static variance from forecasts from the truth or cycling errors
    # hloba: the model-space analysis is the whole decoded increment D(z_a) - D(z_b) over D(z_b) (the
    # paper's) or that increment weighted per channel, the weights fitted by rule tune_stream
    decoded_increment: str = "full"
    # hloba with decoded_increment: weighted: the stream forecasts from the weighted combination
    # x_w = D(z_b) + g (D(z_a) - D(z_b)) itself (combined) or from D(E(x_w)), the archive's decoding
    # of the latent record E(x_w) (projected), or from x_w = x_b + g (D(z_a) - D(z_b)), the weighted
    # decoded increment added to the background itself (incremental), or from x_b + h (D(z_b) - x_b)
    # + g (D(z_a) - D(z_b)), h and g tuned together (blended); the latent record is E(x_w), or with
    # combined z_b, z_a and g, from which the archive decodes x_w (blended: plus the kept part
    # (1 - h) (x_b - D(z_b)) of each cycle; hloba.latent)
    weighted_state: str = "projected"
    # hloba with decoded_increment: weighted: how many times rule tune_stream refits the weights to a
    # stream that used the weights of the fit before (0: fitted once, to a stream that took whole
    # increments)
    increment_weight_refits: int = 0
    # the fraction of the way from the weights before to the refitted ones that each refit moves
    # (1: to the refit itself; below 1, a damped refit that converges to weights the stream using
    # them fits again, where a whole step alternates)
    increment_weight_step: float = 1.0
    # hloba with decoded_increment: weighted: the weights per channel (1) or per channel and octave
    # band of the scales (hloba.bands: 5 bands split at 32, 16, 8 and 4 grid lengths), fitted per band
    increment_bands: int = 1
    # hloba with an O2Lnet window that reaches later cycles: the state their observations are checked
    # against, the background's forecast M^j(x_b) (a forecast of its own where the stream runs no
    # lagged members), the background itself (persistence) or x_b + j (x_b - x_a) of the previous
    # analysis x_a (extrapolated); neither of the last two runs a forecast
    lead_guess: str = "forecast"
    correlated_gain: bool = False  # gain of correlated errors (else: only the variance accounts for them)
    # hloba: each analysis corrected by its own increment and those of the later cycles up to this many
    # hours after it (whole data steps), the gains fitted by rule tune_stream (hloba.smoother; 0: its
    # own increment only); None: the filter's analyses (the paper's)
    smoother_hours: float | None = None
    # hloba: O2Lnet's pass at each cycle in bfloat16 (as it was trained; hloba.models.o2lnet.inference_pass)
    # or float32; auto: bfloat16 where it pays (training.bfloat16_pays: CPUs with AMX or avx512_bf16)
    o2lnet_precision: str = "auto"
    # every method: the autoencoder's passes without gradients in the streams (the background's
    # encoding, the decoding of analyses) and wherever a stream's latent record is decoded (the
    # file records it) in bfloat16 or float32; auto as o2lnet_precision. Gradients stay float32.
    autoencoder_precision: str = "auto"
    inflation_groups: int = 32  # bands of update coordinates with their own inflation
    inflation_smoothing: float = 0.05
    inflation_min: float = 0.5
    inflation_max: float = 1.0e4
    cold_start: str = "climatology"  # or a netCDF file with one state of the data's channels
    tuning_days: float = 60.0  # length of the tuning streams on the calibration year (0: no tuning)
    var_tolerance: float = 1e-3  # l3dvar/l4dvar: relative gradient tolerance
    var_max_iterations: int = 10  # l3dvar/l4dvar: L-BFGS iterations per analysis (cost evaluations <= 1.25x)
    var_b_scale: float = 1.0  # l3dvar/l4dvar: B = var_b_scale * sigma_clim2
    window_hours: float = 24.0  # l4dvar: length of the assimilation window (a whole number of cycle steps)
    oi_b_scale: float = 1.0  # oi: B = oi_b_scale * the NMC covariance (rule oi_covariance)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"assimilation.method {self.method!r} is not one of {NAMES}")
        if self.update not in UPDATE_FORMS:
            raise ValueError(f"assimilation.update {self.update!r} is not one of {UPDATE_FORMS}")
        check_precision(self.o2lnet_precision, "assimilation.o2lnet_precision")
        check_precision(self.autoencoder_precision, "assimilation.autoencoder_precision")
        if self.background_variance not in BACKGROUND_VARIANCES:
            raise ValueError(f"assimilation.background_variance {self.background_variance!r} is not one of "
                             f"{BACKGROUND_VARIANCES}")
        if self.decoded_increment not in DECODED_INCREMENTS:
            raise ValueError(f"assimilation.decoded_increment {self.decoded_increment!r} is not one of "
                             f"{DECODED_INCREMENTS}")
        if self.weighted_state not in WEIGHTED_STATES:
            raise ValueError(f"assimilation.weighted_state {self.weighted_state!r} is not one of {WEIGHTED_STATES}")
        if self.lead_guess not in LEAD_GUESSES:
            raise ValueError(f"assimilation.lead_guess {self.lead_guess!r} is not one of {LEAD_GUESSES}")
        if self.decoded_increment == "weighted" and self.tuning_days <= 0:
            raise ValueError("assimilation.decoded_increment: weighted has its weights fitted by the tuning "
                             "streams: set assimilation.tuning_days > 0 or decoded_increment: full")
        if self.background_variance == "cycling" and self.tuning_days <= 0:
            raise ValueError("assimilation.background_variance: cycling is refitted by the tuning streams: set "
                             "assimilation.tuning_days > 0 or background_variance: forecast")
        if self.increment_weight_refits < 0:
            raise ValueError(f"assimilation.increment_weight_refits {self.increment_weight_refits} must be >= 0")
        if not 0.0 < self.increment_weight_step <= 1.0:
            raise ValueError(f"assimilation.increment_weight_step {self.increment_weight_step} must be in (0, 1]")
        object.__setattr__(self, "increment_weight_step", float(self.increment_weight_step))  # 1 and 1.0 alike
        if not isinstance(self.increment_bands, int) or isinstance(self.increment_bands, bool) or not (
                1 <= self.increment_bands <= 8):
            raise ValueError(f"assimilation.increment_bands {self.increment_bands!r} must be a whole number "
                             "from 1 (one weight per channel) to 8")
        if self.smoother_hours is not None and (not isinstance(self.smoother_hours, (int, float))
                                                or isinstance(self.smoother_hours, bool) or not 0 <= self.smoother_hours <= 240):
            raise ValueError(f"assimilation.smoother_hours {self.smoother_hours!r} must be null (no smoother) or hours "
                             "from 0 (the analysis's own increment) to 240")
        if self.smoother_hours is not None and self.tuning_days <= 0:
            raise ValueError("assimilation.smoother_hours has its gains fitted by the tuning streams: set "
                             "assimilation.tuning_days > 0 or smoother_hours: null")
        if self.window_hours <= 0 or self.var_b_scale <= 0 or self.oi_b_scale <= 0:
            raise ValueError("assimilation.window_hours, var_b_scale and oi_b_scale must be > 0")

    @classmethod
    def from_config(cls, config: Mapping) -> "StreamConfig":
        """From the whole workflow config: ``assimilation`` and ``evaluation.withhold``."""
        section = {k: v for k, v in (config.get("assimilation") or {}).items() if k not in RUN_KEYS}
        withhold = (config.get("evaluation") or {}).get("withhold") or {}
        return cls(**section, **{f"withhold_{k}": v for k, v in withhold.items()})

    @classmethod
    def from_params(cls, params: Mapping | None) -> "StreamConfig":
        """From a rule's ``params.assimilation`` (or a plain section; run keys are ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params or {}) - known - set(RUN_KEYS))
        if unknown:
            raise ValueError(f"assimilation settings {unknown} are not known; allowed: {sorted(known)}")
        return cls(**{k: v for k, v in (params or {}).items() if k in known})

    def with_(self, **changes) -> "StreamConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunSettings:
    """How a stream runs; none of it changes an output."""

    checkpoint_every: int = 120  # cycles between resume checkpoints
    log_every: int = 120  # cycles between progress lines in the log
    device: str = "auto"
    progress: bool = True  # a progress bar on stderr

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("assimilation.checkpoint_every and log_every must be >= 1")

    @classmethod
    def from_config(cls, config: Mapping) -> "RunSettings":
        section = config.get("assimilation") or {}
        return cls(**{k: section[k] for k in RUN_KEYS if k in section})


@dataclass(frozen=True)
class StreamInputs:
    """The files a stream reads and its forecast model: one record for every stream entry point
    (``assimilate``, the tuning and uncertainty calibration streams, the method comparison)."""

    autoencoder: str
    o2lnet: str
    calibration: str
    observations: tuple[str, ...]
    forecast: ForecastSpec
    tuning: str | None = None  # rule tune_stream's factors (methods that are tuned)
    oi_covariance: str | None = None  # rule oi_covariance's static covariance (method oi)

    def __post_init__(self) -> None:
        object.__setattr__(self, "observations", tuple(str(p) for p in self.observations))

    @classmethod
    def from_results(cls, results, config: Mapping, observation_years, *, tuning: bool = True,
                     oi_covariance: bool = False) -> "StreamInputs":
        """The inputs of a finished pipeline's ``results`` folder (scripts, benchmarks, the CLI)."""
        r = Path(results)
        return cls(
            str(r / "models/autoencoder.pt"), str(r / "models/o2lnet.pt"), str(r / "ensemble/calibration.nc"),
            tuple(str(r / f"obs/{y}.parquet") for y in observation_years), results_forecast(r, config),
            tuning=str(r / "ensemble/stream_tuning.nc") if tuning else None,
            oi_covariance=str(r / "ensemble/oi_covariance.nc") if oi_covariance else None,
        )

    def files(self) -> list[str]:
        """Every file whose content the stream's outputs depend on (the resume fingerprint)."""
        optional = (self.forecast.emulator, self.tuning, self.oi_covariance)
        return [str(p) for p in (self.autoencoder, self.o2lnet, self.calibration, *optional) if p] + list(
            self.observations)


def settings_read_by(values: Mapping, method: str) -> dict:
    """``values`` (a :class:`StreamConfig`'s dict) less the settings that another method owns and
    ``method`` does not read (their ``own_settings`` in :data:`hloba.assim.catalog.METHODS`): a
    compared method's rule params, so that a change to HLOBA's own settings reruns HLOBA's runs and
    not latent 4D-Var's."""
    own = set(METHODS[method].own_settings)
    others = {k for traits in METHODS.values() for k in traits.own_settings} - own
    return {k: v for k, v in values.items() if k not in others}


def results_forecast(results, config: Mapping) -> ForecastSpec:
    """The forecast model as the workflow builds it from ``config``, with the trained emulator of
    the ``results`` folder when ``forecast.model`` is ``emulator``."""
    from hloba.config import forecast_params
    from hloba.forecast import ForecastSpec
    from hloba.ingest import reference_interval_hours

    emulator = Path(results) / "models/emulator.pt" if config["forecast"].get("model") == "emulator" else None
    return ForecastSpec(**forecast_params(config, reference_interval_hours(config)),
                        emulator=str(emulator) if emulator else None)


@dataclass(frozen=True)
class RefineSettings:
    """The config's ``o2lnet.refine`` section."""

    enabled: bool = False
    years: tuple[int, ...] = ()  # the streams whose cycles it learns from (their spin-up's years too)
    days: float = 365.0  # of each year
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-4
    nll_weight: float = 1.0
    min_keep: float = 1.0  # < 1: each record's window thinned by grid cell to [min_keep, 1] in training
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "years", tuple(int(y) for y in self.years))
        if self.enabled and not self.years:
            raise ValueError("o2lnet.refine.years is empty: give the years whose streams O2Lnet is refined on "
                             "(or set o2lnet.refine.enabled: false)")
        for key in ("days", "epochs", "batch_size", "learning_rate"):
            if not getattr(self, key) > 0:
                raise ValueError(f"o2lnet.refine.{key}={getattr(self, key)} must be > 0")
        if self.nll_weight < 0:
            raise ValueError(f"o2lnet.refine.nll_weight={self.nll_weight} must be >= 0")
        if not 0 < self.min_keep <= 1:
            raise ValueError(f"o2lnet.refine.min_keep={self.min_keep} must be in (0, 1]")

    @classmethod
    def from_dict(cls, values: Mapping | None) -> "RefineSettings":
        return cls(**dict(values or {}))

    def to_dict(self) -> dict:
        return asdict(self) | {"years": list(self.years)}


def check_refine(settings: RefineSettings, cfg: StreamConfig, available) -> None:
    """Refinement needs HLOBA's blended analysis and its tuning, and years the pipeline simulates or reads."""
    if not settings.enabled:
        return
    if cfg.decoded_increment != "weighted" or cfg.weighted_state != "blended" or cfg.tuning_days <= 0:
        raise ValueError("o2lnet.refine learns through HLOBA's blended analysis: it needs assimilation.decoded_increment: "
                         "weighted, weighted_state: blended and tuning_days > 0 (or set o2lnet.refine.enabled: false)")
    if cfg.update != "posterior" or cfg.calibrate_observation_variance or cfg.correlated_gain:
        raise ValueError("o2lnet.refine learns through the independent-error update of O2Lnet's posterior: it needs "
                         "assimilation.update: posterior, calibrate_observation_variance and correlated_gain off "
                         "(or set o2lnet.refine.enabled: false)")
    missing = sorted(set(settings.years) - {int(y) for y in available})
    if missing:
        raise ValueError(f"o2lnet.refine.years {missing} are not among the pipeline's years {sorted(available)}: "
                         "give training, validation or calibration years")
