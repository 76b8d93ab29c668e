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
    for w in warnings:
        log.warning(w)
    return warnings


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


def reference_interval_hours(config: Mapping) -> float | int:
    """Hours between reference states (cycles): the built-in world's output interval, or the
    time step of the user's reference files (``reference.source: files``)."""
    reference = config.get("reference", {}) or {}
    if reference.get("source", "builtin") == "builtin":
        return config.get("world", {}).get("output_interval_hours", 6)  # as configured (a param: keep its type)
    from hloba.ingest import data_interval_hours

    return data_interval_hours(reference)
