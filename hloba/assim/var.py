"""Latent variational analysis (the ``l3dvar`` and ``l4dvar`` baselines of the comparison).

``J(z) = 1/2 (z - z_b)^T B^-1 (z - z_b) + 1/2 (y - G(z))^T R^-1 (y - G(z))`` with a diagonal
``B`` (``sigma_b2``) and diagonal ``R`` (``r2``), minimised by L-BFGS from ``z_b`` to a relative
gradient tolerance. ``G`` is the whole map from the latent state to the observations:

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


def latent_var(z_b: torch.Tensor, sigma_b2: torch.Tensor, observe, y: torch.Tensor, r2: torch.Tensor,
                 tol: float = 1e-6, max_iter: int = 200, history: int = 20) -> VarResult:
    """Minimise the latent variational cost; ``observe(z) -> G(z)`` at the observations ``(n_obs,)``.

    ``z_b, sigma_b2: (1, n)``; ``y, r2: (n_obs,)``. Convergence: the gradient's max norm falls
    below ``tol`` times its initial value, or after ``max_iter`` L-BFGS iterations (torch's default
    of at most ``1.25 max_iter`` cost evaluations; ``iterations`` counts the evaluations).
    """
    z = z_b.detach().clone().requires_grad_(True)
    inv_b = 1.0 / sigma_b2.detach()
    inv_r = 1.0 / r2.detach()

    def cost(zz):
        d = y - observe(zz)
        return 0.5 * ((zz - z_b) ** 2 * inv_b).sum() + 0.5 * (d ** 2 * inv_r).sum()

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
