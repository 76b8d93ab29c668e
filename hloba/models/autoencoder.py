"""Convolutional autoencoder: standardised anomalies ``x: (batch, C, ny, nx)`` <-> latent ``z``.

Encoder: an overlapping strided convolution (kernel ``2 * patch``, stride ``patch``) takes the
grid to the latent resolution ``ceil(ny / patch) x ceil(nx / patch)`` with ``width`` features,
residual blocks refine it, and a 1x1 convolution gives ``latent_channels`` per cell; the latent
flattens to ``n_latent`` elements (the vector z of DESIGN section 2). The decoder mirrors it: 1x1
convolution, residual blocks, and a transposed convolution back to the grid.

The residual blocks start as the identity (their last convolution is zero-initialised), so
training starts from a linear, local, overlapping-patch autoencoder (close to a local PCA, which
is already a good compressor of smooth fields) and learns the nonlinear corrections on top: on
two CPU cores this reaches a given accuracy several times sooner than a deep U-shaped stack.

Padding is circular along periodic axes and replicate elsewhere; grids whose size is not a
multiple of ``patch`` (odd sizes included) are padded in the same way before encoding and
cropped after decoding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hloba.models.checkpoint import load_module
from hloba.models.layers import (PatchTranspose, ResidualBlock, inference_copy, inference_input, pad_domain,
                                 padded_size)


@dataclass(frozen=True)
class AutoencoderConfig:
    channels: int
    ny: int
    nx: int
    latent_channels: int = 8
    patch: int = 4
    width: int = 128
    blocks: int = 2
    periodic_lat: bool = False
    periodic_lon: bool = False

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise ValueError(f"autoencoder patch={self.patch} must be >= 1")
        if min(self.ny, self.nx) < 2 * self.patch:
            raise ValueError(
                f"grid {self.ny} x {self.nx} is too small for autoencoder patch {self.patch}: each side needs "
                f"at least {2 * self.patch} points (reduce autoencoder.patch)"
            )

    @property
    def latent_grid(self) -> tuple[int, int]:
        return padded_size(self.ny, self.patch) // self.patch, padded_size(self.nx, self.patch) // self.patch

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, *self.latent_grid)

    @property
    def n_latent(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    @property
    def compression(self) -> float:
        return self.channels * self.ny * self.nx / self.n_latent

    def to_dict(self) -> dict:
        return asdict(self)


def identity_blocks(n: int, width: int, periodic_lat: bool, periodic_lon: bool) -> list[nn.Module]:
    blocks = [ResidualBlock(width, periodic_lat, periodic_lon) for _ in range(n)]
    for block in blocks:
        nn.init.zeros_(block.conv2.conv.weight)
        nn.init.zeros_(block.conv2.conv.bias)
    return blocks


class Encoder(nn.Module):
    """Grid ``(batch, C, ny, nx)`` -> features ``(batch, width, *latent_grid)``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Conv2d(cfg.channels, cfg.width, 2 * cfg.patch, stride=cfg.patch)
        self.blocks = nn.Sequential(*identity_blocks(cfg.blocks, cfg.width, cfg.periodic_lat, cfg.periodic_lon))
        self.width = cfg.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, p = self.cfg, self.cfg.patch
        dy, dx = padded_size(c.ny, p) - c.ny, padded_size(c.nx, p) - c.nx
        half = p // 2
        x = pad_domain(x, (half, dy + p - half), (half, dx + p - half), c.periodic_lat, c.periodic_lon)
        return self.blocks(self.stem(x))


class Decoder(nn.Module):
    """Latent ``(batch, latent_channels, *latent_grid)`` -> grid ``(batch, C, ny, nx)``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.from_latent = nn.Conv2d(cfg.latent_channels, cfg.width, 1)
        self.blocks = nn.Sequential(*identity_blocks(cfg.blocks, cfg.width, cfg.periodic_lat, cfg.periodic_lon))
        self.head = PatchTranspose(cfg.width, cfg.channels, cfg.patch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, p = self.cfg, self.cfg.patch
        h = self.blocks(self.from_latent(z))
        # one latent cell of halo on each side, so that overlapping kernels see their neighbours
        h = pad_domain(h, (1, 1), (1, 1), c.periodic_lat, c.periodic_lon)
        out = self.head(h)  # (n + 2) * p + p
        start = p + p // 2
        return out[..., start:start + c.ny, start:start + c.nx]


class Autoencoder(nn.Module):
    """``encode(x) -> z: (batch, n_latent)``; ``decode(z) -> x: (batch, C, ny, nx)``.

    :meth:`set_inference_precision` makes the passes without gradients (the streams' encodings
    and decodings, the archive's) run on a bfloat16 copy of the weights; with gradients (training,
    latent 3D- and 4D-Var's minimisations) they stay float32."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.to_latent = nn.Conv2d(cfg.width, cfg.latent_channels, 1)
        self.decoder = Decoder(cfg)
        self._inference: tuple | None = None  # (dtype, encoder, to_latent, decoder) copies; not submodules

    @property
    def inference_dtype(self) -> torch.dtype:
        """The dtype of the passes without gradients (:meth:`set_inference_precision`)."""
        return torch.float32 if self._inference is None else self._inference[0]

    def set_inference_precision(self, dtype: torch.dtype) -> "Autoencoder":
        """Run the passes without gradients in ``dtype`` (float32: the network itself; bfloat16: a
        copy of the weights in bfloat16 and channels-last layout, made once, as O2Lnet's
        :func:`hloba.models.o2lnet.inference_pass`). Outputs stay in the input's dtype. Call it after
        the model is on its device. On CPUs with AMX tiles or avx512_bf16 a sample's bfloat16 pass gives the same
        bits in any batch and with any number of threads, so a stream and the archive that decodes
        its latent record agree exactly."""
        if dtype == torch.float32:
            self._inference = None
            return self
        self._inference = (dtype, *(inference_copy(m, dtype) for m in (self.encoder, self.to_latent, self.decoder)))
        return self

    def _low(self) -> tuple | None:
        return None if self._inference is None or torch.is_grad_enabled() else self._inference

    # outputs come in the input's dtype, also under autocast (training.precision: bfloat16)
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        low = self._low()
        if low is not None:
            dtype, encoder, to_latent, _ = low
            return to_latent(encoder(inference_input(x, dtype))).flatten(1).to(x.dtype)
        return self.to_latent(self.encoder(x)).flatten(1).to(x.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        low = self._low()
        if low is not None:
            dtype, _, _, decoder = low
            return decoder(inference_input(z.view(z.shape[0], *self.cfg.latent_shape), dtype)).to(z.dtype).contiguous()
        return self.decoder(z.view(z.shape[0], *self.cfg.latent_shape)).to(z.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error in standardised-anomaly units (every channel weighs the same)."""
    return F.mse_loss(x_hat, x)


@torch.no_grad()
def encode_all(model: Autoencoder, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def decode_all(model: Autoencoder, z: torch.Tensor, batch: int = 64) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.decode(z[i:i + batch].to(device)).cpu() for i in range(0, len(z), batch)])


def load_autoencoder(path, device: str | torch.device = "cpu", inference_dtype: torch.dtype = torch.float32
                     ) -> tuple[Autoencoder, dict]:
    """Rebuild the autoencoder from its checkpoint file alone, its passes without gradients in
    ``inference_dtype`` (:meth:`Autoencoder.set_inference_precision`)."""
    ae, payload = load_module(path, "autoencoder", lambda cfg: Autoencoder(AutoencoderConfig(**cfg)), device)
    return ae.set_inference_precision(inference_dtype), payload
