"""Pieces of the cycle: update coordinates, ensemble variance, online inflation, O-B variances."""

import pytest
import torch

from hloba.assim.cycle import (
    UpdateSpace,
    ensemble_variance,
    latent_variances,
    inflation_estimate,
    mode_groups,
    observation_background_variance,
    smooth_inflation,
)
from hloba.assim.update import hybrid_update


def _rotation(n, seed=0):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_rotation_round_trip_and_variance_mapping():
    v = _rotation(6)
    space = UpdateSpace(v)
    z = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(space.backward(space.forward(z)), z)
    # the diagonal of V^T diag(s) V
    s = torch.rand(1, 6, dtype=torch.float64) + 0.1
    expected = torch.diagonal(v.T @ torch.diag(s[0]) @ v)
    torch.testing.assert_close(space.forward_variance(s)[0], expected)
    ident = UpdateSpace(None)
    assert ident.forward(z) is z and ident.backward_variance(s) is s


def test_latent_variances_map_every_cycle_at_once():
    """The stream's end-of-stream mapping equals the per-cycle one, chunk by chunk; a cold start's
    row (non-finite) stays uninformative; without a rotation the variances are copied."""
    space = UpdateSpace(_rotation(6, 2))
    update = torch.rand(7, 6, dtype=torch.float64) + 0.1
    update[0, 2] = float("inf")
    mapped = latent_variances(space, update, chunk=3)
    assert torch.isinf(mapped[0]).all()
    for k in range(1, 7):
        torch.testing.assert_close(mapped[k], space.backward_variance(update[k:k + 1])[0])
    # the products that read a transposed copy give the plain ones
    z = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(space.forward(z), z @ space.rotation)
    torch.testing.assert_close(space.forward_variance(update[1:]), update[1:] @ space.rotation.square())
    ident = latent_variances(UpdateSpace(None), update)
    assert torch.equal(ident, update) and ident is not update


def test_rotated_update_is_the_full_covariance_update_for_a_static_b():
    """With B = V diag(l) V^T and observations of w = V^T z with diagonal R there, the element-wise
    update in w equals the full-matrix Kalman update in z."""
    n = 5
    v = _rotation(n, 1)
    lam = torch.linspace(0.5, 3.0, n, dtype=torch.float64)
    B = v @ torch.diag(lam) @ v.T
    r = torch.full((n,), 0.7, dtype=torch.float64)  # R = 0.7 I is diagonal in any orthogonal basis
    z_b, z_o = torch.randn(1, n, dtype=torch.float64), torch.randn(1, n, dtype=torch.float64)
    space = UpdateSpace(v)
    w_a, _ = hybrid_update(space.forward(z_b), lam[None], space.forward(z_o), r[None])
    K = B @ torch.linalg.inv(B + torch.diag(r))
    full = z_b[0] + K @ (z_o[0] - z_b[0])
    torch.testing.assert_close(space.backward(w_a)[0], full)


def test_ensemble_variance_is_unbiased():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    torch.testing.assert_close(ensemble_variance(x), torch.tensor([[2.0, 0.0]]))


def test_inflation_recovers_known_scales_per_group():
    g = torch.Generator().manual_seed(3)
    n = 200000
    groups = mode_groups(n, 4)
    assert groups[0] == 0 and groups[-1] == 3 and torch.bincount(groups).tolist() == [n // 4] * 4
    lam = torch.tensor([0.8, 2.5, 10.0, 300.0], dtype=torch.float64)[groups]
    sb2 = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    so2 = torch.rand(n, generator=g, dtype=torch.float64) + 0.2
    d = torch.randn(n, generator=g, dtype=torch.float64) * torch.sqrt(lam * sb2 + so2)
    est = inflation_estimate(d, sb2, so2, groups, 4)
    torch.testing.assert_close(est, torch.tensor([0.8, 2.5, 10.0, 300.0], dtype=torch.float64), rtol=0.03, atol=0.03)
    pooled = inflation_estimate(d, sb2, so2)
    assert pooled.shape == (1,)
    unobserved = torch.full_like(so2, float("inf"))
    assert torch.isnan(inflation_estimate(d, sb2, unobserved, groups, 4)).all()
    # smoothing moves part of the way, respects the bounds, and skips groups without an estimate
    prev = torch.ones(4, dtype=torch.float64)
    new = smooth_inflation(prev, torch.tensor([2.0, 1e9, float("nan"), 0.0], dtype=torch.float64), 0.1, 0.5, 100.0)
    torch.testing.assert_close(new, torch.tensor([1.1, 10.9, 1.0, 0.95], dtype=torch.float64))


def test_observation_background_variance_converges_per_channel():
    g = torch.Generator().manual_seed(4)
    b2_true = torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
    b2 = torch.ones(3, dtype=torch.float64)
    for _ in range(400):
        ch = torch.randint(0, 2, (500,), generator=g)  # channel 2 is never observed
        r2 = torch.full((500,), 0.25, dtype=torch.float64)
        innov = torch.randn(500, generator=g, dtype=torch.float64) * torch.sqrt(b2_true[ch] + r2)
        b2 = observation_background_variance(b2, ch, innov, r2, 0.05, torch.full((3,), 0.01, dtype=torch.float64))
    assert abs(b2[0] - 4.0) < 0.2 and abs(b2[1] - 1.0) < 0.06
    assert b2[2] == 1.0


def test_local_rotation_applied_block_by_block_equals_the_dense_products():
    """A rotation zero outside blocks of latent elements (of unequal sizes, columns in any order)
    gives, block by block, the dense products of all four maps; one that mixes two blocks is refused."""
    blocks = torch.tensor([0, 1, 0, 1, 1, 0, 2, 1])  # blocks of 3, 4 and 1 elements
    v = torch.zeros(8, 8, dtype=torch.float64)
    modes = [[4, 0, 2], [1, 5, 3, 7], [6]]  # the modes of each block, interleaved
    for b in range(3):
        rows = torch.nonzero(blocks == b).flatten()
        v[rows[:, None], torch.tensor(modes[b])[None, :]] = _rotation(len(modes[b]), b)
    local, dense = UpdateSpace(v, blocks), UpdateSpace(v)
    z = torch.randn(4, 8, dtype=torch.float64)
    s = torch.rand(2, 8, dtype=torch.float64) + 0.1
    torch.testing.assert_close(local.forward(z), z @ v)
    torch.testing.assert_close(local.backward(z), z @ v.T)
    torch.testing.assert_close(local.forward_variance(s), dense.forward_variance(s))
    torch.testing.assert_close(local.backward_variance(s), dense.backward_variance(s))
    torch.testing.assert_close(latent_variances(local, s, chunk=1), latent_variances(dense, s, chunk=1))
    assert local.to("cpu").local is not None
    # O2Lnet's refinement learns through the rotation: the same gradients
    grads = []
    for space in (local, dense):
        x = z.clone().requires_grad_(True)
        space.backward(space.forward(x) * torch.arange(8.0, dtype=torch.float64)).square().sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])
    mixed = v.clone()
    mixed[0, 1] = 0.1  # element 0 (block 0) in a mode of block 1
    with pytest.raises(ValueError, match="not block-diagonal"):
        UpdateSpace(mixed, blocks)
