"""The HLOBA analysis step as pure functions, in the paper's notation (DESIGN section 2).

Glossary (all element-wise over the latent vector, shapes ``(batch, n_latent)``):

=============  ==================================================================
``z_b``        background latent state, ``E(x_b)``
``s2``         lagged-ensemble variance ``var_k E(x_k)``
``sigma_clim2`` static (climatological) background error variance
``a, b``       hybrid weights (non-negative, fitted by NNLS on the calibration years)
``sigma_b2``   hybrid background error variance ``a sigma_clim2 + b s2``
``z_o``        observation-derived latent state, from O2Lnet
``sigma_o2``   its error variance (O2Lnet's NLL head)
``k``          gain ``sigma_b2 / (sigma_b2 + sigma_o2)``
``z_a``        analysis ``z_b + k (z_o - z_b)``
``sigma_a2``   analysis error variance ``(1 - k) sigma_b2``
=============  ==================================================================

The update is the closed form of latent 3D-Var with an identity observation operator and
diagonal covariances: a scalar Kalman filter per latent element.

O2Lnet is trained against the encoded truth from observations alone, so ``(z_o, sigma_o2)`` is a
posterior under its training climate (mean ``mu_c``, variance ``sc2``). Blending it with the
background counts that prior twice (``assimilation.update: posterior``, the paper's form). With
``update: likelihood`` the prior is removed first (:func:`likelihood_estimate`): per element the
likelihood's precision is ``lam = 1/sigma_o2 - 1/sc2`` and its mean
``z_l = (z_o/sigma_o2 - mu_c/sc2) / lam``, then the same update runs on ``(z_l, 1/lam)``.
"""

from __future__ import annotations

import torch

from hloba.assim.catalog import UPDATE_FORMS
from hloba.bands import band_parts


def hybrid_variance(sigma_clim2: torch.Tensor, s2: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``sigma_b2 = a sigma_clim2 + b s2`` (``a, b >= 0``)."""
    if a < 0 or b < 0:
        raise ValueError(f"hybrid weights must be non-negative, got a={a}, b={b}")
    return a * sigma_clim2 + b * s2


def hybrid_update(
    z_b: torch.Tensor, sigma_b2: torch.Tensor, z_o: torch.Tensor, sigma_o2: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise Bayesian update: returns ``(z_a, sigma_a2)``.

    Infinite variances are allowed: ``sigma_o2 = inf`` returns the background, ``sigma_b2 = inf``
    returns ``z_o`` with variance ``sigma_o2``; where both are infinite (nothing known) the
    background is kept with infinite variance.
    """
    inf_b, inf_o = torch.isinf(sigma_b2), torch.isinf(sigma_o2)
    denom = sigma_b2 + sigma_o2
    k = torch.where(inf_o, torch.zeros_like(denom), torch.where(inf_b, torch.ones_like(denom), sigma_b2 / denom))
    z_a = z_b + k * (torch.where(inf_o, z_b, z_o) - z_b)
    sigma_a2 = torch.where(inf_o, sigma_b2, torch.where(inf_b, sigma_o2, (1.0 - k) * sigma_b2))
    return z_a, sigma_a2


def likelihood_estimate(
    z_o: torch.Tensor, sigma_o2: torch.Tensor, prior_mean: torch.Tensor, prior_var: torch.Tensor,
    min_information: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """O2Lnet's posterior ``(z_o, sigma_o2)`` with its climatological prior ``N(prior_mean, prior_var)``
    removed: returns the likelihood ``(z_l, sigma_l2)``, element-wise.

    ``lam = 1/sigma_o2 - 1/prior_var``; where ``lam * prior_var < min_information`` (the observations
    shrink the prior variance by less than that fraction, or not at all) the element is
    uninformative: ``z_l = prior_mean``, ``sigma_l2 = inf``, so the update leaves the background
    alone there. Infinite ``sigma_o2`` (no observations) is uninformative too.
    """
    dtype = z_o.dtype
    so2 = sigma_o2.double()
    pv = prior_var.double().expand_as(so2)
    lam = 1.0 / so2 - 1.0 / pv
    informative = torch.isfinite(so2) & (lam * pv >= min_information)
    lam_safe = torch.where(informative, lam, torch.ones_like(lam))
    mean = prior_mean.double().expand_as(so2)
    z_l = torch.where(informative, (z_o.double() / so2 - mean / pv) / lam_safe, mean)
    sigma_l2 = torch.where(informative, 1.0 / lam_safe, torch.full_like(lam, float("inf")))
    return z_l.to(dtype), sigma_l2.to(dtype)


def observation_estimate(
    form: str, w_o: torch.Tensor, sigma_o2: torch.Tensor, prior_mean: torch.Tensor | None,
    prior_var: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The observation estimate the update weighs, by ``assimilation.update``: O2Lnet's posterior
    ``(w_o, sigma_o2)`` as it is, or its likelihood (:func:`likelihood_estimate`)."""
    check_update_inputs(form, prior_mean, prior_var)
    if form == "likelihood":
        return likelihood_estimate(w_o, sigma_o2, prior_mean, prior_var)
    return w_o, sigma_o2


def check_update_inputs(form: str, prior_mean: torch.Tensor | None, prior_var: torch.Tensor | None) -> None:
    """``ValueError`` naming what is missing when ``form`` cannot run on these inputs."""
    if form not in UPDATE_FORMS:
        raise ValueError(f"assimilation.update {form!r} is not one of {UPDATE_FORMS}")
    if form == "likelihood" and (prior_mean is None or prior_var is None):
        raise ValueError("assimilation.update: likelihood needs O2Lnet's prior (prior_mean, prior_var) in the "
                         "calibration file, which files written before it was stored lack: rerun rule "
                         "generate_lagged_ensemble")


def first_guess_check(
    y: torch.Tensor, hx_b: torch.Tensor, r2: torch.Tensor, b2_obs: torch.Tensor, kappa: float,
) -> torch.Tensor:
    """Quality control in observation space: ``True`` where ``|y - H(x_b)| > kappa sqrt(r2 + b2)``.

    ``y, hx_b, r2, b2_obs: (n_obs,)``: observations, background at the observations, observation
    error variance and background error variance at the observations.
    """
    return (y - hx_b).abs() > kappa * torch.sqrt(r2 + b2_obs)


def correlated_update(
    z_b: torch.Tensor, sigma_b2: torch.Tensor, z_o: torch.Tensor, sigma_o2: torch.Tensor, rho: torch.Tensor,
    optimal_gain: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise best linear unbiased update when background and observation-estimate errors
    correlate with coefficient ``rho`` (element-wise or broadcast).

    With ``c = rho sqrt(sigma_b2 sigma_o2)``: ``k = (sigma_b2 - c) / (sigma_b2 + sigma_o2 - 2 c)``
    clipped to ``[0, 1]``, and the analysis error variance of that gain,
    ``(1 - k)^2 sigma_b2 + k^2 sigma_o2 + 2 k (1 - k) c``. With ``optimal_gain=False`` the gain is
    the independent-error one, ``sigma_b2 / (sigma_b2 + sigma_o2)``, and only the variance accounts
    for the correlation. ``rho = 0`` is :func:`hybrid_update`; infinite variances behave as there.
    """
    rho = torch.as_tensor(rho, dtype=sigma_b2.dtype, device=sigma_b2.device)
    finite = torch.isfinite(sigma_b2) & torch.isfinite(sigma_o2)
    sb2 = torch.where(finite, sigma_b2, torch.ones_like(sigma_b2))
    so2 = torch.where(finite, sigma_o2, torch.ones_like(sigma_o2))
    c = rho * torch.sqrt(sb2 * so2)
    if optimal_gain:
        k = ((sb2 - c) / (sb2 + so2 - 2 * c).clamp(min=1e-30)).clamp(0.0, 1.0)
    else:
        k = sb2 / (sb2 + so2)
    z_a = z_b + k * (z_o - z_b)
    sa2 = (1 - k).square() * sb2 + k.square() * so2 + 2 * k * (1 - k) * c
    z_lim, sa2_lim = hybrid_update(z_b, sigma_b2, z_o, sigma_o2)
    return torch.where(finite, z_a, z_lim), torch.where(finite, sa2, sa2_lim)


def time_extrapolation(x_b: torch.Tensor, x_prev: torch.Tensor | None, j: int) -> torch.Tensor:
    """``x_b + j (x_b - x_prev)``: the background carried ``j`` cycles on along its change since
    ``x_prev``, the state it was forecast from one cycle before (the previous analysis); the
    background itself (persistence) where there is none."""
    return x_b if x_prev is None or j == 0 else x_b + j * (x_b - x_prev)


def fit_increment_weights(increment: torch.Tensor, error: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Per channel, the weight ``g`` of the decoded increment that minimises the area-weighted mean
    square of ``error - g * increment`` (``error`` the truth minus the decoded background, or minus
    the background itself for :func:`hloba.latent.incremental_state`), clipped
    to ``[0, 1]``: ``g = <increment, error> / <increment, increment>``. ``increment, error:
    (time, C, ny, nx)``, ``area: (ny,)``; returns ``(C,)`` float64 (1 where the increment is 0)."""
    w = torch.as_tensor(area, dtype=torch.float64)[None, None, :, None]
    inc, err = increment.double(), error.double()
    num, den = (inc * err * w).sum(dim=(0, 2, 3)), (inc.square() * w).sum(dim=(0, 2, 3))
    g = torch.where(den > 0, num / den.clamp(min=1e-300), torch.ones_like(num))
    return g.clamp(0.0, 1.0)


def fit_blend_weights(projection: torch.Tensor, increment: torch.Tensor, error: torch.Tensor,
                      area: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, the weights ``(h, g)`` in ``[0, 1]`` that minimise the area-weighted mean square
    of ``error - h * projection - g * increment``, with ``projection = D(z_b) - x_b`` (what the
    autoencoder changes in the background), ``increment = D(z_a) - D(z_b)`` and ``error`` the truth
    minus the background ``x_b`` (:func:`hloba.latent.kept_background`). The joint least-squares
    solution where it lies in the square; else the best on its edges (each edge a one-weight fit).
    All ``(time, C, ny, nx)``, ``area: (ny,)``; returns two ``(C,)`` float64."""
    w = torch.as_tensor(area, dtype=torch.float64)[None, None, :, None]
    p, q, y = projection.double(), increment.double(), error.double()

    def dot(a, b):
        return (a * b * w).sum(dim=(0, 2, 3))

    pp, pq, qq, py, qy, yy = dot(p, p), dot(p, q), dot(q, q), dot(p, y), dot(q, y), dot(y, y)

    def loss(h, g):  # the mean square of the residual, up to the factor of the weights' sum
        return yy - 2 * h * py - 2 * g * qy + h * h * pp + 2 * h * g * pq + g * g * qq

    det = pp * qq - pq * pq
    ok = det > 1e-12 * (pp * qq).clamp(min=1e-300)
    h = torch.where(ok, (py * qq - qy * pq) / det.clamp(min=1e-300), torch.ones_like(pp))
    g = torch.where(ok, (pp * qy - pq * py) / det.clamp(min=1e-300), torch.ones_like(pp))
    inside = ok & (h >= 0) & (h <= 1) & (g >= 0) & (g <= 1)
    best_h, best_g = torch.where(inside, h, 1.0), torch.where(inside, g, 1.0)
    best = torch.where(inside, loss(h, g), torch.full_like(pp, float("inf")))
    for fixed in (0.0, 1.0):  # the square's four edges: one weight fixed, the other fitted and clipped
        g_e = ((qy - fixed * pq) / qq.clamp(min=1e-300)).clamp(0.0, 1.0)
        h_e = ((py - fixed * pq) / pp.clamp(min=1e-300)).clamp(0.0, 1.0)
        for hh, gg in ((torch.full_like(pp, fixed), g_e), (h_e, torch.full_like(pp, fixed))):
            cand = loss(hh, gg)
            better = ~inside & (cand < best)
            best_h, best_g, best = torch.where(better, hh, best_h), torch.where(better, gg, best_g), torch.where(
                better, cand, best)
    return best_h, best_g


def fit_by_band(fit, fields, area: torch.Tensor, n_bands: int = 1):
    """``fit(*fields, area)`` (:func:`fit_increment_weights`, :func:`fit_blend_weights`) in each of
    ``n_bands`` octave bands of the ``(time, C, ny, nx)`` fields (:func:`hloba.bands.band_parts`):
    its weights ``(C,)`` become ``(C, n_bands)``, a weight per channel and band (one band: the plain
    fit, ``(C,)``)."""
    if n_bands == 1:
        return fit(*fields, area)
    parts = [band_parts(f.double(), n_bands) for f in fields]
    fits = [fit(*(p[b] for p in parts), area) for b in range(n_bands)]
    if isinstance(fits[0], tuple):
        return tuple(torch.stack(each, dim=-1) for each in zip(*fits))
    return torch.stack(fits, dim=-1)
