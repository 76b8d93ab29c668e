"""PatchTranspose computes nn.ConvTranspose2d's outputs and gradients with the same parameters."""

import pytest
import torch
from torch import nn

from hloba.models.layers import PatchTranspose


@pytest.mark.parametrize("cin, cout, stride, multiple, size", [
    (16, 3, 4, 2, (6, 7)), (5, 8, 2, 3, (4, 4)), (7, 2, 3, 1, (5, 3)), (4, 4, 1, 3, (6, 5)),
])
def test_matches_conv_transpose(cin, cout, stride, multiple, size):
    torch.manual_seed(0)
    fast = PatchTranspose(cin, cout, stride, multiple).double()
    reference = nn.ConvTranspose2d(cin, cout, multiple * stride, stride=stride).double()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(2, cin, *size, dtype=torch.float64, requires_grad=True)
    out, ref = fast(x), reference(x)
    assert out.shape == ref.shape == (2, cout, (size[0] - 1) * stride + multiple * stride,
                                      (size[1] - 1) * stride + multiple * stride)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (x, fast.weight, fast.bias), g)
    ref_grads = torch.autograd.grad(ref, (x, reference.weight, reference.bias), g)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_same_parameters_as_conv_transpose():
    """A checkpoint written with nn.ConvTranspose2d's head loads unchanged, and the seed gives the
    same initial weights."""
    torch.manual_seed(3)
    fast = PatchTranspose(8, 2, 4)
    torch.manual_seed(3)
    reference = nn.ConvTranspose2d(8, 2, 8, stride=4)
    assert fast.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(fast.state_dict()[k], reference.state_dict()[k]) for k in fast.state_dict())
    with pytest.raises(ValueError, match="one output size"):
        fast(torch.zeros(1, 8, 3, 3), output_size=(20, 20))


def test_inference_kernel_follows_the_parameters():
    """Without gradients the rearranged kernel is formed once, and again after the weights change
    (an optimiser step, a load, a move to another dtype)."""
    torch.manual_seed(1)
    fast = PatchTranspose(6, 2, 2)
    reference = nn.ConvTranspose2d(6, 2, 4, stride=2)
    x = torch.randn(1, 6, 5, 5)
    with torch.no_grad():
        for step in range(3):
            reference.load_state_dict(fast.state_dict())
            assert torch.allclose(fast(x), reference(x), atol=1e-5)
            first = fast._cached[1]
            fast(x)
            assert fast._cached[1] is first  # formed once per version
            fast.weight.add_(0.1 * step + 0.1)
        fast.double()
        reference.load_state_dict(fast.state_dict())
        assert torch.allclose(fast(x.double()), reference.double()(x.double()), atol=1e-12)


@pytest.mark.parametrize("periodic", [(True, True), (False, False), (True, False), (False, True)])
def test_pad_domain_in_one_copy_equals_one_axis_after_the_other(periodic):
    """Padding both axes at once (they pad alike) gives the values of padding longitude, then
    latitude: circular where an axis wraps, replicate where it does not."""
    import torch.nn.functional as F

    from hloba.models.layers import pad_domain

    x = torch.randn(2, 3, 5, 7)
    lat, lon = (2, 1), (1, 3)
    mode = lambda p: "circular" if p else "replicate"  # noqa: E731
    expected = F.pad(F.pad(x, (*lon, 0, 0), mode=mode(periodic[1])), (0, 0, *lat), mode=mode(periodic[0]))
    assert torch.equal(pad_domain(x, lat, lon, *periodic), expected)
    assert torch.equal(pad_domain(x, (0, 0), lon, *periodic), F.pad(x, (*lon, 0, 0), mode=mode(periodic[1])))
