"""Latent variational analysis (the ``l3dvar`` and ``l4dvar`` baselines of the comparison).

``J(z) = 1/2 (z - z_b)^T B^-1 (z - z_b) + 1/2 (y - G(z))^T R^-1 (y - G(z))`` with a diagonal
``B`` (``sigma_b2``) and diagonal ``R`` (``r2``), minimised by L-BFGS from ``z_b`` to a relative
gradient tolerance. With ``assimilation.var_b_length`` > 0, ``B = S C S`` (``S = sqrt(sigma_b2)``)
with a Gaussian correlation ``C`` of that length (in latent grid cells) along the latent grid's two
axes, each latent channel on its own, and the cost is minimised in the control variable ``v`` of
``z = z_b + S G v`` (``C = G G^T``): ``J(v) = 1/2 v^T v + 1/2 (y - G(z))^T R^-1 (y - G(z))``.
``G`` is the whole map from the latent state to the observations:

- 3D-Var: ``G(z) = H(D(z))`` (decoder, then the observation operator);
- strong-constraint 4D-Var over a window of cycles ``0..W-1``: ``G(z)`` concatenates
  ``H_j(M^j(D(z)))``, the observations of cycle ``j`` against the forecast of the decoded state
  (:func:`window_observer`), differentiated through the forecast model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class VarResult:
    z_a: torch.Tensor
    iterations: int
    cost_initial: float
    cost_final: float
    gradient_norm: float


def gaussian_correlation_root(n: int, length: float, periodic: bool) -> torch.Tensor:
    """``(n, n)`` ``G`` with ``G G^T`` the Gaussian correlation of ``length`` (its standard
    deviation, in cells) along an axis of ``n`` cells: row ``i`` a Gaussian of standard deviation
    ``length / sqrt(2)`` around cell ``i``, scaled to unit norm (so ``C`` has a unit diagonal);
    distances wrap around on a ``periodic`` axis."""
    i = torch.arange(n, dtype=torch.float64)
    d = (i[:, None] - i[None, :]).abs()
    if periodic:
        d = torch.minimum(d, n - d)
    g = torch.exp(-(d ** 2) / length ** 2)  # exp(-d^2 / (2 s^2)) with s = length / sqrt(2)
    return g / g.norm(dim=1, keepdim=True)


def correlated_b_root(sigma_b2: torch.Tensor, latent_shape: tuple[int, int, int], length: float,
                      periodic: tuple[bool, bool] = (False, False)):
    """``v -> S G v``: the square root of ``B = S C S`` on the flat latent ``(1, c*h*w)``, with
    ``S = sqrt(sigma_b2)`` and ``C`` Gaussian of ``length`` cells along the latent grid's
    ``(latitude, longitude)`` axes (``periodic`` each), each latent channel on its own."""
    c, h, w = latent_shape
    gy = gaussian_correlation_root(h, length, periodic[0]).to(sigma_b2)
    gx = gaussian_correlation_root(w, length, periodic[1]).to(sigma_b2)
    sd = sigma_b2.sqrt()

    def b_root(v: torch.Tensor) -> torch.Tensor:
        return sd * (gy @ v.view(c, h, w) @ gx.T).reshape(1, -1)

    return b_root


def latent_var(z_b: torch.Tensor, sigma_b2: torch.Tensor, observe, y: torch.Tensor, r2: torch.Tensor,
                 tol: float = 1e-6, max_iter: int = 200, history: int = 20, b_root=None) -> VarResult:
    """Minimise the latent variational cost; ``observe(z) -> G(z)`` at the observations ``(n_obs,)``.

    ``z_b, sigma_b2: (1, n)``; ``y, r2: (n_obs,)``. Convergence: the gradient's max norm falls
    below ``tol`` times its initial value, or after ``max_iter`` L-BFGS iterations (torch's default
    of at most ``1.25 max_iter`` cost evaluations; ``iterations`` counts the evaluations).
    ``b_root`` (:func:`correlated_b_root`): a correlated ``B``, minimised in its control variable.
    """
    inv_r = 1.0 / r2.detach()
    if b_root is not None:
        def cost(vv):
            d = y - observe(z_b + b_root(vv))
            return 0.5 * (vv ** 2).sum() + 0.5 * (d ** 2 * inv_r).sum()

        result = _minimise(cost, torch.zeros_like(z_b), tol, max_iter, history)
        result.z_a = (z_b + b_root(result.z_a)).detach()
        return result
    inv_b = 1.0 / sigma_b2.detach()

    def cost(zz):
        d = y - observe(zz)
        return 0.5 * ((zz - z_b) ** 2 * inv_b).sum() + 0.5 * (d ** 2 * inv_r).sum()

    return _minimise(cost, z_b, tol, max_iter, history)


def _minimise(cost, start: torch.Tensor, tol: float, max_iter: int, history: int) -> VarResult:
    """L-BFGS on ``cost`` from ``start``; the result's ``z_a`` is the minimiser of ``cost``'s argument."""
    z = start.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        j0 = cost(z)
        g0 = torch.autograd.grad(j0, z)[0].abs().max().item()
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=max_iter, history_size=history,
                                tolerance_grad=max(tol * g0, 1e-12), tolerance_change=1e-14,
                                line_search_fn="strong_wolfe")
        count = {"n": 0}

        def closure():
            opt.zero_grad()
            j = cost(z)
            j.backward()
            count["n"] += 1
            return j

        opt.step(closure)
        j1 = cost(z)
        g1 = torch.autograd.grad(j1, z)[0].abs().max().item()
    return VarResult(z.detach(), count["n"], j0.item(), j1.item(), g1)


def window_observer(decode, forecast, operators, times):
    """``G(z)`` of strong-constraint 4D-Var over a window: ``concat_j H_j(M^j(D(z)))``.

    ``decode(z) -> x`` (physical state at ``times[0]``); ``forecast(x, t) -> x`` one cycle ahead;
    ``operators[j](x) -> (n_j,)`` the used observations of cycle ``j`` (``None`` or empty: none).
    The forecast runs only as far as the last cycle with observations.
    """
    last = max((j for j, op in enumerate(operators) if op is not None), default=-1)

    def observe(z):
        x = decode(z)
        parts = []
        for j in range(last + 1):
            if j:
                x = forecast(x, times[j - 1])
            if operators[j] is not None:
                parts.append(operators[j](x))
        return torch.cat(parts) if parts else z.new_zeros(0)

    return observe
