"""Octave bands of a field's scales, for weights that differ with the scale (HLOBA's decoded increment).

A field ``(..., ny, nx)`` is continued by reflection across both edges to ``(2 ny, 2 nx)`` (a
cosine transform: no jump at the edges, so a regional box and the built-in doubly periodic world
split alike) and its Fourier modes are sorted by wavelength in grid lengths, ``1 / |f|`` with ``f``
the mode's frequency in cycles per grid length. With ``B`` bands the edges are the octaves
``4 * 2**(B - 2), ..., 8, 4`` grid lengths: band 0 holds the longest waves (and the mean), band
``B - 1`` those of 4 grid lengths and less; one band is the whole field. The bands of a field add up
to it exactly (:func:`band_parts`), so weights equal in every band act as one weight per channel.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def band_edges(n_bands: int) -> tuple[float, ...]:
    """The ``n_bands - 1`` wavelengths (grid lengths, longest first) between the octave bands."""
    if n_bands < 1:
        raise ValueError(f"a field needs at least one band, not {n_bands}")
    return tuple(4.0 * 2.0 ** k for k in range(n_bands - 2, -1, -1))


@lru_cache(maxsize=16)
def _band_index(ny: int, nx: int, n_bands: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(2 * ny, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(2 * nx, dtype=torch.float64)[None, :]
    f = (fy.square() + fx.square()).sqrt()  # cycles per grid length
    index = torch.zeros(f.shape, dtype=torch.long)
    for edge in band_edges(n_bands):  # a mode shorter than an edge (f > 1 / edge) is in a later band
        index += (f * edge > 1.0 + 1e-9).long()
    return index


def band_index(ny: int, nx: int, n_bands: int) -> torch.Tensor:
    """The band ``(2 ny, nx + 1)`` of each mode of the reflected field's real transform."""
    return _band_index(int(ny), int(nx), int(n_bands))


def _reflected_spectrum(x: torch.Tensor) -> torch.Tensor:
    x = torch.cat((x, x.flip(-2)), dim=-2)
    return torch.fft.rfft2(torch.cat((x, x.flip(-1)), dim=-1))


def _back(spectrum: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    return torch.fft.irfft2(spectrum, s=(2 * ny, 2 * nx))[..., :ny, :nx]


def band_parts(x: torch.Tensor, n_bands: int) -> torch.Tensor:
    """``x (..., ny, nx)`` split into ``n_bands`` octave bands: ``(n_bands, ..., ny, nx)``, summing to ``x``."""
    ny, nx = x.shape[-2:]
    spectrum, index = _reflected_spectrum(x), band_index(ny, nx, n_bands).to(x.device)
    return torch.stack([_back(spectrum * (index == b), ny, nx) for b in range(n_bands)])


def band_weighted(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_b weights[c, b] * band_b(x[:, c])``: each channel's bands of ``x (batch, C, ny, nx)``
    scaled by its own weights ``(C, B)`` (``(C,)``: one weight a channel, no transform). In
    ``x``'s dtype."""
    w = torch.as_tensor(weights).to(x.device)
    if w.ndim == 1 or w.shape[-1] == 1:  # one band: a weight per channel
        return x * w.reshape(-1).to(x.dtype)[None, :, None, None]
    ny, nx = x.shape[-2:]
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    index = band_index(ny, nx, w.shape[-1]).to(x.device)
    gain = torch.index_select(w.to(real), 1, index.reshape(-1)).view(w.shape[0], *index.shape)  # (C, 2 ny, nx + 1)
    spectrum = _reflected_spectrum(x.to(real))
    torch.view_as_real(spectrum).mul_(gain.unsqueeze(-1))  # real and imaginary parts alike, no complex gain
    return _back(spectrum, ny, nx).to(x.dtype)
