"""The HLOBA update against the scalar Kalman filter and its limits; the first-guess check."""

import math

import pytest
import torch

from hloba.assim.update import first_guess_check, hybrid_update, hybrid_variance


def test_update_equals_the_scalar_kalman_filter():
    g = torch.Generator().manual_seed(0)
    kw = {"generator": g, "dtype": torch.float64}
    z_b, z_o = torch.randn(4, 50, **kw), torch.randn(4, 50, **kw)
    sb, so = torch.rand(4, 50, **kw) + 0.1, torch.rand(4, 50, **kw) + 0.1
    z_a, sa = hybrid_update(z_b, sb, z_o, so)
    for i in range(4):
        for j in range(0, 50, 7):
            b, o = float(sb[i, j]), float(so[i, j])
            gain = b / (b + o)
            assert float(z_a[i, j]) == pytest.approx(float(z_b[i, j]) + gain * float(z_o[i, j] - z_b[i, j]), rel=1e-12)
            # precision adds up: 1/sa = 1/sb + 1/so
            assert 1.0 / float(sa[i, j]) == pytest.approx(1.0 / b + 1.0 / o, rel=1e-12)


def test_limits_return_the_background_or_the_observation():
    z_b, z_o = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 5.0]])
    sb = torch.tensor([[0.5, 2.0]])
    z_a, sa = hybrid_update(z_b, sb, z_o, torch.full_like(sb, math.inf))
    assert torch.equal(z_a, z_b) and torch.equal(sa, sb)
    so = torch.tensor([[0.3, 0.7]])
    z_a, sa = hybrid_update(z_b, torch.full_like(so, math.inf), z_o, so)
    assert torch.equal(z_a, z_o) and torch.equal(sa, so)
    # very large but finite agrees with the limits
    z_a, _ = hybrid_update(z_b, sb, z_o, torch.full_like(sb, 1e12))
    torch.testing.assert_close(z_a, z_b, atol=1e-9, rtol=0)


def test_hybrid_variance_and_its_weights():
    clim, s2 = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0])
    torch.testing.assert_close(hybrid_variance(clim, s2, 0.8, 2.0), torch.tensor([1.8, 1.6]))
    with pytest.raises(ValueError, match="non-negative"):
        hybrid_variance(clim, s2, -0.1, 1.0)


def test_first_guess_check_catches_planted_gross_errors():
    g = torch.Generator().manual_seed(1)
    n = 20000
    truth = torch.randn(n, generator=g)
    hx_b = truth + 0.5 * torch.randn(n, generator=g)  # background error std 0.5
    y = truth + 0.3 * torch.randn(n, generator=g)  # observation error std 0.3
    gross = torch.rand(n, generator=g) < 0.02
    size = 8.0 * math.sqrt(0.09 + 0.25)  # 8 standard deviations of the innovation
    y = torch.where(gross, y + size * torch.sign(torch.randn(n, generator=g)), y)
    reject = first_guess_check(y, hx_b, torch.full((n,), 0.09), torch.full((n,), 0.25), kappa=3.0)
    caught = float((reject & gross).sum() / gross.sum())
    false = float((reject & ~gross).sum() / (~gross).sum())
    assert caught >= 0.95
    assert false <= 0.02
    assert false == pytest.approx(0.0027, abs=0.002)  # the Gaussian tail beyond 3 sigma
