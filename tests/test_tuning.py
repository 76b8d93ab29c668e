"""The tuning streams (rule tune_stream) in the update's two forms and with the static variance
refitted to cycling errors, the weights of the decoded increment, O2Lnet's prior in the
calibration file, and the compared variants' own tuning."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import tiny_inputs, tiny_settings

from hloba.archive.decode import decode_latent
from hloba.assim.methods.hloba import Hloba
from hloba.assim.models import StreamError, apply_tuning, method_models
from hloba.assim.settings import StreamConfig
from hloba.assim.stream import run_stream
from hloba.assim.tuning import cycling_static_variance, increment_weights, tune_stream_file
from hloba.bands import band_weighted
from hloba.config import stream_years
from hloba.latent import AUTOENCODER_PRECISION, KEPT, kept_part, latent_dataset
from hloba.verify.latent import decode_analysis
from hloba.verify.settings import method_settings, own_tuning

YEAR = 2002  # the tiny configuration's calibration year


def test_calibration_holds_o2lnets_climatological_prior(tiny_models):
    with xr.open_dataset(tiny_models / "results/ensemble/calibration.nc") as cal:
        n = cal.sizes["latent"]
        for name in ("prior_mean", "prior_var", "prior_var_rotated"):
            assert cal[name].shape == (n,) and np.isfinite(cal[name].values).all()
        assert (cal["prior_var"].values > 0).all() and (cal["prior_var_rotated"].values > 0).all()
        # a rotation keeps the total variance
        assert cal["prior_var_rotated"].values.sum() == pytest.approx(cal["prior_var"].values.sum(), rel=1e-3)
        # the climate varies more than a 6-hour forecast errs
        assert cal["prior_var"].values.mean() > 3 * cal["sigma_clim2"].values.mean()


@pytest.fixture(scope="module")
def tunings(tiny_models, tmp_path_factory):
    """The tuning of the paper's posterior form, of the likelihood form with the observation
    estimate's variance calibrated, and of the static variance refitted to cycling errors with the
    decoded increment weighted (config.yaml's defaults; config/test.yaml's analysis is the paper's), on
    the tiny calibration year."""
    out = tmp_path_factory.mktemp("tuning")
    refs = [tiny_models / f"results/reference/{YEAR}.nc"]
    result = {}
    for name, changes in (("posterior", {"update": "posterior", "background_variance": "forecast",
                                         "decoded_increment": "full"}),
                          ("likelihood", {"update": "likelihood", "calibrate_observation_variance": True,
                                          "background_variance": "forecast", "decoded_increment": "full"}),
                          ("cycling", {"update": "posterior", "background_variance": "cycling",
                                       "decoded_increment": "weighted"})):
        cfg, run = tiny_settings(tiny_models, **changes)
        inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
        result[name] = tune_stream_file(YEAR, inputs, refs, out / f"{name}.nc", cfg, run).load()
    return result


def test_the_likelihood_form_lowers_the_background_estimate_error_correlation(tunings):
    post, like = tunings["posterior"], tunings["likelihood"]
    assert post.attrs["update"] == "posterior" and like.attrs["update"] == "likelihood"
    assert post.attrs["error_correlation_pooled"] > 0.3
    # cycling keeps part of the correlation (O2Lnet's errors persist and reach the background): the
    # ratio was below 0.6 on the AMD host's tiny world, 0.67 (0.358 / 0.532) on an Intel host's and
    # 0.65 (0.343 / 0.526) on the portable world there (2026-12-05); 0.79 on the default world
    assert like.attrs["error_correlation_pooled"] < 0.75 * post.attrs["error_correlation_pooled"]
    assert 0 < like.attrs["informative_fraction"] < post.attrs["informative_fraction"] == 1.0


def test_the_observation_variance_calibration_makes_the_estimate_calibrated(tunings):
    post, like = tunings["posterior"], tunings["likelihood"]
    assert (post["observation_variance_factor"].values == 1).all()  # off by default
    factor = like["observation_variance_factor"].values
    assert (factor != 1).any() and (factor > 0).all()
    # groups the observations inform: mean(e^2)/sigma^2 of the last stream (whose quality control
    # differs a little from the first's) near 1, where the factor itself was far from it
    informed = factor != 1
    ratio = like["observation_variance_ratio"].values[informed]
    assert 0.8 < np.median(ratio) < 1.25, ratio
    # a band with few informed elements may stray (with a windowed O2Lnet 10 of 18 bands were inside,
    # 0.56, on MKL's tiny worlds; 9 of 19, 0.47, on the world of every host, a0a1cc4)
    assert np.mean((ratio > 0.7) & (ratio < 1.4)) >= 0.45, ratio
    assert np.median(np.abs(np.log(ratio))) < 0.5 * np.median(np.abs(np.log(factor[informed])))


def test_a_variant_that_changes_a_tuned_setting_is_tuned_on_its_own():
    cfg = StreamConfig()  # update: posterior, rotation on
    assert method_settings("hloba_likelihood", cfg).update == "likelihood"
    assert method_settings("hloba_likelihood", cfg).method == "hloba"
    assert own_tuning("hloba_likelihood", cfg) and own_tuning("hloba_norotation", cfg)
    assert not own_tuning("hloba_posterior", cfg)  # the same settings as the shared tuning
    assert not own_tuning("hloba", cfg) and not own_tuning("l3dvar", cfg)
    assert own_tuning("hloba_posterior", cfg.with_(update="likelihood"))
    with pytest.raises(ValueError, match="not one of"):
        method_settings("hloba_windowed", cfg)


def test_the_cycling_static_variance_is_the_mean_square_error_with_a_floor():
    e = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 0.0, 0.0]])
    assert cycling_static_variance(e).tolist() == pytest.approx([1.0, 1e-8 * 1.0, 2.0])


def test_a_static_variance_refitted_to_cycling_errors_calibrates_every_band(tiny_models, tunings):
    forecast, cycling = tunings["posterior"], tunings["cycling"]
    assert forecast.attrs["background_variance"] == "forecast" and "static_variance" not in forecast
    assert cycling.attrs["background_variance"] == "cycling"
    static = cycling["static_variance"].values
    with xr.open_dataset(tiny_models / "results/ensemble/calibration.nc") as cal:
        assert static.shape == (cal.sizes["mode"],) and (static > 0).all()
    # per band mean(e_b^2) / sigma_b2 of the last stream: the calibration's variance (forecasts from the
    # truth) misses some bands by factors of several, the refitted one none by more than 25 %
    b_forecast, b_cycling = forecast["background_variance_ratio"].values, cycling["background_variance_ratio"].values
    assert np.abs(np.log(b_forecast)).max() > np.log(2.0), b_forecast
    assert ((b_cycling > 0.8) & (b_cycling < 1.25)).all(), b_cycling
    # and the tuning streams' analysis is better with it (tiny world: 2.48 -> 2.29, latent)
    assert cycling.attrs["latent_rmse_analysis_pass2"] < 0.97 * cycling.attrs["latent_rmse_analysis_forecast_variance"]
    assert cycling.attrs["latent_rmse_analysis_forecast_variance"] == pytest.approx(
        forecast.attrs["latent_rmse_analysis_pass2"], rel=1e-6)


def test_the_streams_take_the_refitted_static_variance_from_the_tuning_file(tiny_models, tunings, tmp_path):
    cfg, _ = tiny_settings(tiny_models, background_variance="cycling", decoded_increment="weighted")
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    models = method_models(cfg, inputs, "cpu")
    assert models.hybrid_b > 0  # the calibration's hybrid weights before the tuning
    cycling = tunings["cycling"]
    path = tmp_path / "tuning.nc"
    cycling.to_netcdf(path)
    apply_tuning(models, path, cfg)
    assert models.sigma_clim2.numpy() == pytest.approx(cycling["static_variance"].values.astype(np.float32))
    assert (models.hybrid_a, models.hybrid_b) == (1.0, 0.0)
    cycling.isel(coordinate=slice(0, 5)).to_netcdf(tmp_path / "short.nc")
    with pytest.raises(StreamError, match="rerun rule tune_stream"):
        apply_tuning(models, tmp_path / "short.nc", cfg)


def test_a_cycling_background_variance_needs_the_tuning_streams():
    with pytest.raises(ValueError, match="background_variance 'ensemble' is not one of"):
        StreamConfig(background_variance="ensemble")
    with pytest.raises(ValueError, match="tuning_days > 0"):
        StreamConfig(background_variance="cycling", tuning_days=0)


def test_the_tuning_writes_weights_per_channel_and_band_in_0_1(tunings, tiny_models):
    tuned = tunings["cycling"]  # tuned with the decoded increment weighted (config.yaml's default)
    assert tuned.attrs["decoded_increment"] == "weighted" and tuned.attrs["increment_bands"] == 5
    g = tuned["increment_weight"]
    assert g.dims == tuned["projection_weight"].dims == ("channel", "band") and g.shape[1] == 5
    with xr.open_dataset(tiny_models / "results/ensemble/calibration.nc") as cal:
        assert list(g["channel"].values) == list(cal["channel"].values)
    assert ((g.values >= 0) & (g.values <= 1)).all() and np.isfinite(g.values).all()
    # the fitted weights differ between channels (else a scalar would do)
    assert g.values.max() - g.values.min() > 0.05, g.values
    assert np.isfinite(tuned.attrs["latent_rmse_analysis_pass3"])


def test_the_stream_takes_the_weighted_analysis(tunings, tiny_models, tmp_path):
    tuned = tunings["cycling"]
    cfg, _ = tiny_settings(tiny_models, background_variance="cycling", decoded_increment="weighted")
    path = tmp_path / "tuning.nc"
    tuned.to_netcdf(path)
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    models = method_models(cfg, inputs, "cpu")
    assert models.increment_weights is None
    apply_tuning(models, path, cfg)
    np.testing.assert_allclose(models.increment_weights, tuned["increment_weight"].values)
    assert tuned.attrs["weighted_state"] == cfg.weighted_state == "blended"  # config.yaml's default
    np.testing.assert_allclose(models.projection_weights, tuned["projection_weight"].values)
    assert ((tuned["projection_weight"].values >= 0) & (tuned["projection_weight"].values <= 1)).all()
    # the weighted analysis: each channel's decoded increment taken at its weight, encoded again
    # (projected, incremental) or recorded as the update's own z_a (combined: the archive decodes the
    # weighted state from z_b, z_a and the weights)
    hloba = Hloba(models, cfg.with_(weighted_state="projected"))
    ae = models.autoencoder
    g = torch.Generator().manual_seed(1)
    z_b, z_a = torch.randn(1, ae.cfg.n_latent, generator=g), torch.randn(1, ae.cfg.n_latent, generator=g)
    with torch.no_grad():
        models.increment_weights = torch.zeros(len(models.channels), dtype=torch.float64)
        x_w, z_w, _ = hloba.weighted_analysis(z_b, z_a)
        assert torch.allclose(x_w, ae.decode(z_b), atol=1e-6) and torch.allclose(z_w, ae.encode(ae.decode(z_b)), atol=1e-5)
        models.increment_weights = torch.ones(len(models.channels), dtype=torch.float64)
        assert torch.allclose(hloba.weighted_analysis(z_b, z_a)[1], ae.encode(ae.decode(z_a)), atol=1e-5)
        half = torch.full((len(models.channels),), 0.5, dtype=torch.float64)
        models.increment_weights = half
        x_w, z_w, kept = hloba.weighted_analysis(z_b, z_a)
        assert kept is None
        assert torch.allclose(x_w, 0.5 * (ae.decode(z_b) + ae.decode(z_a)), atol=1e-6)
        assert torch.allclose(z_w, ae.encode(x_w), atol=1e-6)
        x_c, z_c, _ = Hloba(models, cfg.with_(weighted_state="combined")).weighted_analysis(z_b, z_a)
        assert torch.equal(x_c, x_w) and torch.equal(z_c, z_a)
        # weighted_state: incremental: the weighted decoded increment added to the background itself
        x_b = torch.randn(ae.decode(z_b).shape, generator=g)
        x_i, z_i, _ = hloba.weighted_analysis(z_b, z_a, x_b)
        assert torch.allclose(x_i, x_b + 0.5 * (ae.decode(z_a) - ae.decode(z_b)), atol=1e-6)
        assert torch.allclose(z_i, ae.encode(x_i), atol=1e-6)
        # weighted_state: blended: h of the autoencoder's change to the background; the record is
        # the update's own z_a and the kept part (1 - h) (x_b - D(z_b)), which the archive adds
        models.projection_weights = torch.full((len(models.channels),), 0.25, dtype=torch.float64)
        x_h, z_h, kept = Hloba(models, cfg.with_(weighted_state="blended")).weighted_analysis(z_b, z_a, x_b)
        assert torch.equal(z_h, z_a) and torch.allclose(kept, 0.75 * (x_b - ae.decode(z_b)), atol=1.3e-4)
        assert torch.allclose(x_h, x_i + 0.25 * (ae.decode(z_b) - x_b), atol=1.3e-4)  # the kept part's grid
    # weights of other channels, or settings other than the tuning's, are refused
    tuned.assign_coords(channel=[f"x{i}" for i in range(tuned.sizes["channel"])]).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(StreamError, match="rerun rule tune_stream"):
        apply_tuning(models, tmp_path / "other.nc", cfg)
    with pytest.raises(StreamError, match="decoded_increment: weighted in the file, full in this stream"):
        apply_tuning(models, path, cfg.with_(decoded_increment="full"))
    with pytest.raises(StreamError, match=f"increment_bands: {cfg.increment_bands} in the file, 1 in this stream"):
        apply_tuning(models, path, cfg.with_(increment_bands=1))
    other = "projected" if cfg.weighted_state != "projected" else "combined"
    with pytest.raises(StreamError, match=f"weighted_state: {cfg.weighted_state} in the file, {other} in this stream"):
        apply_tuning(models, path, cfg.with_(weighted_state=other))
    tuned.drop_vars(["increment_weight", "channel"]).to_netcdf(tmp_path / "before.nc")  # a file from before the weights
    with pytest.raises(StreamError, match="no weights of the decoded increment .* rerun rule tune_stream"):
        apply_tuning(models, tmp_path / "before.nc", cfg)
    tuned.drop_vars("projection_weight").to_netcdf(tmp_path / "no_h.nc")
    with pytest.raises(StreamError, match="no weights of the autoencoder's change .* rerun rule tune_stream"):
        apply_tuning(models, tmp_path / "no_h.nc", cfg)


def test_a_combined_weighted_state_is_what_the_stream_forecasts_from(tunings, tiny_models, tmp_path):
    """weighted_state: projected cycles from the archive's decoding of the latent record;
    combined from the weighted combination itself, which the latent record (z_b, z_a and the
    weights) decodes to at every cycle, the cold first one included; incremental from the
    background plus the weighted decoded increment (a channel at weight 0 keeps its background to
    the bit, a channel at weight 1 takes an increment); blended from the background with a part of
    the autoencoder's change to it, which the latent record with its kept part decodes to as
    combined's does. Without the smoother, whose correction joins the kept part (tests/test_smoother.py)."""
    cfg, run = tiny_settings(tiny_models, background_variance="cycling", decoded_increment="weighted",
                             smoother_hours=None)
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    runs = {}
    for state in ("projected", "combined", "incremental", "blended"):
        path = tmp_path / f"{state}.nc"
        tunings["cycling"].assign_attrs(weighted_state=state).to_netcdf(path)
        models = method_models(cfg.with_(weighted_state=state), inputs, "cpu")
        apply_tuning(models, path, cfg.with_(weighted_state=state))
        models.increment_weights = torch.linspace(0.0, 1.0, len(models.channels), dtype=torch.float64)
        models.projection_weights = torch.linspace(1.0, 0.0, len(models.channels), dtype=torch.float64)
        result = run_stream(YEAR, models, inputs.observations, cfg.with_(weighted_state=state, spinup_days=0), run,
                            max_cycles=6, keep_analyses=True, keep_backgrounds=True)
        times = result.times[1:6]
        with torch.no_grad():
            decoded = models.autoencoder.decode(result.fields["z_a"][1:6].float()).double()
            decoded_b = models.autoencoder.decode(result.fields["z_b"][1:6].float()).double()
        # the state each cycle forecast from against the decoding of its latent record (standardised;
        # cycle 0 is cold)
        norm = models.normalizer
        state_std = norm.standardize(result.analyses[1:6].double(), times).double()
        background_std = norm.standardize(result.backgrounds[1:6].double(), times).double()
        runs[state] = (state_std - decoded).square().mean().sqrt().item()
        if state in ("combined", "blended"):  # what the archive decodes is what the stream cycled from
            assert (result.kept is None) == (state == "combined")
            latent = latent_dataset({k: result.fields[k][:6].numpy()
                                     for k in ("z_a", "z_b", "sigma_a2_update", "sigma_b2_update")},
                                    result.times[:6], increment_weights=result.weights_by_channel(models.channels),
                                    kept=None if result.kept is None else (result.kept[:6].numpy(), None),
                                    attrs={"year": YEAR, AUTOENCODER_PRECISION: models.autoencoder_precision})
            # the file's own attributes, not the kept part's
            assert latent.attrs == {"year": YEAR, AUTOENCODER_PRECISION: models.autoencoder_precision}
            assert list(latent["increment_weight"].values) == pytest.approx(models.increment_weights.tolist())
            mean, _ = decode_latent(latent, inputs.autoencoder, "", 0, 0, 4, progress=False)
            archive_std = norm.standardize(torch.as_tensor(mean), result.times[:6]).double()
            cycled = norm.standardize(result.analyses[:6].double(), result.times[:6]).double()
            assert (archive_std - cycled).abs().max() < 1e-4  # float32 states and decodings
            # the seam report's and the stream scores' decoding of the same record
            seams = decode_analysis(models.autoencoder, norm, result.fields["z_a"][:6], result.times[:6],
                                    latent["increment_weight"].values, result.fields["z_b"][:6], kept_part(latent))
            assert (norm.standardize(seams, result.times[:6]) - cycled).abs().max() < 1e-4
            plain = decode_latent(latent.drop_vars(["increment_weight", KEPT], errors="ignore"), inputs.autoencoder,
                                  "", 0, 0, 4, progress=False)[0]
            assert (norm.standardize(torch.as_tensor(plain), result.times[:6]) - cycled).abs().max() > 1e-2
            if state == "blended":  # h = 1 keeps nothing of the background, h = 0 all that D(E(x_b)) changes
                assert latent[KEPT].dtype == np.int16  # whole multiples of KEPT_QUANTUM
                kept = kept_part(latent)
                assert np.abs(kept[:, 0]).max() == 0 and np.abs(kept[1:, -1]).max() > 1e-2
                without = decode_latent(latent.drop_vars(KEPT), inputs.autoencoder, "", 0, 0, 4, progress=False)[0]
                assert (norm.standardize(torch.as_tensor(without), result.times[:6]) - cycled).abs().max() > 1e-2
                np.testing.assert_allclose(  # h = 0 with weight 1: the background plus the decoded increment
                    state_std[:, -1], (background_std + decoded - decoded_b)[:, -1], atol=2e-4)  # + the grid
                # a stream's file: the spin-up's kept part beside its z_a and z_b (the seam report's)
                f = {k: result.fields[k][:6].numpy() for k in ("z_a", "z_b")}
                with_spinup = latent_dataset({k: v[2:] for k, v in f.items()}, result.times[2:6],
                                             spinup=(f["z_a"][:2], result.times[:2], f["z_b"][:2]),
                                             increment_weights=result.weights_by_channel(models.channels),
                                             kept=(result.kept[2:6].numpy(), result.kept[:2].numpy()))
                np.testing.assert_array_equal(kept_part(with_spinup, spinup=True), kept[:2])
                np.testing.assert_array_equal(kept_part(with_spinup), kept[2:6])
                continue
            # the Monte-Carlo draws are weighted alike: the same draws, so each channel's std is g times
            # that of D(z_a + sigma eps) (g = 0: none)
            _, std = decode_latent(latent, inputs.autoencoder, "", 4, 0, 4, progress=False)
            _, std_plain = decode_latent(latent.drop_vars("increment_weight"), inputs.autoencoder, "", 4, 0, 4,
                                         progress=False)
            g = models.increment_weights.numpy()[None, :, None, None]
            np.testing.assert_allclose(std, g * std_plain, rtol=2e-3, atol=1e-6 * std_plain.max())
            assert (std_plain[:, -1] > 0).any() and std[:, 0].max() <= 1e-6 * std_plain.max()
            _draw_background_keeps_the_backgrounds_uncertainty(latent, inputs.autoencoder)
        if state == "incremental":
            # (the kept states are float32 in physical units: ~1e-5 of an anomaly std apart at most)
            assert (state_std[:, 0] - background_std[:, 0]).abs().max() < 1e-3  # weight 0
            assert (state_std[:, 0] - decoded_b[:, 0]).abs().max() > 1e-2  # not the background's decoding
            assert (state_std - background_std)[:, -1].abs().max() > 1e-2  # weight 1: it took an increment
    assert runs["projected"] < 1e-4, runs
    assert runs["combined"] > 1e-2 and runs["incremental"] > 1e-2 and runs["blended"] > 1e-2, runs


def _draw_background_keeps_the_backgrounds_uncertainty(latent, autoencoder):
    """uncertainty.draw_background on a combined latent record (channel weights 0 .. 1): the
    weight-0 channel's std is that of the background's own draws ``D(z_b + d_b)``, the weight-1
    channel's that of the analysis's draws without it (the same distributions, other draws: rms
    ratios within 15 %, 32 draws on the 5 warm cycles), and a file without the background variance
    is refused by name."""
    def rms(a):
        return float(np.sqrt(np.mean(np.square(a[1:]))))  # cycle 0 is cold: no background variance

    draws = 32
    _, with_b = decode_latent(latent, autoencoder, "", draws, 1, 6, progress=False, draw_background=True)
    _, without = decode_latent(latent, autoencoder, "", draws, 2, 6, progress=False)
    background = latent.drop_vars("increment_weight").assign(z_a=latent["z_b"], sigma_a2_update=latent["sigma_b2_update"])
    _, own = decode_latent(background, autoencoder, "", draws, 3, 6, progress=False)
    assert rms(own[:, 0]) > 0 and rms(without[:, 0]) < 1e-4 * rms(own[:, 0])  # float32 rounding only
    assert rms(with_b[:, 0]) / rms(own[:, 0]) == pytest.approx(1, abs=0.15)
    assert rms(with_b[:, -1]) / rms(without[:, -1]) == pytest.approx(1, abs=0.15)
    with pytest.raises(ValueError, match="draw_background needs the background variance sigma_b2_update"):
        decode_latent(latent.drop_vars("sigma_b2_update"), autoencoder, "", 2, 0, 6, progress=False,
                      draw_background=True)


def test_incremental_weights_are_fitted_against_the_background_itself(tiny_models):
    """With the tuning stream's backgrounds kept (weighted_state: incremental) the weights fit the
    truth minus the background ``x_b``, else the truth minus its decoding ``D(z_b)``."""
    cfg, _ = tiny_settings(tiny_models)
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    models = method_models(cfg, inputs, "cpu")
    ae, norm = models.autoencoder, models.normalizer
    g = torch.Generator().manual_seed(3)
    n, C = 6, len(models.channels)
    times = pd.date_range(f"{YEAR}-01-01", periods=n, freq="6h")
    z_b, z_a = torch.randn(n, ae.cfg.n_latent, generator=g), torch.randn(n, ae.cfg.n_latent, generator=g)
    with torch.no_grad():
        d_b, d_a = ae.decode(z_b).double(), ae.decode(z_a).double()
    # the background's part that its decoding loses: against the increment, and noise
    x_b = d_b - 0.4 * (d_a - d_b) + 0.1 * torch.randn(d_b.shape, generator=g, dtype=torch.float64)
    half = torch.tensor([0.0, 0.25, 0.5, 1.0] * (C // 4) + [0.5] * (C % 4), dtype=torch.float64)
    x_t = x_b + half[None, :, None, None] * (d_a - d_b)  # the truth: x_b plus a known share of the increment
    result = SimpleNamespace(fields={"z_b": z_b, "z_a": z_a}, times=times,
                             backgrounds=norm.destandardize(x_b, times).float())
    fitted, projection = increment_weights(models, result, slice(0, n), x_t.float())
    assert fitted.tolist() == pytest.approx(half.tolist(), abs=2e-3) and projection is None
    without, _ = increment_weights(models, SimpleNamespace(fields=result.fields, times=times, backgrounds=None),
                                   slice(0, n), x_t.float())
    # against D(z_b) the fit absorbs what D(E(x_b)) loses: 0.4 of the increment less, clipped at 0
    assert without.tolist() == pytest.approx((half - 0.4).clamp(0, 1).tolist(), abs=0.03)
    # weighted_state: blended: the weight h of the autoencoder's change D(z_b) - x_b is fitted with g
    h = torch.tensor([1.0, 0.6, 0.3, 0.0] * (C // 4) + [0.5] * (C % 4), dtype=torch.float64)
    x_h = x_b + h[None, :, None, None] * (d_b - x_b) + half[None, :, None, None] * (d_a - d_b)
    g_h, h_fit = increment_weights(models, result, slice(0, n), x_h.float(), blended=True)
    assert g_h.tolist() == pytest.approx(half.tolist(), abs=5e-3)
    assert h_fit.tolist() == pytest.approx(h.tolist(), abs=5e-3)
    # per octave band of the scales (assimilation.increment_bands: 3 here), known weights per band
    share = torch.stack([half, 1 - half, torch.full_like(half, 0.5)], dim=1)
    h_band = torch.stack([h, torch.full_like(h, 0.8), 1 - h], dim=1)
    x_band = x_b + band_weighted(d_b - x_b, h_band) + band_weighted(d_a - d_b, share)
    g_b, h_b = increment_weights(models, result, slice(0, n), x_band.float(), blended=True, n_bands=3)
    assert g_b.shape == h_b.shape == (C, 3)
    np.testing.assert_allclose(g_b, share, atol=0.01)
    np.testing.assert_allclose(h_b, h_band, atol=0.01)


def test_a_state_weighted_per_band_is_what_the_archive_decodes(tunings, tiny_models, tmp_path):
    """weighted_state: blended with weights per channel and octave band (assimilation.increment_bands):
    the latent record (z_b, z_a, the (channel, band) weights and the kept part) decodes to the state
    the stream cycled from, which differs from that of the per-channel weights at the bands' mean."""
    cfg, run = tiny_settings(tiny_models, background_variance="cycling", decoded_increment="weighted",
                             weighted_state="blended")
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    path = tmp_path / "blended.nc"
    tunings["cycling"].assign_attrs(weighted_state="blended", increment_bands=cfg.increment_bands).to_netcdf(path)
    cycled = {}
    for name in ("bands", "mean"):
        models = method_models(cfg, inputs, "cpu")
        apply_tuning(models, path, cfg)
        C = len(models.channels)
        g = torch.stack([torch.linspace(0.0, 1.0, C), torch.full((C,), 0.7), torch.linspace(1.0, 0.0, C)], 1).double()
        h = torch.stack([torch.full((C,), 0.9), torch.linspace(0.0, 1.0, C), torch.full((C,), 0.2)], 1).double()
        models.increment_weights, models.projection_weights = (g, h) if name == "bands" else (g.mean(1), h.mean(1))
        result = run_stream(YEAR, models, inputs.observations, cfg.with_(spinup_days=0), run, max_cycles=6,
                            keep_analyses=True)
        norm = models.normalizer
        cycled[name] = norm.standardize(result.analyses[:6].double(), result.times[:6]).double()
        if name == "bands":
            latent = latent_dataset({k: result.fields[k][:6].numpy()
                                     for k in ("z_a", "z_b", "sigma_a2_update", "sigma_b2_update")},
                                    result.times[:6], increment_weights=result.weights_by_channel(models.channels),
                                    kept=(result.kept[:6].numpy(), None),
                                    attrs={AUTOENCODER_PRECISION: models.autoencoder_precision})
            assert latent["increment_weight"].dims == ("channel", "band")
            np.testing.assert_allclose(latent["increment_weight"].values, g)
            mean, _ = decode_latent(latent, inputs.autoencoder, "", 0, 0, 4, progress=False)
            archive = norm.standardize(torch.as_tensor(mean), result.times[:6]).double()
            assert (archive - cycled[name]).abs().max() < 1e-4  # float32 states and decodings
    assert (cycled["bands"] - cycled["mean"]).abs().max() > 1e-2
