"""Rule assimilate_year (and ``hloba assimilate``): one year's stream and its three outputs.

The latent file (:mod:`hloba.latent`), the feedback of every observation of the year
(``background = H(x_b)``, ``analysis = H(x_a)``, ``qc``: 0 used, 1 rejected by the first-guess
check, 2 not assimilated (the ``free`` method), 3 withheld for verification) and the per-cycle
diagnostics, each written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hloba import __version__
from hloba.assim.models import StreamModels, method_models
from hloba.assim.resume import fingerprint
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs
from hloba.assim.stream import StreamResult, run_stream
from hloba.io import atomic_path, write_netcdf
from hloba.latent import AUTOENCODER_PRECISION, latent_dataset
from hloba.obs.schema import OBS_COLUMNS
from hloba.timeaxis import cycle_times, period_cycles

log = logging.getLogger(__name__)


def stream_latent_dataset(result: StreamResult, year: int, cfg: StreamConfig, models: StreamModels,
                          attrs: dict) -> xr.Dataset:
    """The year's cycles (spin-up left out) as ``results/latent/{year}.nc``, with provenance."""
    first = result.first
    rotation = models.space.rotation
    total = sum(result.timers.values()) or 1.0
    weights = result.weights_by_channel(models.channels)
    return latent_dataset(
        {k: v[first:].numpy() for k, v in result.fields.items()}, result.times[first:],
        rotation=None if rotation is None else rotation.cpu().numpy(),
        spinup=(result.fields["z_a"][:first].numpy(), result.times[:first],
                None if weights is None else result.fields["z_b"][:first].numpy()),
        increment_weights=weights,
        kept=None if result.kept is None else (result.kept[first:].numpy(), result.kept[:first].numpy()),
        attrs={
            "title": f"hloba latent analyses {year}", "hloba_version": __version__, "method": cfg.method,
            "year": year, "stream_start": str(result.times[0]), "spinup_days": cfg.spinup_days,
            "spinup_cycles": first, "cold_start": cfg.cold_start, "rotation": int(rotation is not None),
            "hybrid_a": models.hybrid_a, "hybrid_b": models.hybrid_b,
            "members": int(result.diagnostic("members")[: result.stop].max()) if result.stop else 1,
            "final_inflation_geometric_mean": float(result.inflation.log().mean().exp()),
            "qc_threshold": cfg.qc_threshold, "interval_hours": models.interval / pd.Timedelta(hours=1),
            "o2lnet_precision": models.o2lnet_precision, AUTOENCODER_PRECISION: models.autoencoder_precision,
            **{f"seconds_{k}": v for k, v in result.timers.items()},
            **{f"fraction_{k}": v / total for k, v in result.timers.items()},
            **models.hashes, **attrs,
        },
    )


def stream_fingerprint(year: int, cfg: StreamConfig, inputs: StreamInputs, models: StreamModels) -> str:
    """The identity a checkpoint of this stream is resumed under: the settings with what ``auto``
    resolved to on this machine (O2Lnet's precision), the forecast model and the input files."""
    settings = {**cfg.to_dict(), "o2lnet_dtype": models.o2lnet_precision,
                "autoencoder_dtype": models.autoencoder_precision}
    return fingerprint(year, settings, inputs.forecast.identity(), inputs.files())


def feedback_table(result: StreamResult, year: int) -> pd.DataFrame:
    """Every observation of ``year`` with ``background``, ``analysis`` and ``qc``."""
    table = result.observations
    inside = np.asarray(pd.DatetimeIndex(table["time"]).year == year)
    extra = [c for c in table.columns if c not in OBS_COLUMNS and c != "channel"]  # e.g. gross_error
    fb = table.loc[inside, list(OBS_COLUMNS) + extra].copy()
    fb["background"] = result.background.numpy()[inside]
    fb["analysis"] = result.analysis.numpy()[inside]
    fb["qc"] = result.qc.numpy()[inside]
    return fb.reset_index(drop=True)


def assimilate_year(year: int, inputs: StreamInputs, cfg: StreamConfig, latent_path, feedback_path,
                    diagnostics_path, run: RunSettings = RunSettings(), resume_dir=None) -> StreamResult:
    """Run one year's stream and write its three outputs atomically.

    Without ``inputs.tuning`` a tuned method relies on its online inflation alone; ``resume_dir``
    keeps the stream's checkpoints (removed once the outputs are written)."""
    models = method_models(cfg, inputs, run.device)
    fp = stream_fingerprint(year, cfg, inputs, models)
    resume_path = Path(resume_dir) / f"{cfg.method}-{year}.pt" if resume_dir else None
    result = run_stream(year, models, inputs.observations, cfg, run, resume_path=resume_path, fingerprint_value=fp)
    write_netcdf(stream_latent_dataset(result, year, cfg, models, {"config_sha256": fp}), latent_path)
    with atomic_path(feedback_path) as tmp:
        feedback_table(result, year).to_parquet(tmp, index=False)
    diag = result.diagnostics_table()
    with atomic_path(diagnostics_path) as tmp:
        diag.to_csv(tmp, index=False, float_format="%.6g")
    if resume_path is not None and resume_path.exists():
        resume_path.unlink()
    log.info("stream %d done: %d cycles run here; %s", year, result.n_cycles_run,
             ", ".join(f"{k} {v / max(len(result.times), 1) * 1e3:.1f} ms" for k, v in result.timers.items()))
    year_diag = diag[~diag["spinup"]]
    log.info("stream %d: %d observations, %d rejected by QC (%.2f %%), final inflation (geometric mean) %.3g, %.1f s",
             year, int(year_diag["n_obs"].sum()), int(year_diag["n_rejected"].sum()),
             100 * year_diag["n_rejected"].sum() / max(year_diag["n_obs"].sum(), 1),
             float(result.inflation.log().mean().exp()), sum(result.timers.values()))
    return result


def run_period(year: int, models: StreamModels, observations, cfg: StreamConfig, days: float,
               run: RunSettings = RunSettings(), keep_analyses: bool = False,
               keep_backgrounds: bool = False, recorder=None, keep_increments: bool = False) -> StreamResult:
    """A stream over the spin-up and the first ``days`` of ``year`` (tuning, calibration, comparison;
    ``recorder``: :func:`hloba.assim.refine.cycle_recorder`)."""
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    return run_stream(year, models, observations, cfg, run, max_cycles=period_cycles(times, first, days),
                      keep_analyses=keep_analyses, keep_backgrounds=keep_backgrounds, recorder=recorder,
                      keep_increments=keep_increments)
