"""The fixed-lag smoother (assimilation.smoother_hours, hloba.smoother): its fit, its corrections at
the end of a stream, the kept parts the archive decodes, its settings, and a tuned stream's
smoothed analyses against the filter's."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import tiny_inputs, tiny_settings

from hloba.assim.models import StreamError, method_models, tuned_smoother
from hloba.assim.settings import StreamConfig
from hloba.assim.year import run_period
from hloba.bands import band_parts
from hloba.config import stream_years
from hloba.latent import KEPT_QUANTUM, decoded_analysis, quantized_kept
from hloba.smoother import (SmootherGains, dequantized, fit_smoother, smoother_lags, smoothing_correction,
                            standardized_increment, with_correction)
from hloba.states import load_years
from hloba.verify.settings import method_settings, own_tuning

YEAR = 2002  # the tiny configuration's calibration year (its tuning period: the first 30 days)


@pytest.fixture(scope="module")
def planted():
    """Increments of 3 channels on 16 x 16 and errors built from them: channel 1's error is half
    of channel 0's next increment in the longest band, channel 2's is -0.3 times its own increment
    in every band, plus noise."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(200, 3, 16, 16, generator=g)
    e = 0.05 * torch.randn(200, 3, 16, 16, generator=g, dtype=torch.float64)
    e[:-1, 1] += 0.5 * band_parts(d.double(), 3)[0, 1:, 0]
    e[:, 2] -= 0.3 * d[:, 2].double()
    return d, e.float()


def test_the_fit_recovers_planted_gains_and_nothing_else(planted):
    d, e = planted
    gains = fit_smoother(e, d, 1, 3)
    assert gains.lags == 1 and gains.bands == 3 and gains.gains.shape == (2, 3, 3, 6)
    full = gains.gains[0]
    assert full[0, 1, 3 + 0].item() == pytest.approx(0.5, abs=0.01)  # band 0, lag 1, channel 0 -> 1
    assert full[:, 2, 2].tolist() == pytest.approx([-0.3] * 3, abs=0.01)  # lag 0, channel 2 -> 2, every band
    planted_mask = torch.zeros_like(full, dtype=torch.bool)
    planted_mask[0, 1, 3], planted_mask[:, 2, 2] = True, True
    assert full[~planted_mask].abs().max() < 0.01
    # the smoothed errors are the noise; channel 0's error is noise alone, so its RMSE stays
    assert gains.std_factor.tolist() == pytest.approx([1.0, 0.36, 0.164], abs=0.01)
    rmse = (e.double() - smoothing_correction(d, gains)).square().mean().sqrt()
    assert rmse.item() == pytest.approx(0.05, rel=0.02)


def test_a_short_tuning_period_shrinks_the_gains_to_nothing_rather_than_fit_noise():
    """Errors unrelated to the increments, on a small grid over few cycles (the longest band holds
    one mode): the cross-validated ridge leaves (almost) no correction where plain least squares
    fits its 24 gains per band to the noise."""
    g = torch.Generator().manual_seed(1)
    d = torch.randn(16, 8, 4, 4, generator=g)
    e = torch.randn(16, 8, 4, 4, generator=g)
    gains = fit_smoother(e, d, 2, 3)
    assert gains.gains.abs().max() < 0.05
    assert (e.double() - smoothing_correction(d, gains)).square().mean() <= 1.01 * e.double().square().mean()
    assert (gains.std_factor >= 0.97).all()  # the held-out halves gain nothing
    # where the increments explain half the errors' variance, it fits them (ridge shrinks little given data)
    d, e = torch.randn(64, 8, 8, 8, generator=g), torch.randn(64, 8, 8, 8, generator=g)
    fitted = fit_smoother(d + e, d, 0, 3)
    assert fitted.gains[0, :, range(8), range(8)].mean() == pytest.approx(1.0, abs=0.1)
    assert fitted.std_factor.mean() == pytest.approx(0.5 ** 0.5, abs=0.05)


def test_the_last_cycles_take_the_gains_of_the_lags_they_have(planted):
    d, e = planted
    gains = fit_smoother(e, d, 2, 3)
    assert gains.gains[1, :, :, 6:].abs().max() == 0 and gains.gains[2, :, :, 3:].abs().max() == 0
    corr = smoothing_correction(d[:50], gains)
    parts = band_parts(d[:50].double(), 3)  # (B, T, C, ny, nx)

    def by_hand(j, missing):
        x = torch.cat([parts[:, j + lag] for lag in range(3 - missing)], dim=1)  # (B, C (L + 1 - s), ny, nx)
        g = gains.gains[missing, :, :, : x.shape[1]].double()
        return torch.einsum("bck,bkyx->cyx", g, x)

    for j, missing in ((10, 0), (47, 0), (48, 1), (49, 2)):
        assert torch.allclose(corr[j].double(), by_hand(j, missing), atol=1e-5)
    # a stream stopped early: the cycles before its stop read no increment after it
    assert torch.allclose(smoothing_correction(d[:50], gains, stop=40)[39].double(), by_hand(39, 2), atol=1e-5)


def test_the_correction_joins_the_kept_parts_in_their_quanta():
    kept = torch.tensor([[[[5, -32767]]], [[[7, 0]]], [[[0, 0]]]], dtype=torch.int16)  # (cycles, C, 1, 2)
    corr = torch.tensor([[[[2.0 * KEPT_QUANTUM, -1.0]]], [[[0.4 * KEPT_QUANTUM, 3.0 * KEPT_QUANTUM]]]])
    out = with_correction(kept, corr, 3)
    assert out.tolist() == [[[[7, -32767]]], [[[7, 3]]], [[[0, 0]]]]  # rounded, clipped, later cycles as they were
    assert kept[0, 0, 0, 0] == 5  # left alone
    fresh = with_correction(None, corr, 3)
    assert fresh.shape == (3, 1, 1, 2) and fresh.tolist()[0] == [[[2, -4096]]] and fresh[2].abs().max() == 0
    assert (dequantized(quantized_kept(corr)) - corr).abs().max() <= KEPT_QUANTUM / 2


def test_an_increment_is_standardised_per_channel():
    x_a = torch.tensor([[[3.0]], [[10.0]]])
    x_b = torch.tensor([[[1.0]], [[4.0]]])
    assert standardized_increment(x_a, x_b, torch.tensor([2.0, 3.0])).flatten().tolist() == [1.0, 2.0]


def test_a_decoded_analysis_adds_the_kept_part_without_weights_too():
    d_a, kept = torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.25)
    assert decoded_analysis(d_a, None, None, kept).unique().tolist() == [1.25]
    assert decoded_analysis(d_a, None, None).unique().tolist() == [1.0]


def test_the_smoother_settings():
    assert StreamConfig().smoother_hours is None  # the library's default: the filter (the paper's)
    for bad in (-1, 241, True, "12"):
        with pytest.raises(ValueError, match="smoother_hours"):
            StreamConfig(smoother_hours=bad)
    with pytest.raises(ValueError, match="tuning_days > 0 or smoother_hours: null"):
        StreamConfig(smoother_hours=12, tuning_days=0)
    six = pd.Timedelta(hours=6)
    assert [smoother_lags(h, six) for h in (0, 6, 12, 24.0)] == [0, 1, 2, 4]
    assert smoother_lags(24, pd.Timedelta(days=1)) == 1
    for bad in (3, 9):  # not a whole number of steps
        with pytest.raises(ValueError, match="assimilation.smoother_hours .* whole number .* 6-hour steps"):
            smoother_lags(bad, six)
    cfg = StreamConfig(smoother_hours=12, background_variance="forecast")
    # the filter's variant runs the same stream with the same tuning: no tuning of its own
    assert method_settings("hloba_filter", cfg).smoother_hours is None and not own_tuning("hloba_filter", cfg)
    gains = SmootherGains(torch.zeros(3, 5, 8, 24), torch.ones(8))
    ds = xr.Dataset({"smoother_gain": (("m", "b", "c", "r"), gains.gains.numpy()),
                     "smoother_std_factor": ("c", gains.std_factor.numpy())})
    assert tuned_smoother(ds, cfg, "t.nc", six).lags == 2
    assert tuned_smoother(ds, cfg.with_(smoother_hours=None), "t.nc", six) is None
    with pytest.raises(StreamError, match="t.nc holds smoother gains for 2 later cycles, assimilation.smoother_hours 6 "
                                          "reads 1: rerun rule tune_stream"):
        tuned_smoother(ds, cfg.with_(smoother_hours=6), "t.nc", six)
    with pytest.raises(StreamError, match="t.nc has no smoother gains.*rerun rule tune_stream"):
        tuned_smoother(ds.drop_vars("smoother_gain"), cfg, "t.nc", six)


def test_a_tuned_stream_returns_and_keeps_its_analyses_smoothed(tiny_models):
    """The tiny pipeline's tuning holds gains (config.yaml's smoother_hours: 12, 2 cycles); a stream with them
    returns the filter's analyses plus the correction of the filter's increments, keeps it in the
    kept parts the archive decodes, and its analyses beyond the tuning period err less."""
    cfg, run = tiny_settings(tiny_models)
    assert cfg.smoother_hours == 12
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]))
    models = method_models(cfg, inputs, "cpu")
    assert models.smoother is not None and models.smoother.lags == 2
    smoothed = run_period(YEAR, models, inputs.observations, cfg, 50, run, keep_analyses=True)
    filtered = run_period(YEAR, models, inputs.observations, method_settings("hloba_filter", cfg), 50, run,
                          keep_analyses=True, keep_increments=True)
    first, stop = smoothed.first, smoothed.stop
    assert smoothed.increments is not None and torch.equal(smoothed.increments, filtered.increments)
    correction = dequantized(quantized_kept(smoothing_correction(dequantized(filtered.increments[:stop]), models.smoother)))
    std = models.normalizer.anomaly_std[:, None, None]
    expected = filtered.analyses.double() + correction[first:stop].double() * std
    assert torch.allclose(smoothed.analyses.double(), expected, rtol=0, atol=1e-3 * float(std.max()))
    base = torch.zeros_like(correction, dtype=torch.int16) if filtered.kept is None else filtered.kept[:stop]
    assert torch.equal(smoothed.kept[:stop].int() - base.int(), quantized_kept(correction).int())
    assert correction[first:stop].abs().mean() > 0.01  # it corrects
    # against the truth after the 30 tuning days the gains were fitted on
    x_t, times, _, _ = load_years([tiny_models / f"results/reference/{YEAR}.nc"], models.normalizer, models.channels)
    cycles = smoothed.times[first:stop]
    index = torch.as_tensor(pd.DatetimeIndex(times).get_indexer(cycles))
    later = np.asarray(cycles >= pd.Timestamp(YEAR, 1, 31))
    truth = x_t[index][later].double()

    def rmse(result):
        x = models.normalizer.standardize(result.analyses.double(), cycles)[later].double()
        return float((x - truth).square().mean().sqrt())

    assert rmse(smoothed) < 0.99 * rmse(filtered)
