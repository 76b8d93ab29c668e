"""A fixed-lag smoother of a stream's analyses: each analysis corrected by the analysis increments
of its own and the next cycles (``assimilation.smoother_hours``; docs/streams.md, "The smoother").

A filter's analysis at cycle ``j`` has used the observations up to its time (HLOBA's window: up to
its lead); the increments ``d(j + l) = x_a(j + l) - x_b(j + l)`` of the next cycles are what later
observations changed in forecasts that started from it, so they carry information about its error.
The smoothed analysis is

    x_s(j) = x_a(j) + sum_b sum_{l=0..L} M[b, l] band_b(d(j + l))

per octave band ``b`` of the scales (:mod:`hloba.bands`), ``M[b, l]`` a ``C x C`` matrix (each
channel's correction from every channel's increment in that band), all in standardised anomalies.
The gains are fitted by least squares against the truth on the calibration year's tuning stream
(rule tune_stream): a linear regression, the Kalman smoother's gain ``cov(e_a(j), d(j + l))
var(d)^-1`` estimated per band and channel pair rather than computed from covariances. ``l = 0`` is
the cycle's own increment taken again at the fitted weight (across channels), ``l >= 1`` reads
later observations: with ``L`` lags and a window that leads by ``m`` cycles the smoothed analysis
has used observations up to ``L + m`` cycles after its time. The last ``s < L`` cycles of a stream,
whose later increments do not exist, take the gains fitted with the lags they have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hloba.bands import band_index, band_parts, cosine_transform, inverse_cosine_transform
from hloba.latent import KEPT_QUANTUM, quantized_kept
from hloba.timeaxis import window_cycles

CHUNK = 32  # cycles transformed at once (each its bands: B x C fields of ny x nx)


def smoother_lags(hours: float, interval) -> int:
    """The later cycles a smoother of ``hours`` (``assimilation.smoother_hours``) reads at the data's
    step ``interval``: 0 for 0 hours (the analysis's own increment), else a whole number of steps
    (an error names the setting otherwise)."""
    return 0 if hours == 0 else window_cycles(hours, interval, "assimilation.smoother_hours")


def standardized_increment(x_a: torch.Tensor, x_b: torch.Tensor, anomaly_std: torch.Tensor) -> torch.Tensor:
    """``(x_a - x_b) / std`` per channel: a physical ``(..., C, ny, nx)`` increment in anomaly stds."""
    std = anomaly_std.to(x_a.device, torch.float64)[:, None, None]
    return ((x_a.double() - x_b.double()) / std).float()


@dataclass
class SmootherGains:
    """``gains (L + 1, B, C, C (L + 1))``: for ``s`` missing lags, ``gains[s, b]`` maps the band-``b``
    increments of lags ``0 .. L`` (channels fastest: ``l * C + c``) to a channel's correction; the
    columns of missing lags are 0. ``std_factor (C,)``: RMSE of the smoothed analyses over that of
    the filter's on the fit's cycles, cross-validated (a diagnostic)."""

    gains: torch.Tensor
    std_factor: torch.Tensor

    @property
    def lags(self) -> int:
        return self.gains.shape[0] - 1

    @property
    def bands(self) -> int:
        return self.gains.shape[1]


def dequantized(values: torch.Tensor) -> torch.Tensor:
    """int16 multiples of :data:`hloba.latent.KEPT_QUANTUM` (a stream's recorded increments) as float32."""
    return values.float() * KEPT_QUANTUM


def _bands(x: torch.Tensor, n_bands: int) -> torch.Tensor:
    """``(B, T, C, ny, nx)`` octave bands of ``x (T, C, ny, nx)`` in float64."""
    return band_parts(x.double(), n_bands)


def _design(parts: torch.Tensor, start: int, count: int, lags: int) -> torch.Tensor:
    """``(B, count, C (L + 1), ny, nx)``: the banded increments of cycles ``start + l`` side by side."""
    return torch.cat([parts[:, start + lag:start + lag + count] for lag in range(lags + 1)], dim=2)


# the ridges tried, in units of the mean diagonal of a band's normal equations (inf: no correction)
RIDGES = (1e-6, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, math.inf)


def _solve(xx: torch.Tensor, yx: torch.Tensor, ridge: float) -> torch.Tensor:
    """Gains ``(C, k)`` of normal equations ``xx (k, k)``, ``yx (C, k)`` with ``ridge`` times their
    mean diagonal added (``inf``: 0)."""
    if math.isinf(ridge):
        return torch.zeros_like(yx)
    scale = xx.diagonal().mean().clamp(min=1e-30)
    return torch.linalg.solve(xx + ridge * scale * torch.eye(len(xx), dtype=xx.dtype), yx.T).T


def _squared_error(g: torch.Tensor, xx: torch.Tensor, yx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """Per channel ``sum (y - g x)^2`` from the sums ``xx``, ``yx``, ``yy`` of the cycles scored."""
    return yy - 2 * (g * yx).sum(1) + ((g @ xx) * g).sum(1)


def fit_smoother(errors: torch.Tensor, increments: torch.Tensor, lags: int, n_bands: int,
                 area: torch.Tensor | None = None) -> SmootherGains:
    """Least-squares gains from a stream's analysis errors ``x_t - x_a`` and increments
    ``x_a - x_b``, both ``(T, C, ny, nx)`` standardised over the same ``T`` consecutive cycles
    (``T > lags + 1``), weighted by ``area`` (per row, ``(ny,)``, or per point, ``(ny, nx)``).

    Each band's (and lag set's) ridge is chosen from :data:`RIDGES` by two-fold cross-validation in
    time (fitted on either half of the cycles, scored on the other), so that a short or small tuning
    period (few modes in a band, few cycles) shrinks the gains toward 0, the filter's analyses,
    rather than fitting noise; the gains are then fitted on all cycles with it. ``std_factor`` is
    the cross-validated RMSE of the smoothed analyses over the filter's, per channel."""
    T, C = errors.shape[:2]
    n = T - lags  # the cycles with every lag
    if lags < 0 or n < 2:
        raise ValueError(f"the smoother's fit needs at least {lags + 2} cycles for {lags} later cycles, got {T}: "
                         "lengthen assimilation.tuning_days or shorten smoother_hours")
    w = torch.ones(errors.shape[-2:], dtype=torch.float64) if area is None else area.double()
    w = (w if w.ndim == 2 else w[:, None].expand(errors.shape[-2:])) / w.mean()
    w = w.sqrt()
    k = C * (lags + 1)
    xx = torch.zeros(2, n_bands, k, k, dtype=torch.float64)
    yx = torch.zeros(2, n_bands, C, k, dtype=torch.float64)
    yy = torch.zeros(2, n_bands, C, dtype=torch.float64)
    for half, (lo, hi) in enumerate(((0, n // 2), (n // 2, n))):
        for a in range(lo, hi, CHUNK):
            m = min(CHUNK, hi - a)
            x = _design(_bands(increments[a:a + m + lags], n_bands) * w, 0, m, lags)  # (B, m, k, ny, nx)
            y = _bands(errors[a:a + m], n_bands) * w
            xx[half] += torch.einsum("btiyx,btjyx->bij", x, x)
            yx[half] += torch.einsum("btiyx,btjyx->bij", y, x)
            yy[half] += y.square().sum(dim=(1, 3, 4))
    gains = torch.zeros(lags + 1, n_bands, C, k, dtype=torch.float64)
    held_out = torch.zeros(C, dtype=torch.float64)
    for missing in range(lags + 1):
        used = slice(0, C * (lags + 1 - missing))
        for b in range(n_bands):
            blocks = [(xx[h, b, used, used], yx[h, b, :, used], yy[h, b]) for h in (0, 1)]

            def cross_validated(ridge):  # per channel: each half scored with the other half's fit
                return sum(_squared_error(_solve(*blocks[1 - h][:2], ridge), *blocks[h]) for h in (0, 1))

            scores = {ridge: cross_validated(ridge) for ridge in RIDGES}
            best = min(RIDGES, key=lambda ridge: float(scores[ridge].sum()))
            gains[missing, b, :, used] = _solve(xx[0, b, used, used] + xx[1, b, used, used],
                                                yx[0, b, :, used] + yx[1, b, :, used], best)
            if missing == 0:
                held_out += scores[best]
    factor = (held_out.clamp(min=0) / yy.sum(dim=(0, 1)).clamp(min=1e-30)).sqrt()
    return SmootherGains(gains.float(), factor.float())


def smoothing_correction(increments: torch.Tensor, gains: SmootherGains, stop: int | None = None) -> torch.Tensor:
    """The correction ``x_s - x_a`` ``(T, C, ny, nx)`` (float32, standardised) of each of the
    ``T`` cycles of ``increments (T, C, ny, nx)``; cycle ``j`` reads the increments of cycles
    ``j .. j + L`` that are before ``stop`` (default ``T``), with the gains of the lags it has.

    Computed on the cosine coefficients, where a band is the set of modes it holds: one transform of
    each increment and one back of each correction (the bands' sum is the field), each mode's
    correction its band's ``C x C (L + 1)`` matrix times the lags' coefficients of that mode."""
    T, C, ny, nx = increments.shape
    stop = T if stop is None else stop
    L = gains.lags
    g = gains.gains.float()
    modes = band_index(ny, nx, gains.bands).reshape(-1)
    order = torch.argsort(modes, stable=True)  # the modes band by band: each band a block of columns
    edges = torch.cumsum(torch.bincount(modes, minlength=gains.bands), 0).tolist()
    out = torch.zeros((T, C, ny, nx), dtype=torch.float32)
    for a in range(0, T, CHUNK):
        m = min(CHUNK, T - a)
        padded = torch.zeros((m + L, C, ny, nx), dtype=torch.float32)
        have = max(0, min(m + L, stop - a))
        padded[:have] = increments[a:a + have]
        coefficients = cosine_transform(padded).reshape(m + L, C, ny * nx)[:, :, order]
        x = torch.cat([coefficients[lag:lag + m] for lag in range(L + 1)], dim=1)  # (m, C (L + 1), modes)
        missing = (torch.arange(a, a + m) + L - (stop - 1)).clamp(0, L)  # lags past the stream's end
        corrected = torch.empty((m, C, ny * nx), dtype=torch.float32)
        for s in missing.unique().tolist():  # the rows with s missing lags: consecutive (the chunk's last)
            rows = slice(int((missing < s).sum()), int((missing <= s).sum()))
            for b, (lo, hi) in enumerate(zip([0] + edges[:-1], edges)):  # one matrix product per band
                corrected[rows, :, lo:hi] = torch.matmul(g[s, b], x[rows, :, lo:hi])
        out[a:a + m] = inverse_cosine_transform(corrected[:, :, torch.argsort(order)].reshape(m, C, ny, nx))
    return out


def with_correction(kept: torch.Tensor | None, correction: torch.Tensor, cycles: int) -> torch.Tensor:
    """A stream's kept parts ``(cycles, C, ny, nx)`` int16 (:data:`hloba.latent.KEPT`; ``None``:
    zeros) with ``correction`` (standardised, of its first cycles) added in the same quanta
    (:func:`hloba.latent.quantized_kept`), so that the archive decodes the smoothed analyses;
    ``kept`` itself is left alone."""
    out = torch.zeros((cycles, *correction.shape[1:]), dtype=torch.int16) if kept is None else kept.clone()
    n = correction.shape[0]
    total = out[:n].int() + quantized_kept(correction).int()
    out[:n] = total.clamp(-32767, 32767).to(torch.int16)
    return out
