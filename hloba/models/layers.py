"""Building blocks shared by the autoencoder and O2Lnet: padding that respects the domain."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_domain(x: torch.Tensor, pad_lat: tuple[int, int], pad_lon: tuple[int, int], periodic_lat: bool, periodic_lon: bool) -> torch.Tensor:
    """Pad ``x: (batch, channel, ny, nx)``: circular along periodic axes, replicate otherwise."""
    if any(pad_lon):
        x = F.pad(x, (pad_lon[0], pad_lon[1], 0, 0), mode="circular" if periodic_lon else "replicate")
    if any(pad_lat):
        x = F.pad(x, (0, 0, pad_lat[0], pad_lat[1]), mode="circular" if periodic_lat else "replicate")
    return x


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


def padded_size(n: int, factor: int) -> int:
    return -(-n // factor) * factor
