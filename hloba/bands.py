"""Octave bands of a field's scales, for weights that differ with the scale (HLOBA's decoded increment).

A field ``(..., ny, nx)`` is split by its cosine transform (the orthonormal DCT-II along each axis:
the Fourier transform of the field continued by reflection across both edges, so there is no jump
at the edges and a regional box and the built-in doubly periodic world split alike). Its modes are
sorted by wavelength in grid lengths, ``1 / |f|`` with ``f = (ky / 2 ny, kx / 2 nx)`` the mode's
frequency in cycles per grid length. With ``B`` bands the edges are the octaves
``4 * 2**(B - 2), ..., 8, 4`` grid lengths: band 0 holds the longest waves (and the mean), band
``B - 1`` those of 4 grid lengths and less; one band is the whole field. The bands of a field add up
to it exactly and are orthogonal (:func:`band_parts`), so weights equal in every band act as one
weight per channel.

The transform is one product with an ``n x n`` matrix per axis (on a 64 x 64 grid about 0.4 of the
time of the reflected field's FFT, whose numbers it gives to rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def band_edges(n_bands: int) -> tuple[float, ...]:
    """The ``n_bands - 1`` wavelengths (grid lengths, longest first) between the octave bands."""
    if n_bands < 1:
        raise ValueError(f"a field needs at least one band, not {n_bands}")
    return tuple(4.0 * 2.0 ** k for k in range(n_bands - 2, -1, -1))


@lru_cache(maxsize=16)
def _band_index(ny: int, nx: int, n_bands: int) -> torch.Tensor:
    fy = torch.arange(ny, dtype=torch.float64)[:, None] / (2 * ny)
    fx = torch.arange(nx, dtype=torch.float64)[None, :] / (2 * nx)
    f = (fy.square() + fx.square()).sqrt()  # cycles per grid length
    index = torch.zeros(f.shape, dtype=torch.long)
    for edge in band_edges(n_bands):  # a mode shorter than an edge (f > 1 / edge) is in a later band
        index += (f * edge > 1.0 + 1e-9).long()
    return index


def band_index(ny: int, nx: int, n_bands: int) -> torch.Tensor:
    """The band ``(ny, nx)`` of each cosine mode ``(ky, kx)`` of a ``ny x nx`` field."""
    return _band_index(int(ny), int(nx), int(n_bands))


@lru_cache(maxsize=16)
def _cosine_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II ``(n, n)``: row ``k`` is ``s_k cos(pi k (i + 1/2) / n)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :] + 0.5
    c = torch.cos(math.pi * k * i / n) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def _matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ny, nx = x.shape[-2:]
    return _cosine_matrix(int(ny)).to(x.device, x.dtype), _cosine_matrix(int(nx)).to(x.device, x.dtype)


def cosine_transform(x: torch.Tensor) -> torch.Tensor:
    """The cosine coefficients ``(..., ky, kx)`` of ``x (..., ny, nx)`` (orthonormal: the same energy)."""
    cy, cx = _matrices(x)
    return cy @ x @ cx.T


def inverse_cosine_transform(coefficients: torch.Tensor) -> torch.Tensor:
    """The field of cosine ``coefficients (..., ky, kx)``: the inverse of :func:`cosine_transform`."""
    cy, cx = _matrices(coefficients)
    return cy.T @ coefficients @ cx


def band_parts(x: torch.Tensor, n_bands: int) -> torch.Tensor:
    """``x (..., ny, nx)`` split into ``n_bands`` octave bands: ``(n_bands, ..., ny, nx)``, summing to ``x``."""
    ny, nx = x.shape[-2:]
    coefficients, index = cosine_transform(x), band_index(ny, nx, n_bands).to(x.device)
    return torch.stack([inverse_cosine_transform(coefficients * (index == b)) for b in range(n_bands)])


def band_weighted(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_b weights[c, b] * band_b(x[:, c])``: each channel's bands of ``x (batch, C, ny, nx)``
    scaled by its own weights ``(C, B)`` (``(C,)``: one weight a channel, no transform). In
    ``x``'s dtype (float32 or float64; other dtypes are computed in float32)."""
    w = torch.as_tensor(weights).to(x.device)
    if w.ndim == 1 or w.shape[-1] == 1:  # one band: a weight per channel
        return x * w.reshape(-1).to(x.dtype)[None, :, None, None]
    ny, nx = x.shape[-2:]
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    index = band_index(ny, nx, w.shape[-1]).to(x.device)
    gain = torch.index_select(w.to(real), 1, index.reshape(-1)).view(w.shape[0], *index.shape)  # (C, ny, nx)
    return inverse_cosine_transform(cosine_transform(x.to(real)) * gain).to(x.dtype)
