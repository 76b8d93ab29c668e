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


def test_nothing_known_keeps_the_background():
    z_b, z_o = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    inf = torch.tensor([[math.inf]])
    z_a, sa = hybrid_update(z_b, inf, z_o, inf)
    assert torch.equal(z_a, z_b) and torch.isinf(sa).all()


def test_correlated_update_reduces_to_the_paper_and_is_optimal_for_correlated_errors():
    from hloba.assim.update import correlated_update

    g = torch.Generator().manual_seed(5)
    kw = {"generator": g, "dtype": torch.float64}
    z_b, z_o = torch.randn(3, 40, **kw), torch.randn(3, 40, **kw)
    sb, so = torch.rand(3, 40, **kw) + 0.1, torch.rand(3, 40, **kw) + 0.1
    za0, sa0 = hybrid_update(z_b, sb, z_o, so)
    za, sa = correlated_update(z_b, sb, z_o, so, torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(za, za0)
    torch.testing.assert_close(sa, sa0)
    # Monte Carlo: errors with correlation 0.5; the gain minimises the error, the variance is right
    n, sb2, so2, rho = 400000, 1.0, 0.5, 0.5
    eb = torch.randn(n, **kw)
    eo = rho * (so2 / sb2) ** 0.5 * eb + (so2 * (1 - rho**2)) ** 0.5 * torch.randn(n, **kw)
    truth = torch.zeros(n, dtype=torch.float64)
    b, o = truth + eb, truth + eo
    var = lambda x: torch.full((n,), x, dtype=torch.float64)  # noqa: E731
    za, sa = correlated_update(b, var(sb2), o, var(so2), torch.tensor(rho, dtype=torch.float64))
    err = float(za.square().mean())
    assert abs(err - float(sa[0])) < 0.01
    naive, naive_var = hybrid_update(b, var(sb2), o, var(so2))
    assert err < float(naive.square().mean()) - 0.01  # better than ignoring the correlation
    assert float(naive_var[0]) < float(naive.square().mean()) - 0.05  # which is also over-confident
    # the independent-error gain with the variance that accounts for the correlation
    std_gain, std_var = correlated_update(b, var(sb2), o, var(so2), torch.tensor(rho, dtype=torch.float64), False)
    torch.testing.assert_close(std_gain, naive)
    assert abs(float(std_gain.square().mean()) - float(std_var[0])) < 0.01
    # infinite variances keep the limits
    inf = torch.tensor([[math.inf]], dtype=torch.float64)
    one = torch.tensor([[1.0]], dtype=torch.float64)
    za, sa = correlated_update(one, inf, 3 * one, 0.5 * one, torch.tensor(0.4, dtype=torch.float64))
    assert float(za) == 3.0 and float(sa) == 0.5


def test_latent_3dvar_with_identity_decoder_and_linear_h_is_the_closed_form_update():
    from hloba.assim.var import latent_3dvar

    g = torch.Generator().manual_seed(7)
    n = 30
    z_b = torch.randn(1, n, generator=g, dtype=torch.float64)
    sb = torch.rand(1, n, generator=g, dtype=torch.float64) + 0.2
    # every latent element observed once (H selects it), with error variance so
    idx = torch.randperm(n, generator=g)
    so = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    y = torch.randn(n, generator=g, dtype=torch.float64)
    result = latent_3dvar(z_b, sb, lambda z: z[0, idx], y, so, tol=1e-10)
    z_o = torch.empty(1, n, dtype=torch.float64)
    so_z = torch.empty(1, n, dtype=torch.float64)
    z_o[0, idx], so_z[0, idx] = y, so
    closed, _ = hybrid_update(z_b, sb, z_o, so_z)
    torch.testing.assert_close(result.z_a, closed, atol=1e-7, rtol=0)
    assert result.cost_final < result.cost_initial and result.iterations > 1
