"""Normalisation statistics and climatology against values worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from hloba.normalization import DAYS_PER_YEAR, climatology_at, compute_normalization, fractional_day_of_year
from hloba.testing import synthetic_dataset


def yearly(years, fill):
    def open_years():
        for y in years:
            times = pd.date_range(f"{y}-01-01", f"{y}-12-31 18:00", freq="6h")
            yield synthetic_dataset(times, fill=fill)

    return open_years


def test_mean_and_std_of_known_fields():
    # geopotential level 250 = 10 + lat index, level 750 = +-2 alternating in time;
    # temperature = 250 + lat index (4 latitudes)
    def fill(name, shape, times):
        if name == "geopotential":
            out = np.zeros(shape)
            out[:, 0] = 10.0 + np.arange(shape[2])[None, :, None]
            out[:, 1] = np.where(np.arange(shape[0]) % 2 == 0, 2.0, -2.0)[:, None, None]
            return out
        return 250.0 + np.broadcast_to(np.arange(shape[1])[None, :, None], shape).astype(float)

    norm = compute_normalization(yearly([2001, 2002], fill), n_harmonics=1)
    assert list(norm["channel"].values) == ["geopotential_250", "geopotential_750", "temperature"]
    np.testing.assert_allclose(norm["mean"].values, [11.5, 0.0, 251.5], atol=1e-9)
    assert norm["std"].values[1] == pytest.approx(2.0)
    assert norm["std"].values[2] == pytest.approx(np.std([0, 1, 2, 3]))
    assert np.isnan(norm["channel_level"].values[2])
    assert norm.attrs["n_training_years"] == 2


def test_constant_channel_is_rejected_by_name():
    with pytest.raises(ValueError, match="geopotential_250"):
        compute_normalization(yearly([2001], lambda n, s, t: np.ones(s)))


def test_climatology_recovers_an_annual_harmonic():
    wobble = np.random.default_rng(1)

    def fill(name, shape, times):
        d = fractional_day_of_year(times)
        signal = 5.0 + 3.0 * np.cos(2 * np.pi * (d - 15.0) / DAYS_PER_YEAR)
        return signal.reshape((-1,) + (1,) * (len(shape) - 1)) + wobble.normal(0.0, 1e-6, shape)

    norm = compute_normalization(yearly([2001, 2002, 2003], fill), n_harmonics=2)
    times = pd.DatetimeIndex(["2005-01-16 12:00", "2005-07-17 06:00"])
    clim = climatology_at(norm, times)
    assert clim.shape == (2, 3, 4, 5)
    expected = 5.0 + 3.0 * np.cos(2 * np.pi * (np.array([15.5, 197.25]) - 15.0) / DAYS_PER_YEAR)
    np.testing.assert_allclose(clim[:, 0, 0, 0], expected, atol=1e-5)
    # the per-day table agrees at mid-day, and the anomalies about the fit vanish
    np.testing.assert_allclose(norm["climatology"].sel(dayofyear=16).values[0, 0, 0], expected[0], atol=1e-4)


def test_anomaly_std_is_the_noise_about_the_seasonal_cycle():
    rng = np.random.default_rng(0)

    def fill(name, shape, times):
        d = fractional_day_of_year(times)
        signal = 10.0 * np.sin(2 * np.pi * d / DAYS_PER_YEAR).reshape((-1,) + (1,) * (len(shape) - 1))
        return signal + rng.normal(0.0, 0.5, shape)

    norm = compute_normalization(yearly([2001, 2002], fill), n_harmonics=1)
    np.testing.assert_allclose(norm["anomaly_std"].values, 0.5, rtol=0.02)
    assert (norm["std"].values > 7.0).all()


def test_climatology_keeps_the_last_call_and_returns_new_tensors():
    """The stream asks for the same time twice a cycle: the second call gives the same values from
    the kept result, in a tensor of its own (changing it changes nothing kept)."""
    import pandas as pd
    import torch

    from hloba.normalization import Normalizer

    g = torch.Generator().manual_seed(0)
    norm = Normalizer(torch.ones(2), torch.randn(7, 2, 3, 4, generator=g, dtype=torch.float64), 3)
    t = [pd.Timestamp("2003-05-01 06:00")]
    first = norm.climatology(t)
    expected = first.clone()
    first.zero_()
    again = norm.climatology(t)
    assert torch.equal(again, expected) and again is not first
    # standardising and destandardising read the kept tensor and leave it as it was
    x = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(norm.destandardize(norm.standardize(x, t), t), x, rtol=1e-6, atol=1e-6)
    assert torch.equal(norm.climatology(t), expected)
    other = norm.climatology([pd.Timestamp("2003-05-01 12:00")])
    assert not torch.equal(other, expected)
    norm._last = None  # the same values computed afresh
    assert torch.equal(norm.climatology(t), expected)
