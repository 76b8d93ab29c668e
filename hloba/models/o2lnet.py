"""O2Lnet: observations of one cycle -> latent mean ``z_o`` and log-variance ``log sigma_o2``.

Input: the cycle's observations rendered on the model grid, two channels per grid channel: the
mean standardised anomaly of the observations that fall in each cell (0 where none) and an
observed/not-observed mask, ``(batch, 2 C, ny, nx)``; with ``slots`` (a window of cycles) each
slot's observations have channels of their own, ``(batch, 2 C len(slots), ny, nx)``. The body is
the autoencoder's encoder shape (same patch, so it lands on the latent grid) with extra residual blocks at the latent
resolution to spread sparse information; two 1x1 heads give the latent mean and the log-variance. O2Lnet sees observations only, never the
background.

Loss (per sample, mean over elements):
    0.5 * (log sigma_o2 + (E(x_t) - z_o)^2 / sigma_o2)  +  decoder_weight * ||D(z_o) - x_t||^2
the Gaussian negative log-likelihood of the encoded truth, so sigma_o2 is a calibrated error
variance that follows coverage, plus consistency through the frozen decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from hloba.models.checkpoint import load_module
from hloba.models.autoencoder import AutoencoderConfig, Encoder
from hloba.models.layers import inference_copy, inference_input

LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


@dataclass(frozen=True)
class O2LnetConfig:
    autoencoder: dict  # the AutoencoderConfig of the latent space it maps into
    width: int = 128
    blocks: int = 4
    # cycles whose observations it reads, relative to the estimated time (0: that cycle's only; a
    # window such as (-3, -2, -1, 0) ends at it). Each slot has its own input channels.
    slots: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(int(s) for s in self.slots))
        if not self.slots or len(set(self.slots)) != len(self.slots):
            raise ValueError(f"o2lnet slots {self.slots} must be distinct cycle offsets, at least one")

    @property
    def ae(self) -> AutoencoderConfig:
        return AutoencoderConfig(**self.autoencoder)

    def to_dict(self) -> dict:
        return asdict(self)


class O2Lnet(nn.Module):
    """``forward(rendered) -> (z_o, logvar)``, each ``(batch, n_latent)``."""

    def __init__(self, cfg: O2LnetConfig) -> None:
        super().__init__()
        ae = cfg.ae
        self.cfg = cfg
        body_cfg = AutoencoderConfig(
            channels=2 * ae.channels * len(cfg.slots), ny=ae.ny, nx=ae.nx, latent_channels=ae.latent_channels,
            patch=ae.patch, width=cfg.width, blocks=cfg.blocks, periodic_lat=ae.periodic_lat,
            periodic_lon=ae.periodic_lon,
        )
        self.body = Encoder(body_cfg)
        self.mean_head = nn.Conv2d(self.body.width, ae.latent_channels, 1)
        self.logvar_head = nn.Conv2d(self.body.width, ae.latent_channels, 1)

    def forward(self, rendered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.body(rendered), rendered.dtype)  # under autocast h is bfloat16

    def heads(self, h: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_o, logvar)`` in ``dtype`` from the body's features ``h``."""
        logvar = self.logvar_head(h).to(dtype).clamp(LOGVAR_MIN, LOGVAR_MAX)
        return self.mean_head(h).flatten(1).to(dtype), logvar.flatten(1)


def inference_pass(net: O2Lnet, dtype: torch.dtype) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """O2Lnet's forward pass without gradients with its body in ``dtype`` (a stream's, at every cycle).

    float32 is the network itself. bfloat16 runs a copy of the body with bfloat16 weights, made
    once (autocast would convert them at every call: 0.7 ms of O2Lnet's 3.9 on 2 CPU cores with
    AMX), in channels-last layout (the layout of the AMX kernels: 0.4 ms less again), with the
    products and activations in bfloat16 as in bfloat16 training; the 1 x 1 heads run in float32
    on its features, and the outputs are in the input's dtype."""
    if dtype == torch.float32:
        return net
    body = inference_copy(net.body, dtype)

    def estimate(rendered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = body(inference_input(rendered, dtype))
        return net.heads(h.to(rendered.dtype), rendered.dtype)

    return estimate


def gaussian_nll(target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (without the constant)."""
    return 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar)).mean()


def render_observations(
    sample: torch.Tensor, channel: torch.Tensor, row: torch.Tensor, col: torch.Tensor, value: torch.Tensor,
    batch: int, n_channels: int, ny: int, nx: int,
) -> torch.Tensor:
    """Grid the observations: mean value and mask per (channel, cell) -> ``(batch, 2 C, ny, nx)``.

    ``sample, channel, row, col: (n_obs,)`` long (the cell nearest to each observation);
    ``value: (n_obs,)`` standardised anomalies.

    The sums and the counts are added into the output in one pass and turned into the mean and the
    mask in place: the values of separate sums, counts and a concatenation, in about a fifth of the
    time (one stream window of ~11,000 observations: 0.2 ms against 0.6-1.3 on 2 CPU cores).
    """
    cells = ny * nx
    flat = ((sample * 2 * n_channels + channel) * ny + row) * nx + col  # the sum's cell; the count's is C maps on
    out = torch.zeros(batch, 2 * n_channels, ny, nx, dtype=value.dtype, device=value.device)
    out.view(-1).index_add_(0, torch.cat((flat, flat + n_channels * cells)), torch.cat((value, torch.ones_like(value))))
    total, count = out.view(batch, 2, n_channels, ny, nx).unbind(1)
    total.div_(count.clamp(min=1.0))
    count.clamp_(max=1.0)  # whole counts: 1 where observed, 0 elsewhere
    return out


def load_o2lnet(path, device: str | torch.device = "cpu") -> tuple[O2Lnet, dict]:
    """Rebuild O2Lnet from its checkpoint file alone."""
    return load_module(path, "o2lnet", lambda cfg: O2Lnet(O2LnetConfig(**cfg)), device)
