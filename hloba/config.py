"""Validation of the workflow configuration (a plain dict) against its JSON schema.

The workflow loads YAML and calls :func:`check_config` once, before any job runs. Errors are one
line and name the offending key, e.g. ``config key 'world.qg.nx': 'abc' is not of type 'integer'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import jsonschema

log = logging.getLogger(__name__)

YEAR_SETS = ("training", "validation", "calibration", "reanalysis")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what to do."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_message(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = _key(list(error.absolute_path) + [unknown[0]]) if unknown else key
        return f"config key '{where}' is not known (typo?); allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    if error.validator == "oneOf" and "years" in key:
        return (
            f"config key '{key}': {error.instance!r} is not a year list (non-empty, unique years) "
            f"nor a range {{start: Y0, end: Y1}}"
        )
    return f"config key '{key}': {error.message}"


def expand_years(spec) -> list[int]:
    """Years of a list or an inclusive ``{start, end}`` range, sorted."""
    if isinstance(spec, Mapping):
        return list(range(int(spec["start"]), int(spec["end"]) + 1))
    return sorted(int(y) for y in spec)


@dataclass(frozen=True)
class YearSets:
    training: tuple[int, ...]
    validation: tuple[int, ...]
    calibration: tuple[int, ...]
    reanalysis: tuple[int, ...]

    @property
    def all(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.training + self.validation + self.calibration + self.reanalysis)))


def year_sets(config: Mapping) -> YearSets:
    years = config["years"]
    return YearSets(**{name: tuple(expand_years(years[name])) for name in YEAR_SETS})


def stream_threads(n_streams: int, cores: int | None, most: int = 2) -> int:
    """Threads of each of ``n_streams`` jobs that run side by side: one year's stream (rule
    assimilate_year, shared by the years), and with ``n_streams=2`` the other jobs after training
    (``SHARED_THREADS`` in workflow/rules/common.smk): the cores shared by them, at most ``most``.
    The streams of different years are independent, and one thread each for two years on two cores beats two threads each one after the other (2011 of the default world: 236 s
    with one thread, 182 s with two). ``cores`` unknown (a cluster executor): ``most``."""
    if not cores:
        return most
    return max(1, min(most, int(cores) // max(1, n_streams)))


def check_config(config: Mapping, schema: Mapping) -> list[str]:
    """Validate ``config``; raise :class:`ConfigError` on the first problem, return warnings."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        # the deepest error of the best match names the precise key
        error = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_schema_message(error))
    for name in YEAR_SETS:
        spec = config["years"][name]
        if isinstance(spec, Mapping) and spec["end"] < spec["start"]:
            raise ConfigError(
                f"config key 'years.{name}': end {spec['end']} precedes start {spec['start']}; "
                "swap them or give a list of years"
            )
    warnings = []
    sets = year_sets(config)
    for other in ("validation", "calibration", "reanalysis"):
        overlap = sorted(set(sets.training) & set(getattr(sets, other)))
        if overlap:
            warnings.append(
                f"config: training years overlap {other} years {overlap}; "
                "verification on them will be optimistic"
            )
    reference = config.get("reference", {}) or {}
    if reference.get("source", "builtin") == "files" and config.get("forecast", {}).get("model", "qg") == "qg":
        raise ConfigError(
            "config key 'forecast.model': qg is the built-in world's own model and cannot forecast "
            "reference.source: files; use emulator (trained on your data), torchscript or python"
        )
    observations = config.get("observations", {})
    if observations.get("source") == "files" and not observations.get("path"):
        raise ConfigError("config key 'observations.path': observations.source is files but no path is given")
    qg = config["world"].get("qg", {})
    upper, lower = qg.get("upper_level_hpa", 250), qg.get("lower_level_hpa", 750)
    if upper >= lower:
        raise ConfigError(
            f"config key 'world.qg.upper_level_hpa': {upper} hPa must be above (less than) "
            f"world.qg.lower_level_hpa={lower} hPa"
        )
    interval = config["world"].get("output_interval_hours", 6)
    dt = qg.get("dt_minutes", 30)
    steps = interval * 60.0 / dt
    if abs(steps - round(steps)) > 1e-9:
        raise ConfigError(
            f"config key 'world.qg.dt_minutes': {dt} does not divide world.output_interval_hours={interval} "
            "into whole time steps"
        )
    year = config.get("comparison", {}).get("year")
    if year is not None and year not in sets.reanalysis:
        raise ConfigError(
            f"config key 'comparison.year': {year} is not a reanalysis year {list(sets.reanalysis)}; "
            "pick one of them (or null: the last)"
        )
    map_date = (config.get("figures") or {}).get("map_date")
    if map_date is not None:
        check_map_date(map_date, sets.reanalysis)
    for w in warnings:
        log.warning(w)
    return warnings


def check_map_date(map_date: str, years) -> None:
    """``figures.map_date`` (``MM-DD`` or ``MM-DDTHH``) must be a time of every reanalysis year."""
    import pandas as pd

    for year in years:
        try:
            when = pd.Timestamp(f"{year}-{map_date}")
        except ValueError:
            raise ConfigError(f"config key 'figures.map_date': {map_date!r} is not a time of {year} "
                              "(MM-DD or MM-DDTHH, hour 00-23; 02-29 exists in leap years only)") from None
        if when.year != year:
            raise ConfigError(f"config key 'figures.map_date': {map_date!r} is not a time of {year}")


def check_paths(config: Mapping, base=".") -> None:
    """Paths in the config exist, and settings that only one choice reads are not given to another
    (a ``forecast.path`` next to ``model: emulator`` would be silently ignored). Relative paths
    are taken from ``base`` (the workflow's working directory)."""
    from pathlib import Path

    base = Path(base)
    forecast = config.get("forecast", {})
    model = forecast.get("model", "qg")
    for key, reader in (("path", "torchscript"), ("callable", "python")):
        if key in forecast and model != reader:
            raise ConfigError(f"config key 'forecast.{key}' is only read by forecast.model: {reader}, but the model is "
                              f"{model}: set forecast.model: {reader} to use it, or remove forecast.{key}")
        if model == reader and not forecast.get(key):
            raise ConfigError(f"config key 'forecast.{key}': forecast.model {reader} needs it")
    if model == "torchscript" and not (base / forecast["path"]).is_file():
        raise ConfigError(f"config key 'forecast.path': {forecast['path']!r} does not exist (relative paths start "
                          f"in {base.resolve()})")
    cold = (config.get("assimilation") or {}).get("cold_start", "climatology")
    if cold != "climatology" and not (base / cold).is_file():
        raise ConfigError(f"config key 'assimilation.cold_start': {cold!r} is neither 'climatology' nor an existing "
                          f"netCDF file (relative paths start in {base.resolve()})")
    for section in ("reference", "observations"):
        spec = config.get(section) or {}
        if spec.get("source") == "files" and spec.get("path"):
            import glob

            if not glob.glob(str(base / spec["path"])):
                raise ConfigError(f"config key '{section}.path': {spec['path']!r} matches no file or store "
                                  f"(relative paths start in {base.resolve()})")


def reference_role(config: Mapping) -> str:
    """What the reference is, in the words figures, captions and files use: the ``truth`` of the
    built-in world (an OSSE), or the ``reference`` (a reanalysis or analysis from files)."""
    return "truth" if (config.get("reference") or {}).get("source", "builtin") == "builtin" else "reference"


def forecast_source_file(forecast: Mapping) -> str | None:
    """The file whose change must rerun what the forecast model made: the TorchScript module, or
    the source file of the Python callable's module (``None`` for the built-in models)."""
    if forecast.get("model") == "torchscript":
        return forecast["path"]
    if forecast.get("model") == "python":
        import importlib.util

        module = forecast["callable"].partition(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.has_location:
            raise ConfigError(f"config key 'forecast.callable': module {module!r} cannot be found on the Python path")
        return spec.origin
    return None


def stream_years(year: int, spinup_days: float, available) -> list[int]:
    """Years whose observations a stream for ``year`` reads: its spin-up's years and itself,
    limited to the ``available`` ones (a spin-up before the first year runs without observations)."""
    import datetime

    start = datetime.date(year, 1, 1) - datetime.timedelta(days=float(spinup_days))
    return [y for y in range(start.year, year + 1) if y in set(available)]


def load_config(*paths) -> dict:
    """Read YAML config files, each updating the previous recursively (as Snakemake merges
    ``configfile:`` and ``--configfile``)."""
    from pathlib import Path

    import yaml

    def update(base: dict, new: dict) -> dict:
        for k, v in (new or {}).items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                update(base[k], v)
            else:
                base[k] = v
        return base

    config: dict = {}
    for path in paths:
        update(config, yaml.safe_load(Path(path).read_text()))
    return config


def forecast_params(config: Mapping, interval_hours: float) -> dict:
    """The forecast model as every forecasting rule's ``params.forecast`` (a
    :class:`hloba.forecast.ForecastSpec` less the emulator file, which is a rule input): the
    ``forecast`` section, the data's step, and ``world.qg`` only for the built-in world's model."""
    forecast = dict(config["forecast"])
    world_qg = dict((config.get("world") or {}).get("qg") or {}) if forecast.get("model", "qg") == "qg" else None
    return {"settings": forecast, "interval_hours": interval_hours, "world_qg": world_qg}


def evaluation_params(config: Mapping) -> dict:
    """The forecast-skill settings of rule evaluate_year (``evaluation`` less ``withhold``, which
    reaches the verification through the streams' feedback)."""
    return {k: v for k, v in (config.get("evaluation") or {}).items() if k != "withhold"}
