"""Verification metrics against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hloba.verify.evaluate import gridded_scores, observation_statistics
from hloba.scores import anomaly_correlation, bias, gaussian_crps, latent_calibration, rmse, spread_skill

W = np.array([0.5, 1.0, 1.5])  # area weights of 3 latitudes


def field(seed=0, shape=(4, 2, 3, 5)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_constant_offset_gives_rmse_and_bias_c():
    truth = field()
    for c in (0.7, -2.0):
        torch.testing.assert_close(rmse(truth + c, truth, W), torch.full((2,), abs(c), dtype=torch.float64))
        torch.testing.assert_close(bias(truth + c, truth, W), torch.full((2,), c, dtype=torch.float64))


def test_area_weighting_counts_latitudes_by_their_weight():
    truth = torch.zeros(1, 1, 3, 2, dtype=torch.float64)
    est = truth.clone()
    est[:, :, 2] = 1.0  # error 1 only on the latitude of weight 1.5 (of total 3)
    assert float(rmse(est, truth, W)[0]) == pytest.approx(math.sqrt(1.5 / 3.0))
    assert float(bias(est, truth, W)[0]) == pytest.approx(0.5)


def test_perfect_estimate_gives_acc_one_and_crps_zero():
    truth, clim = field(1), field(2)
    std = torch.zeros_like(truth)
    torch.testing.assert_close(anomaly_correlation(truth, truth, clim, W), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(gaussian_crps(truth, std, truth, W), torch.zeros(2, dtype=torch.float64))
    # with zero spread CRPS is the absolute error
    torch.testing.assert_close(gaussian_crps(truth + 0.3, std, truth, W), torch.full((2,), 0.3, dtype=torch.float64))


def test_gaussian_crps_of_a_centred_forecast():
    # CRPS(N(0, s^2), 0) = s (sqrt(2) - 1) / sqrt(pi) ... = s * (2 phi(0) - 1/sqrt(pi))
    s = 2.0
    one = torch.zeros(1, 1, 3, 1, dtype=torch.float64)
    crps = float(gaussian_crps(one, one + s, one, W)[0])
    assert crps == pytest.approx(s * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)))


def test_spread_skill_and_latent_calibration_are_one_when_calibrated():
    g = torch.Generator().manual_seed(3)
    truth = torch.zeros(2000, 1, 3, 4, dtype=torch.float64)
    std = torch.full_like(truth, 0.5)
    est = truth + 0.5 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    assert float(spread_skill(std, est, truth, W)[0]) == pytest.approx(1.0, abs=0.02)
    z = torch.randn(5000, 10, generator=g) * 2.0
    assert latent_calibration(z, torch.full_like(z, 4.0), torch.zeros_like(z)) == pytest.approx(1.0, abs=0.03)


def test_gridded_scores_by_period_and_observation_statistics():
    times = pd.date_range("2003-01-01", periods=8, freq="30D")
    truth = np.zeros((8, 1, 3, 2))
    mean = truth + 1.0
    scores = gridded_scores(mean, np.zeros_like(mean), truth, truth - 1.0, times, W, ["t"])
    assert set(scores.period) >= {"year", "01", "DJF", "JJA"}
    assert np.allclose(scores.rmse, 1.0) and np.allclose(scores.bias, 1.0)
    fb = pd.DataFrame({"variable": ["t"] * 4, "level": [np.nan] * 4, "platform": ["a", "a", "a", "b"],
                       "value": [1.0, 2.0, 3.0, 0.0], "background": [0.0, 1.0, 9.0, 0.0],
                       "analysis": [0.5, 1.5, 3.0, 0.0], "qc": [0, 0, 1, 2]})
    obs = observation_statistics(fb).set_index("platform")
    assert obs.loc["a", "n"] == 3 and obs.loc["a", "n_rejected"] == 1
    assert obs.loc["a", "omb_mean"] == pytest.approx(1.0) and obs.loc["a", "oma_mean"] == pytest.approx(0.5)
    assert np.isnan(obs.loc["b", "omb_mean"])  # nothing used


def test_uncertainty_factor_is_rmse_over_rms_std():
    from hloba.assim.uncertainty import uncertainty_factors

    truth = np.zeros((5, 2, 3, 4))
    mean = truth + np.array([2.0, 0.5])[None, :, None, None]
    std = np.ones_like(truth)
    np.testing.assert_allclose(uncertainty_factors(mean, std, truth, W), [2.0, 0.5])


def test_reference_missing_a_variable_or_the_year_is_named(tmp_path):
    import xarray as xr

    from hloba.channels import Channel, stack_channels
    from hloba.verify.latent import truth_on

    times = pd.date_range("2003-01-01", periods=4, freq="6h")
    ds = xr.Dataset({"temperature": (("time", "latitude", "longitude"), np.zeros((4, 3, 2)))},
                    coords={"time": times, "latitude": [10.0, 20.0, 30.0], "longitude": [0.0, 10.0]})
    with pytest.raises(KeyError, match="'specific_humidity' is missing"):
        stack_channels(ds, [Channel("temperature"), Channel("specific_humidity")])
    with pytest.raises(KeyError, match="level 250.0 of 'temperature' is missing"):
        stack_channels(ds, [Channel("temperature", 250.0)])
    ds.to_netcdf(tmp_path / "2003.nc")
    with pytest.raises(ValueError, match="the reference lacks 4 of the analysis times"):
        truth_on([tmp_path / "2003.nc"], times + pd.Timedelta(days=365), [Channel("temperature")])


def test_reliability_of_an_informative_and_of_a_shapeless_std():
    """Errors drawn with a std that varies over the grid: binned RMSE follows the std (slope 1,
    positive correlation); the same std values shuffled over the grid carry no information (slope 0,
    same spread/RMSE)."""
    from hloba.verify.reliability import reliability, weighted_bins

    rng = np.random.default_rng(0)
    std = np.exp(rng.normal(0.0, 0.5, size=(200, 2, 12, 16)))
    truth = np.zeros_like(std)
    mean = truth + std * rng.standard_normal(std.shape)
    weights = np.linspace(0.5, 1.5, 12)
    shuffled = rng.permutation(std.ravel()).reshape(std.shape)
    out = {}
    for name, s in (("informative", std), ("shapeless", shuffled)):
        table, summary = reliability(mean, s, truth, weights, ["a", "b"], n_bins=8)
        out[name] = summary.set_index("channel")
        assert len(table) == 16 and np.allclose(table.groupby("channel").weight_share.sum(), 1.0)
        assert np.allclose(table.weight_share, 1 / 8, atol=0.01)  # equal area-weighted shares
    good, flat = out["informative"], out["shapeless"]
    assert np.allclose(good.reliability_slope, 1.0, atol=0.1) and (good.corr_std_abs_error > 0.3).all()
    assert (flat.reliability_slope.abs() < 0.1).all() and (flat.corr_std_abs_error.abs() < 0.05).all()
    assert np.allclose(good.spread_over_rmse, 1.0, atol=0.03)
    assert np.allclose(flat.spread_over_rmse, good.spread_over_rmse, atol=0.01)  # same values (shuffled), same size
    bins = weighted_bins(np.arange(10.0), np.ones(10), 5)
    assert list(bins) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
