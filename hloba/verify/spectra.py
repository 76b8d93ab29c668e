"""Errors by scale on a doubly periodic grid (the built-in world): which wavenumbers a method misses.

Fourier coefficients of different total wavenumber are orthogonal, so the mean square of an error
field is the sum of its bands' parts (Parseval; unweighted over the grid, unlike the scorecard's
area weights): :func:`band_rmse` splits an RMSE into bands whose squares add up to it.
"""

from __future__ import annotations

import numpy as np


def total_wavenumber(ny: int, nx: int) -> np.ndarray:
    """``(ny, nx)`` total wavenumber of each coefficient of ``numpy.fft.fft2`` (cycles per domain)."""
    return np.hypot(*np.meshgrid(np.fft.fftfreq(ny) * ny, np.fft.fftfreq(nx) * nx, indexing="ij"))


def band_index(k: np.ndarray, edges) -> np.ndarray:
    """Band of each wavenumber ``k``: 0 below ``edges[0]``, ``i`` in ``[edges[i-1], edges[i])``, the
    last band from ``edges[-1]`` up."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"band edges {edges.tolist()} must be increasing wavenumbers, at least one")
    return np.searchsorted(edges, k, side="right")


def band_rmse(error: np.ndarray, edges) -> np.ndarray:
    """RMS of ``error: (..., ny, nx)`` in each band of total wavenumber (``len(edges) + 1`` values),
    over every leading index: ``sqrt(sum(band_rmse**2)) == sqrt(mean(error**2))``."""
    error = np.asarray(error, dtype=np.float64)
    ny, nx = error.shape[-2:]
    power = np.abs(np.fft.fft2(error)) ** 2 / float(ny * nx) ** 2
    power = power.reshape(-1, ny, nx).mean(0)
    bands = band_index(total_wavenumber(ny, nx), edges)
    return np.sqrt(np.bincount(bands.ravel(), weights=power.ravel(), minlength=len(edges) + 1))


def band_labels(edges) -> list[str]:
    """Column names of :func:`band_rmse`'s bands: ``k<2``, ``2-4``, ..., ``k>=16``."""
    edges = [float(e) for e in edges]
    return [f"k<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])] + [f"k>={edges[-1]:g}"]
