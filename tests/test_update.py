"""The HLOBA update against the scalar Kalman filter and its limits; the first-guess check."""

import math

import pytest
import torch

from hloba.assim.update import (
    first_guess_check,
    hybrid_update,
    hybrid_variance,
    likelihood_estimate,
    observation_estimate,
)


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


def test_likelihood_estimate_undoes_a_gaussian_prior_exactly():
    # posterior of z ~ N(mu, sc2) after y = z + eps, eps ~ N(0, r2): removing the prior returns (y, r2)
    g = torch.Generator().manual_seed(1)
    kw = {"generator": g, "dtype": torch.float64}
    mu, sc2 = torch.randn(1, 40, **kw), torch.rand(1, 40, **kw) + 0.5
    y, r2 = torch.randn(3, 40, **kw), 0.05 + 0.4 * torch.rand(3, 40, **kw)
    post_var = 1.0 / (1.0 / sc2 + 1.0 / r2)
    post_mean = post_var * (mu / sc2 + y / r2)
    z_l, sl2 = likelihood_estimate(post_mean, post_var, mu, sc2)
    torch.testing.assert_close(z_l, y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sl2, r2, rtol=1e-10, atol=1e-12)
    # the update with a background then equals the exact posterior of background and observation
    z_b, sb2 = torch.randn(3, 40, **kw), torch.rand(3, 40, **kw) + 0.2
    z_a, sa2 = hybrid_update(z_b, sb2, z_l, sl2)
    torch.testing.assert_close(sa2, 1.0 / (1.0 / sb2 + 1.0 / r2), rtol=1e-10, atol=0)
    torch.testing.assert_close(z_a, sa2 * (z_b / sb2 + y / r2), rtol=1e-10, atol=1e-10)
    # the posterior form is the same with ``posterior`` and the likelihood's with ``likelihood``
    assert observation_estimate("posterior", post_mean, post_var, mu, sc2)[0] is post_mean
    torch.testing.assert_close(observation_estimate("likelihood", post_mean, post_var, mu, sc2)[0], y)
    with pytest.raises(ValueError, match="rerun rule generate_lagged_ensemble"):
        observation_estimate("likelihood", post_mean, post_var, None, None)
    with pytest.raises(ValueError, match="not one of"):
        observation_estimate("trained", post_mean, post_var, mu, sc2)


def test_elements_the_observations_do_not_inform_leave_the_background_alone():
    mu, sc2 = torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    # no observations (inf), a posterior no tighter than the prior, one barely tighter, one informative
    so2 = torch.tensor([[math.inf, 1.2, 0.99, 0.5]])
    z_o = torch.tensor([[0.0, 2.0, 0.6, 1.0]])
    z_l, sl2 = likelihood_estimate(z_o, so2, mu, sc2)
    assert torch.isinf(sl2[0, :3]).all() and torch.equal(z_l[0, :3], mu[0, :3])
    assert float(sl2[0, 3]) == pytest.approx(1.0) and float(z_l[0, 3]) == pytest.approx(1.5)
    z_b, sb2 = torch.tensor([[-1.0, -1.0, -1.0, -1.0]]), torch.full((1, 4), 0.3)
    z_a, sa2 = hybrid_update(z_b, sb2, z_l, sl2)
    assert torch.equal(z_a[0, :3], z_b[0, :3]) and torch.equal(sa2[0, :3], sb2[0, :3])


def test_likelihood_form_removes_the_error_correlation_of_a_good_background():
    # the scalar simulation: an optimal background (the conditional mean of the truth, so the
    # truth is z_b plus an independent error); the posterior-form estimate's error, -(1 - K)(z - mu)
    # plus noise, correlates with the background's, the likelihood's does not, and its analysis is exact
    g = torch.Generator().manual_seed(2)
    n, sc2, r2, sb2 = 200_000, 1.0, 0.5, 0.3
    z_b = torch.randn(n, generator=g, dtype=torch.float64) * math.sqrt(sc2 - sb2)
    z = z_b + math.sqrt(sb2) * torch.randn(n, generator=g, dtype=torch.float64)
    y = z + math.sqrt(r2) * torch.randn(n, generator=g, dtype=torch.float64)
    post_var = 1.0 / (1.0 / sc2 + 1.0 / r2)
    z_o = post_var * y / r2
    so2 = torch.full((n,), post_var, dtype=torch.float64)
    mu, pv = torch.zeros(n, dtype=torch.float64), torch.full((n,), sc2, dtype=torch.float64)
    corr = {}
    rmse = {}
    for form in ("posterior", "likelihood"):
        est, var = observation_estimate(form, z_o, so2, mu, pv)
        corr[form] = float(torch.corrcoef(torch.stack([z_b - z, est - z]))[0, 1])
        z_a, _ = hybrid_update(z_b, torch.full_like(z, sb2), est, var)
        rmse[form] = float((z_a - z).square().mean().sqrt())
    exact = math.sqrt(1.0 / (1.0 / sb2 + 1.0 / r2))
    assert corr["posterior"] > 0.25 and abs(corr["likelihood"]) < 0.01
    assert rmse["likelihood"] == pytest.approx(exact, rel=0.01)
    assert rmse["posterior"] > 1.03 * exact


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
    from hloba.assim.var import latent_var

    g = torch.Generator().manual_seed(7)
    n = 30
    z_b = torch.randn(1, n, generator=g, dtype=torch.float64)
    sb = torch.rand(1, n, generator=g, dtype=torch.float64) + 0.2
    # every latent element observed once (H selects it), with error variance so
    idx = torch.randperm(n, generator=g)
    so = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    y = torch.randn(n, generator=g, dtype=torch.float64)
    result = latent_var(z_b, sb, lambda z: z[0, idx], y, so, tol=1e-10)
    z_o = torch.empty(1, n, dtype=torch.float64)
    so_z = torch.empty(1, n, dtype=torch.float64)
    z_o[0, idx], so_z[0, idx] = y, so
    closed, _ = hybrid_update(z_b, sb, z_o, so_z)
    torch.testing.assert_close(result.z_a, closed, atol=1e-7, rtol=0)
    assert result.cost_final < result.cost_initial and result.iterations > 1


def test_latent_4dvar_with_a_linear_model_is_the_closed_form_window_analysis():
    """Strong-constraint 4D-Var with identity decoder, linear M and linear H_j:
    z_a = (B^-1 + sum_j G_j^T R_j^-1 G_j)^-1 (B^-1 z_b + sum_j G_j^T R_j^-1 y_j), G_j = H_j M^j."""
    from hloba.assim.var import latent_var, window_observer

    g = torch.Generator().manual_seed(3)
    n, window = 12, 3
    m = torch.eye(n, dtype=torch.float64) + 0.1 * torch.randn(n, n, generator=g, dtype=torch.float64)
    z_b = torch.randn(1, n, generator=g, dtype=torch.float64)
    sb = torch.rand(1, n, generator=g, dtype=torch.float64) + 0.5
    hs = [torch.randn(5, n, generator=g, dtype=torch.float64) for _ in range(window)]
    hs[1] = None  # a cycle without observations
    ys = [None if h is None else torch.randn(5, generator=g, dtype=torch.float64) for h in hs]
    r2 = [None if h is None else torch.rand(5, generator=g, dtype=torch.float64) + 0.2 for h in hs]
    observe = window_observer(lambda z: z[0], lambda x, t: m @ x, [None if h is None else (lambda x, h=h: h @ x)
                                                                    for h in hs], list(range(window)))
    y = torch.cat([v for v in ys if v is not None])
    r = torch.cat([v for v in r2 if v is not None])
    result = latent_var(z_b, sb, observe, y, r, tol=1e-12, max_iter=500)
    lhs = torch.diag(1 / sb[0])
    rhs = z_b[0] / sb[0]
    mj = torch.eye(n, dtype=torch.float64)
    for j in range(window):
        if j:
            mj = m @ mj
        if hs[j] is not None:
            gj = hs[j] @ mj
            lhs = lhs + gj.T @ torch.diag(1 / r2[j]) @ gj
            rhs = rhs + gj.T @ (ys[j] / r2[j])
    closed = torch.linalg.solve(lhs, rhs)
    torch.testing.assert_close(result.z_a[0], closed, atol=1e-6, rtol=0)


@pytest.mark.parametrize("periodic", [True, False])
def test_optimal_interpolation_is_the_blue_with_the_explicit_covariance(periodic):
    """OI against explicit matrices: B is symmetric positive definite, H B H^T is exact, and the
    analysis equals x_b + B H^T (H B H^T + R)^-1 (y - H x_b)."""
    import numpy as np

    from hloba.assim.oi import StaticCovariance, nmc_statistics, optimal_interpolation
    from hloba.grid import Grid
    from hloba.obs.operator import apply_operator, interpolation_weights

    rng = np.random.default_rng(0)
    ny, nx, c = 9, 13, 2
    grid = Grid(np.linspace(30, 50, ny), np.linspace(0, 24, nx), 26.0 if periodic else None, None)
    d = rng.standard_normal((40, c, ny, nx))
    d[:, 1] += 0.5 * d[:, 0]  # correlated channels
    cov = StaticCovariance.from_dataset(nmc_statistics(d, grid), grid)
    n = c * ny * nx
    eye = torch.eye(n, dtype=torch.float64)
    b = torch.stack([cov.apply(e.view(c, ny, nx)).reshape(-1) for e in eye], 1)
    torch.testing.assert_close(b, b.T, atol=1e-12, rtol=0)
    assert torch.linalg.eigvalsh(b).min() > 0
    # unit variance of the standardised differences: diag(B) = the NMC std squared
    np.testing.assert_allclose(b.diagonal().view(c, ny, nx).numpy(), cov.std.numpy() ** 2, rtol=1e-10)
    n_obs = 15
    w = interpolation_weights(grid, rng.integers(0, c, n_obs), rng.uniform(30, 50, n_obs), rng.uniform(0, 24, n_obs))
    h = torch.stack([apply_operator(e.view(1, c, ny, nx), w)[0] for e in eye], 1)
    hbh, _ = cov.observation_covariance(w, ny, nx)
    torch.testing.assert_close(hbh, h @ b @ h.T, atol=1e-12, rtol=0)
    x_b = torch.randn(c, ny, nx, dtype=torch.float64)
    y = torch.randn(n_obs, dtype=torch.float64)
    r2 = torch.full((n_obs,), 0.3, dtype=torch.float64)
    x_a = optimal_interpolation(x_b, y, r2, w, cov, apply_operator(x_b[None], w)[0])
    gain = b @ h.T @ torch.linalg.inv(h @ b @ h.T + torch.diag(r2))
    torch.testing.assert_close(x_a.reshape(-1), x_b.reshape(-1) + gain @ (y - h @ x_b.reshape(-1)), atol=1e-10, rtol=0)


def test_joint_draws_correlate_as_the_update_does():
    """hloba.archive.decode.joint_draws against the update's own errors: with independent background
    and estimate errors the analysis error of hybrid_update has variance sigma_a2 and covariance
    sigma_a2 with the background error; the draws have the same (20,000 of each, 3 % tolerance),
    a calibrated sigma_a2 above sigma_b2 keeps its variance, and a cold cycle (sigma_b2 inf)
    draws the analysis alone."""
    from hloba.archive.decode import joint_draws

    g = torch.Generator().manual_seed(1)
    n = 20_000
    sb2 = torch.tensor([0.5, 2.0, 1.0, 0.3])
    so2 = torch.tensor([1.0, 0.5, 4.0, 0.3])
    e_b, e_o = sb2.sqrt() * torch.randn(n, 4, generator=g), so2.sqrt() * torch.randn(n, 4, generator=g)
    z_a, sa2 = hybrid_update(e_b, sb2.expand(n, 4), e_o, so2.expand(n, 4))  # the truth is 0
    d_a, d_b = joint_draws(sa2, sb2.expand(n, 4), g)
    for a, b in ((z_a, e_b), (d_a, d_b)):
        assert a.var(0) / sa2[0] == pytest.approx(torch.ones(4), rel=0.03)
        assert (a * b).mean(0) / sa2[0] == pytest.approx(torch.ones(4), rel=0.03)
        assert b.var(0) / sb2 == pytest.approx(torch.ones(4), rel=0.03)
    big = 2 * sb2.expand(n, 4)  # a calibrated analysis variance above the background's
    d_a, d_b = joint_draws(big, sb2.expand(n, 4), g)
    assert d_a.var(0) / big[0] == pytest.approx(torch.ones(4), rel=0.03)
    d_a, d_b = joint_draws(sa2[:, :1], torch.full((n, 1), math.inf), g)
    assert (d_b == 0).all() and d_a.var().item() == pytest.approx(sa2[0, 0].item(), rel=0.03)
