"""Helpers shared by the rule adapters: logging to the rule's log file, torch threads, malloc.

Every adapter starts with ``snakemake = setup(snakemake)`` (or ``setup`` inside a mock object
when run by hand) and then makes one call into the ``hloba`` package.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # source checkout without an install
    sys.path.insert(0, str(REPO))


def setup(snakemake) -> logging.Logger:
    """Log to the rule's log file (and stderr), honour ``threads``, return the adapter's logger."""
    import torch

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    torch.set_num_threads(max(1, int(snakemake.threads)))
    from hloba.runtime import reuse_freed_memory

    reused = reuse_freed_memory()
    log = logging.getLogger(f"hloba.rule.{snakemake.rule}")
    log.info("rule %s, threads %s, freed memory reused: %s", snakemake.rule, snakemake.threads, reused)
    sys.excepthook = lambda *exc: log.error("failed", exc_info=exc)
    from hloba.io import check_writable

    check_writable(snakemake.output)  # a read-only results folder fails now, not after the work
    return log


def forecast_spec(snakemake):
    """The rule's forecast model: ``params.forecast`` and the trained emulator when it is an input."""
    from hloba.forecast import ForecastSpec

    return ForecastSpec(**snakemake.params.forecast, emulator=snakemake.input.get("emulator"))


def stream_inputs(snakemake):
    """The stream inputs of a stream rule (assimilate_year, tune_stream, calibrate_uncertainty, compare_method)."""
    from hloba.assim.settings import StreamInputs

    i = snakemake.input
    return StreamInputs(i.autoencoder, i.o2lnet, i.calibration, list(i.observations), forecast_spec(snakemake),
                        tuning=i.get("tuning"), oi_covariance=i.get("oi_covariance"))


def stream_settings(snakemake):
    """``(StreamConfig, RunSettings)``: the science from ``params.assimilation``, how it runs from
    the rule's resources (so that changing a log or checkpoint cadence reruns nothing)."""
    from hloba.assim.settings import RUN_KEYS, RunSettings, StreamConfig

    run = {k: snakemake.resources[k] for k in RUN_KEYS if k in snakemake.resources.keys()}
    return StreamConfig.from_params(snakemake.params.assimilation), RunSettings(**run)
