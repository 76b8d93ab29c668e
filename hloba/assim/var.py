"""Latent variational analysis (the ``l3dvar`` baseline of the comparison).

``J(z) = 1/2 (z - z_b)^T B^-1 (z - z_b) + 1/2 (y - H(D(z)))^T R^-1 (y - H(D(z)))`` with a diagonal
``B`` (``sigma_b2``) and diagonal ``R`` (``r2``), minimised by L-BFGS through the decoder and the
observation operator, from ``z_b``, to a relative gradient tolerance.
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


def latent_3dvar(z_b: torch.Tensor, sigma_b2: torch.Tensor, observe, y: torch.Tensor, r2: torch.Tensor,
                 tol: float = 1e-6, max_iter: int = 200, history: int = 20) -> VarResult:
    """Minimise the latent 3D-Var cost; ``observe(z) -> H(D(z))`` at the observations ``(n_obs,)``.

    ``z_b, sigma_b2: (1, n)``; ``y, r2: (n_obs,)``. Convergence: the gradient's max norm falls
    below ``tol`` times its initial value (or ``max_iter`` function evaluations).
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
    return VarResult(z.detach(), count["n"], float(j0), float(j1), g1)
