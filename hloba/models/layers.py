"""Building blocks shared by the autoencoder and O2Lnet: padding that respects the domain."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def pad_domain(x: torch.Tensor, pad_lat: tuple[int, int], pad_lon: tuple[int, int], periodic_lat: bool, periodic_lon: bool) -> torch.Tensor:
    """Pad ``x: (batch, channel, ny, nx)``: circular along periodic axes, replicate otherwise.

    Both axes in one copy when they pad alike (every layer of a global or a regional grid): the
    same values as padding one axis after the other, in about 0.6 times the time."""
    if any(pad_lon) and any(pad_lat) and periodic_lat == periodic_lon:
        return F.pad(x, (*pad_lon, *pad_lat), mode="circular" if periodic_lon else "replicate")
    if any(pad_lon):
        x = F.pad(x, (pad_lon[0], pad_lon[1], 0, 0), mode="circular" if periodic_lon else "replicate")
    if any(pad_lat):
        x = F.pad(x, (0, 0, pad_lat[0], pad_lat[1]), mode="circular" if periodic_lat else "replicate")
    return x


def inference_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` for passes without gradients: its weights in ``dtype`` and channels-last
    layout (the AMX kernels' own), made once; the module itself is left alone."""
    return copy.deepcopy(module).to(dtype).to(memory_format=torch.channels_last).requires_grad_(False)


def inference_input(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as an :func:`inference_copy` of that ``dtype`` reads it: ``dtype``, channels-last."""
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


class DomainConv(nn.Module):
    """3x3 (or k x k) convolution whose padding follows the domain's periodicity."""

    def __init__(self, cin: int, cout: int, periodic_lat: bool, periodic_lon: bool, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=0)
        self.periodic = (periodic_lat, periodic_lon)
        self.pad = (kernel // 2, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad_domain(x, self.pad, self.pad, *self.periodic))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, periodic_lat: bool, periodic_lon: bool) -> None:
        super().__init__()
        self.conv1 = DomainConv(channels, channels, periodic_lat, periodic_lon)
        self.conv2 = DomainConv(channels, channels, periodic_lat, periodic_lon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class PatchTranspose(nn.ConvTranspose2d):
    """A transposed convolution of kernel ``m * stride`` (no padding): the same parameters, module
    and outputs as :class:`torch.nn.ConvTranspose2d`, computed as an ordinary ``m x m`` convolution
    with ``stride**2`` output phases followed by a pixel shuffle.

    Output pixel ``s q + r`` sums ``x[q - a] w[r + s a]`` over ``a < m``: phase ``r`` is an ordinary
    convolution of the input (padded by ``m - 1`` zeros) with the kernel taps ``r, r + s, ...``
    reversed. On CPU torch has no fast path for transposed convolutions: the autoencoder's decoder
    head took 2.2 ms for one sample this way against 0.27 ms (``benchmarks/analysis_kernels.py``)."""

    def __init__(self, cin: int, cout: int, stride: int, multiple: int = 2) -> None:
        super().__init__(cin, cout, multiple * stride, stride=stride)
        self.multiple = multiple
        self._cached: tuple | None = None  # (key, kernel, bias) for inference

    def phase_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ordinary convolution's ``(cout * stride**2, cin, m, m)`` kernel and its bias; without
        gradients, formed once per version of the parameters (a stream decodes every cycle)."""
        if torch.is_grad_enabled():
            return self._phase_weight()
        params = (self.weight, self.bias)
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params if p is not None)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, *self._phase_weight())
        return self._cached[1:]

    def _phase_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        s, m = self.stride[0], self.multiple
        cin, cout = self.weight.shape[:2]
        w = self.weight.view(cin, cout, m, s, m, s).flip(2, 4)  # (c, o, a_y, r_y, a_x, r_x), a reversed
        w = w.permute(1, 3, 5, 0, 2, 4).reshape(cout * s * s, cin, m, m)
        return w, None if self.bias is None else self.bias.repeat_interleave(s * s)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("PatchTranspose has one output size: (n - 1) * stride + kernel")
        w, b = self.phase_weight()
        m = self.multiple
        return F.pixel_shuffle(F.conv2d(F.pad(x, (m - 1,) * 4), w, b), self.stride[0])


def padded_size(n: int, factor: int) -> int:
    return -(-n // factor) * factor
