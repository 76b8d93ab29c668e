"""The pipeline's per-year stages as functions of (config, results folder, year), for the CLI.

Each does what its rule does, with the same inputs and outputs under ``results``, so that one
stage of one year can be run (or rerun with other settings into another folder) by hand:

    hloba assimilate --config config.yaml config/test.yaml --year 2002
    hloba decode     --config config.yaml config/test.yaml --year 2002
    hloba evaluate   --config config.yaml config/test.yaml --year 2002

``out`` (default: ``results``) is where the stage writes; inputs are always read from ``results``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from hloba.archive.settings import DecodeSettings, UncertaintySettings
from hloba.assim.catalog import METHODS
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs, results_forecast
from hloba.config import evaluation_params, reference_role, stream_years, year_sets

log = logging.getLogger(__name__)


def _need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: run the pipeline up to this stage first "
                                "(snakemake --cores N <file>), or point --results at its folder")


def _outputs(out: Path, *relative: str) -> list[Path]:
    paths = [out / r for r in relative]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    return paths


def assimilate(config: dict, results, year: int, out=None, method: str | None = None, progress: bool = True):
    """Rule assimilate_year: the stream of ``year`` (``method`` overrides ``assimilation.method``)."""
    from hloba.assim.year import assimilate_year

    results, out = Path(results), Path(out or results)
    cfg = StreamConfig.from_config(config)
    cfg = cfg.with_(method=method) if method else cfg
    m = METHODS[cfg.method]
    inputs = StreamInputs.from_results(results, config, stream_years(year, cfg.spinup_days, year_sets(config).all),
                                       tuning=m.tuned and cfg.tuning_days > 0,
                                       oi_covariance=m.needs_static_covariance)
    _need(*inputs.files())
    latent, feedback, diagnostics = _outputs(out, f"latent/{year}.nc", f"feedback/{year}.parquet",
                                             f"diagnostics/{year}.csv")
    run = replace(RunSettings.from_config(config), progress=progress)
    return assimilate_year(year, inputs, cfg, latent, feedback, diagnostics, run,
                           resume_dir=out / "checkpoints/assimilate")


def decode(config: dict, results, year: int, out=None, progress: bool = True):
    """Rule decode_year: the archive year from the latent analyses (with the calibrated std, the
    network's or the factors' by ``uncertainty.model``, when the method is tuned and
    ``uncertainty.calibrate`` is on)."""
    from hloba.archive.year import decode_year

    results, out = Path(results), Path(out or results)
    unc, dask = UncertaintySettings.from_config(config), DecodeSettings.from_config(config)
    latent, ae = results / f"latent/{year}.nc", results / "models/autoencoder.pt"
    calibrated = METHODS[StreamConfig.from_config(config).method].tuned and unc.calibrate
    factors = results / "ensemble/uncertainty_factors.nc" if calibrated and unc.model == "factor" else None
    network = results / "ensemble/uncertainty_model.pt" if calibrated and unc.model == "network" else None
    _need(latent, ae, *[p for p in (factors, network) if p is not None])
    (archive,) = _outputs(out, f"reanalysis/{year}.nc")
    return decode_year(latent, ae, archive, **unc.sampling(), time_chunk=dask.time_chunk,
                       workers=dask.workers if dask.workers is not None else 1,
                       scheduler_address=dask.scheduler_address, std_factors=factors, std_model=network,
                       progress=progress)


def evaluate(config: dict, results, year: int, out=None):
    """Rule evaluate_year: gridded, observation-space, withheld and forecast scores of the year."""
    from hloba.verify.evaluate import evaluate_year

    results, out = Path(results), Path(out or results)
    inputs = [results / p for p in (f"reanalysis/{year}.nc", f"reference/{year}.nc", f"feedback/{year}.parquet",
                                    "prep/normalization.nc")]
    forecast = results_forecast(results, config)
    _need(*inputs, *([forecast.emulator] if forecast.emulator else []))
    e = f"evaluation/{year}"
    scores, obs, skill, withheld, figure, reliability, reliability_figure = _outputs(
        out, f"{e}/scores.csv", f"{e}/observations.csv", f"{e}/forecast_skill.csv", f"{e}/withheld.csv",
        f"{e}/withheld.png", f"{e}/reliability.csv", f"{e}/reliability.png")
    return evaluate_year(*inputs, scores, obs, skill, forecast=forecast, reference_name=reference_role(config),
                         withheld_path=withheld, withheld_figure=figure, reliability_path=reliability,
                         reliability_figure=reliability_figure, **evaluation_params(config))
