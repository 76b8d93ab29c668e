"""Convolutional autoencoder: standardised anomalies ``x: (batch, C, ny, nx)`` <-> latent ``z``.

Encoder: 3x3 conv, then ``depth = len(widths) - 1`` stride-2 downsamplings, residual blocks at the
coarsest level (where most of the work is cheap), then a 1x1 conv to ``latent_channels``; the latent is ``(batch, latent_channels, ceil(ny / 2**depth), ceil(nx / 2**depth))``
and flattens to ``n_latent`` elements (the vector z of DESIGN section 2). The decoder mirrors it
with nearest-neighbour upsampling. Padding is circular along periodic axes and replicate
elsewhere; grids whose size is not a multiple of ``2**depth`` (odd sizes included) are padded
in the same way before encoding and cropped after decoding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hloba.models.layers import DomainConv, ResidualBlock, pad_domain, padded_size


@dataclass(frozen=True)
class AutoencoderConfig:
    channels: int
    ny: int
    nx: int
    latent_channels: int = 8
    widths: tuple[int, ...] = (16, 48, 128)  # channels at full resolution, after 1, ..., depth downsamplings
    blocks: int = 2  # residual blocks at the coarsest resolution
    periodic_lat: bool = False
    periodic_lon: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not 1 <= len(self.widths) <= 7:
            raise ValueError(f"autoencoder widths={self.widths}: give 1 to 7 widths (one per resolution level)")
        if min(self.ny, self.nx) < 2**self.depth:
            raise ValueError(
                f"grid {self.ny} x {self.nx} is too small for autoencoder depth {self.depth}: "
                f"each side needs at least {2**self.depth} points (reduce autoencoder.depth)"
            )

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        f = 2**self.depth
        return (self.latent_channels, padded_size(self.ny, f) // f, padded_size(self.nx, f) // f)

    @property
    def n_latent(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    @property
    def compression(self) -> float:
        return self.channels * self.ny * self.nx / self.n_latent

    def to_dict(self) -> dict:
        return asdict(self)


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig, in_channels: int | None = None, extra_blocks: int = 0) -> None:
        super().__init__()
        p = (cfg.periodic_lat, cfg.periodic_lon)
        self.cfg = cfg
        w = cfg.widths
        layers: list[nn.Module] = [DomainConv(in_channels or cfg.channels, w[0], *p), nn.GELU()]
        for level in range(cfg.depth):
            layers += [DomainConv(w[level], w[level + 1], *p, stride=2), nn.GELU()]
        layers += [ResidualBlock(w[-1], *p) for _ in range(cfg.blocks + extra_blocks)]
        self.body = nn.Sequential(*layers)
        self.width = w[-1]

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        f = 2**self.cfg.depth
        dy, dx = padded_size(self.cfg.ny, f) - self.cfg.ny, padded_size(self.cfg.nx, f) - self.cfg.nx
        return pad_domain(x, (0, dy), (0, dx), self.cfg.periodic_lat, self.cfg.periodic_lon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.pad_input(x))


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        p = (cfg.periodic_lat, cfg.periodic_lon)
        self.cfg = cfg
        w = cfg.widths
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, w[-1], 1), nn.GELU()]
        layers += [ResidualBlock(w[-1], *p) for _ in range(cfg.blocks)]
        for level in reversed(range(cfg.depth)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), DomainConv(w[level + 1], w[level], *p), nn.GELU()]
        layers += [DomainConv(w[0], cfg.channels, *p)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)[..., : self.cfg.ny, : self.cfg.nx]


class Autoencoder(nn.Module):
    """``encode(x) -> z: (batch, n_latent)``; ``decode(z) -> x: (batch, C, ny, nx)``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.to_latent = nn.Conv2d(self.encoder.width, cfg.latent_channels, 1)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x)).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(z.shape[0], *self.cfg.latent_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error in standardised-anomaly units (every channel weighs the same)."""
    return F.mse_loss(x_hat, x)
