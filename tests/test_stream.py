"""One year's HLOBA stream on the tiny configuration: outputs, skill, resume, faults."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import merged_config, tiny_inputs, tiny_settings

from hloba.assim.settings import RunSettings
from hloba.assim.year import assimilate_year
from hloba.config import stream_years
from hloba.timeaxis import cycle_times

YEAR = 2002


def _config(tiny_models):
    return merged_config(tiny_models, "config/test.yaml")


def _run(tiny_models, out, tuned=True, checkpoint_every=120, **overrides):
    cfg, _ = tiny_settings(tiny_models, **overrides)
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=tuned)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "latent.nc", out / "feedback.parquet", out / "diagnostics.csv")
    run = RunSettings(checkpoint_every=checkpoint_every, progress=False)
    result = assimilate_year(YEAR, inputs, cfg, *paths, run, resume_dir=out / "checkpoints")
    return result, paths


@pytest.fixture(scope="module")
def stream(tiny_stream):
    """The session pipeline's stream of 2002 (its latent, feedback and diagnostics files)."""
    return tiny_stream["latent"], tiny_stream["feedback"], tiny_stream["diagnostics"]


def test_cycle_times_cover_spinup_and_the_whole_year():
    times, first = cycle_times(2004, pd.Timedelta(hours=6), 10)
    assert first == 40 and times[first] == pd.Timestamp("2004-01-01")
    assert times[-1] == pd.Timestamp("2004-12-31 18:00") and len(times) - first == 366 * 4
    assert stream_years(2004, 10, [2003, 2004]) == [2003, 2004]
    assert stream_years(2004, 0, [2003, 2004]) == [2004]
    assert stream_years(2004, 400, [2003, 2004]) == [2003, 2004]  # 2002 has no observations


def test_outputs_hold_the_year_with_feedback_and_diagnostics(stream):
    latent, feedback, diagnostics = stream
    with xr.open_dataset(latent) as ds:
        assert ds.sizes["time"] == 365 * 4
        assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2002-01-01")
        for name in ("z_b", "z_o", "z_a", "sigma_b2", "sigma_o2", "sigma_a2", "rotation"):
            assert name in ds
        assert np.isfinite(ds["z_a"].values).all()
        assert (ds["sigma_a2"].values > 0).all()
        assert np.isfinite(ds["sigma_a2"].values).all() and np.isfinite(ds["sigma_b2"].values).all()
        assert ds.attrs["method"] == "hloba" and ds.attrs["spinup_cycles"] == 40
    fb = pd.read_parquet(feedback)
    assert {"background", "analysis", "qc", "gross_error"} <= set(fb.columns)
    assert pd.DatetimeIndex(fb.time).year.unique().tolist() == [YEAR]
    assert set(fb.qc.unique()) <= {0, 1}
    # planted gross errors are caught, good observations mostly used
    gross = fb.gross_error.astype(bool)
    assert (fb.qc[gross] == 1).mean() >= 0.9
    assert (fb.qc[~gross] == 1).mean() <= 0.02
    # the analysis is closer to the used observations than the background
    used = fb[fb.qc == 0]
    assert ((used.value - used.analysis) ** 2).mean() < ((used.value - used.background) ** 2).mean()
    diag = pd.read_csv(diagnostics)
    assert len(diag) == 365 * 4 + 40 and diag.spinup.sum() == 40
    year = diag[~diag.spinup]
    assert (year.n_used + year.n_rejected == year.n_obs).all()
    assert 0.7 < year.obs_innovation_rms.median() < 1.5  # O-B consistent with the assumed variances


@pytest.fixture(scope="module")
def free(tiny_models, tmp_path_factory):
    return _run(tiny_models, tmp_path_factory.mktemp("free"), method="free")


def test_free_run_does_not_assimilate(free):
    result, (latent, feedback, _) = free
    with xr.open_dataset(latent) as ds:
        np.testing.assert_array_equal(ds["z_a"].values, ds["z_b"].values)
        assert ds.attrs["method"] == "free" and "rotation" not in ds
    fb = pd.read_parquet(feedback)
    assert (fb.qc != 0).all()
    np.testing.assert_array_equal(fb.analysis.values, fb.background.values)


def test_analysis_beats_the_free_run_without_diverging_and_is_calibrated(tiny_models, stream, free):
    """The must-show properties of the default configuration, on the tiny one (looser bounds:
    its networks train for seconds; see scripts/check_assimilation.py for the default world)."""
    from hloba.models.checkpoint import grid_from_state, load_checkpoint
    from hloba.verify.latent import stream_scores

    r = tiny_models / "results"
    ae = r / "models/autoencoder.pt"
    weights = grid_from_state(load_checkpoint(ae, "autoencoder")["grid"]).area_weights()
    refs = [r / "reference/2002.nc"]
    hloba = stream_scores(stream[0], refs, ae, weights)
    baseline = stream_scores(free[1][0], refs, ae, weights)
    ratio = hloba["analysis_rmse"] / baseline["background_rmse"]
    assert (ratio < 0.75).all(), ratio
    months = hloba["monthly_rmse"]
    assert months[12] <= 1.2 * months[1]
    assert 0.3 <= hloba["latent_calibration"] <= 3.3


def test_latent_3dvar_method_fits_the_observations(tiny_models):
    from hloba.assim.models import method_models
    from hloba.assim.stream import run_stream

    cfg, run = tiny_settings(tiny_models, method="l3dvar")
    inputs = tiny_inputs(tiny_models)
    result = run_stream(YEAR, method_models(cfg, inputs), inputs.observations, cfg, run, max_cycles=60)
    assert (result.diagnostic("iterations")[1:60] > 1).all()  # L-BFGS iterated every cycle
    table = result.observations
    used = (result.qc.numpy() == 0) & ~np.isnan(result.analysis.numpy())
    y, err = table["value"].to_numpy()[used], table["error_std"].to_numpy()[used]
    oma = (y - result.analysis.numpy()[used]) / err
    omb = (y - result.background.numpy()[used]) / err
    # (B = var_b_scale * sigma_clim2 of the tiny config)
    assert np.mean(oma ** 2) < 0.95 * np.mean(omb ** 2), (np.mean(oma ** 2), np.mean(omb ** 2))


@pytest.mark.parametrize("method", ["l4dvar", "oi"])
def test_l4dvar_and_oi_baselines_fit_the_observations(tiny_models, method):
    """l4dvar minimises once per window (its other cycles are the window's forecast); oi analyses
    every cycle in model space; both fit the used observations better than the background. The
    background of l4dvar's observations is the window's background trajectory at every cycle of it
    (the departures it fitted), so the window's later cycles count too."""
    from hloba.assim.models import method_models
    from hloba.assim.stream import run_stream

    # oi: the session pipeline's static covariance (rule oi_covariance)
    cov = tiny_models / "results/ensemble/oi_covariance.nc" if method == "oi" else None
    inputs = tiny_inputs(tiny_models, oi_covariance=cov)
    cfg, run = tiny_settings(tiny_models, method=method, window_hours=24)
    result = run_stream(YEAR, method_models(cfg, inputs), inputs.observations, cfg, run, max_cycles=24)
    iterations = result.diagnostic("iterations")[:24]
    if method == "l4dvar":
        starts = np.arange(24) % 4 == 0
        assert (iterations[starts] > 1).all() and (iterations[~starts] == 0).all()
    else:
        assert (iterations == 0).all()
    run = (result.qc.numpy() == 0) & ~np.isnan(result.analysis.numpy())
    table = result.observations
    y, err = table["value"].to_numpy()[run], table["error_std"].to_numpy()[run]
    oma = np.mean(((y - result.analysis.numpy()[run]) / err) ** 2)
    omb = np.mean(((y - result.background.numpy()[run]) / err) ** 2)
    assert oma < 0.9 * omb, (oma, omb)
    if method == "l4dvar":  # later cycles: background trajectory M^j(x_b) against the fitted one
        from hloba.obs.gridded import nearest_cycle

        cycle, _ = nearest_cycle(result.times, table["time"])
        later = run & (cycle % 4 != 0)
        assert later.sum() > 0.5 * run.sum()
        gap = np.abs(result.analysis.numpy()[later] - result.background.numpy()[later]) / table["error_std"].to_numpy()[later]
        assert np.median(gap) > 0.01, np.median(gap)
        y, err = table["value"].to_numpy()[later], table["error_std"].to_numpy()[later]
        assert np.mean(((y - result.analysis.numpy()[later]) / err) ** 2) < np.mean(
            ((y - result.background.numpy()[later]) / err) ** 2)


# a value of each of HLOBA's own settings other than the tiny configuration's
OTHER_VALUE = {"update": ("likelihood", "posterior"), "calibrate_observation_variance": (True, False),
               "background_variance": ("cycling", "forecast"), "decoded_increment": ("weighted", "full"),
               "weighted_state": ("combined", "projected"), "increment_weight_refits": (1, 0),
               "increment_weight_step": (0.5, 1.0), "increment_bands": (5, 1),
               "lead_guess": ("persistence", "forecast"),
               "correlated_gain": (True, False), "o2lnet_precision": ("bfloat16", "float32"),
               "smoother_hours": (None, 12)}


@pytest.mark.parametrize("method", ["free", "l3dvar", "l4dvar", "oi"])
def test_the_baselines_ignore_the_settings_hloba_owns(tiny_models, method):
    """Rule compare_method's params leave HLOBA's own settings out of the baselines' runs
    (settings_read_by), so a change to one of them must not change a baseline's analyses."""
    from hloba.assim.methods import REGISTRY
    from hloba.assim.models import method_models
    from hloba.assim.settings import settings_read_by
    from hloba.assim.stream import run_stream

    assert set(OTHER_VALUE) == set(REGISTRY["hloba"].own_settings) and not REGISTRY[method].own_settings
    cov = tiny_models / "results/ensemble/oi_covariance.nc" if method == "oi" else None
    inputs = tiny_inputs(tiny_models, oi_covariance=cov)
    cfg, run = tiny_settings(tiny_models, method=method, window_hours=12)
    other = cfg.with_(**{k: a if getattr(cfg, k) != a else b for k, (a, b) in OTHER_VALUE.items()})
    assert all(getattr(other, k) != getattr(cfg, k) for k in OTHER_VALUE)
    assert settings_read_by(other.to_dict(), method) == settings_read_by(cfg.to_dict(), method)
    assert settings_read_by(other.to_dict(), "hloba") == other.to_dict()
    results = [run_stream(YEAR, method_models(c, inputs), inputs.observations, c, run, max_cycles=12)
               for c in (cfg, other)]
    first, second = results
    assert first.analysis.isfinite().any() and first.fields
    pairs = [(name, getattr(first, name), getattr(second, name)) for name in ("analysis", "background", "qc")]
    pairs += [(name, value, second.fields[name]) for name, value in first.fields.items()]
    for name, a, b in pairs:  # H(x_a), H(x_b), the QC at every observation; latent states, variances
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=name)
