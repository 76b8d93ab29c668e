"""Model-space optimal interpolation: the traditional, non-latent baseline (``method: oi``).

Static background error covariance from forecast differences (the NMC method): forecasts of two
leads valid at the same time, started from the reference of the calibration year. The covariance
is separable and homogeneous in the horizontal:

``B = S (C ⊗ G) S``

- ``S``: the error std per channel and latitude row (zonal mean of the differences' std),
- ``C``: the correlation between channels at one point,
- ``G``: a homogeneous horizontal correlation, a convolution whose spectrum is the mean power
  spectrum of the standardised differences (normalised to unit variance). Bounded axes are
  zero-padded to twice their length, so ``G`` never wraps across a regional domain's edges.

Every factor is positive semi-definite, so ``B`` is. The analysis is the BLUE
``x_a = x_b + B H^T (H B H^T + R)^-1 (y - H x_b)``, solved exactly per cycle (Cholesky of the
observation-space matrix) with bilinear ``H`` (:mod:`hloba.obs.operator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from hloba.grid import Grid
from hloba.obs.operator import InterpolationWeights


def padded_shape(grid: Grid) -> tuple[int, int]:
    """FFT grid of ``G``: periodic axes as they are, bounded axes doubled."""
    ny, nx = grid.shape
    return (ny if grid.latitude_period else 2 * ny), (nx if grid.longitude_period else 2 * nx)


def nmc_statistics(differences: np.ndarray, grid: Grid, scale: float = 1.0) -> xr.Dataset:
    """``S``, ``C`` and the spectrum of ``G`` from forecast differences ``(sample, C, ny, nx)``.

    ``scale`` multiplies the variances (the NMC differences are a proxy whose amplitude is tuned).
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 4 or d.shape[0] < 2:
        raise ValueError(f"forecast differences must be (sample >= 2, channel, lat, lon), got {d.shape}")
    d = d - d.mean(axis=0, keepdims=True)
    std_row = np.sqrt((d ** 2).mean(axis=(0, 3)))  # (C, ny)
    std_row = np.maximum(std_row, 1e-12 * max(std_row.max(), 1e-300))
    u = d / std_row[None, :, :, None]
    flat = u.transpose(1, 0, 2, 3).reshape(d.shape[1], -1)
    corr = np.corrcoef(flat)
    py, px = padded_shape(grid)
    power = np.abs(np.fft.fft2(u, s=(py, px))) ** 2  # zero-padded on bounded axes
    spectrum = power.mean(axis=(0, 1))
    spectrum = spectrum / spectrum.mean()  # unit diagonal of G on the padded torus
    return xr.Dataset(
        {
            "std": (("channel", "latitude"), np.sqrt(scale) * std_row,
                    {"long_name": "background error std per channel and latitude row (NMC)"}),
            "channel_correlation": (("channel", "channel2"), corr),
            "spectrum": (("ky", "kx"), spectrum,
                         {"long_name": "power spectrum of the horizontal correlation G (FFT order)"}),
        },
        attrs={"method": "NMC forecast differences", "samples": d.shape[0], "scale": scale},
    )


@dataclass
class StaticCovariance:
    """``B = S (C ⊗ G) S`` on one device (see the module docstring)."""

    std: torch.Tensor  # (C, ny, nx)
    channel_correlation: torch.Tensor  # (C, C)
    spectrum: torch.Tensor  # (py, px)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, grid: Grid, device="cpu", scale: float = 1.0) -> "StaticCovariance":
        ny, nx = grid.shape
        std = torch.as_tensor(ds["std"].values, dtype=torch.float64)
        if std.shape[1] != ny or tuple(ds["spectrum"].shape) != padded_shape(grid):
            raise ValueError(f"the OI covariance was estimated on another grid ({tuple(ds['spectrum'].shape)}); "
                             "rerun rule oi_covariance")
        std = (std * scale ** 0.5)[:, :, None].expand(-1, -1, nx).contiguous()
        return cls(std.to(device), torch.as_tensor(ds["channel_correlation"].values, dtype=torch.float64).to(device),
                   torch.as_tensor(ds["spectrum"].values, dtype=torch.float64).to(device))

    def horizontal(self, f: torch.Tensor) -> torch.Tensor:
        """``G f`` for fields ``(..., ny, nx)``."""
        ny, nx = f.shape[-2:]
        py, px = self.spectrum.shape
        spec = torch.fft.fft2(f, s=(py, px)) * self.spectrum
        return torch.fft.ifft2(spec).real[..., :ny, :nx]

    def apply(self, f: torch.Tensor) -> torch.Tensor:
        """``B f`` for a model-space field ``(C, ny, nx)``."""
        g = self.horizontal(self.std * f)
        return self.std * torch.einsum("cd,dyx->cyx", self.channel_correlation, g)

    def point_fields(self, w: InterpolationWeights, ny: int, nx: int) -> torch.Tensor:
        """``S H^T e_i`` for every observation ``i``, as single-channel fields ``(n_obs, ny, nx)``."""
        n = w.channel.numel()
        f = torch.zeros(n, ny * nx, dtype=torch.float64, device=self.std.device)
        rows = torch.arange(n, device=f.device)
        for ii, jj, ww in w.neighbours():
            f.index_put_((rows, ii * nx + jj), ww.double() * self.std[w.channel, ii, jj], accumulate=True)
        return f.view(n, ny, nx)

    def observation_covariance(self, w: InterpolationWeights, ny: int, nx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``H B H^T`` ``(n_obs, n_obs)`` and the fields ``G S H^T e_j`` it was built from."""
        g = self.horizontal(self.point_fields(w, ny, nx)).reshape(w.channel.numel(), -1)  # (n_obs, ny*nx)
        hbh = torch.zeros(g.shape[0], g.shape[0], dtype=torch.float64, device=g.device)
        for ii, jj, ww in w.neighbours():
            hbh += (ww.double() * self.std[w.channel, ii, jj])[:, None] * g[:, ii * nx + jj].T
        hbh = hbh * self.channel_correlation[w.channel][:, w.channel]
        return 0.5 * (hbh + hbh.T), g


def optimal_interpolation(x_b: torch.Tensor, y: torch.Tensor, r2: torch.Tensor, w: InterpolationWeights,
                          cov: StaticCovariance, hx_b: torch.Tensor) -> torch.Tensor:
    """BLUE analysis ``x_a`` ``(C, ny, nx)`` of background ``x_b`` and observations ``y`` (error variances ``r2``)."""
    C, ny, nx = x_b.shape
    if y.numel() == 0:
        return x_b.clone()
    hbh, _ = cov.observation_covariance(w, ny, nx)
    a = hbh + torch.diag(r2.double())
    chol = torch.linalg.cholesky(a)
    weights = torch.cholesky_solve((y - hx_b).double()[:, None], chol)[:, 0]
    f = torch.zeros(C, ny * nx, dtype=torch.float64, device=x_b.device)
    for ii, jj, ww in w.neighbours():
        f.index_put_((w.channel, ii * nx + jj), ww.double() * weights, accumulate=True)
    return (x_b.double() + cov.apply(f.view(C, ny, nx))).to(x_b.dtype)


def nmc_differences(model, x: torch.Tensor, times, long_lead: int, short_lead: int, samples: int,
                    batch: int = 16) -> torch.Tensor:
    """``M^long(x(t - long)) - M^short(x(t - short))`` at ``samples`` times ``t`` spread over ``times``.

    ``x: (time, C, ny, nx)`` reference states; leads in cycles (``long_lead > short_lead >= 1``).
    """
    if not long_lead > short_lead >= 1:
        raise ValueError(f"NMC leads must satisfy long > short >= 1 cycles, got {long_lead}, {short_lead}")
    if len(times) <= long_lead + 1:
        raise ValueError(f"{len(times)} reference times are too few for NMC differences at lead {long_lead}")
    valid = np.unique(np.linspace(long_lead, len(times) - 1, samples).astype(int))
    out = []
    with torch.no_grad():
        for i in range(0, len(valid), batch):
            v = valid[i:i + batch]
            a = model.step(x[v - long_lead].double(), times[v - long_lead], long_lead)
            b = model.step(x[v - short_lead].double(), times[v - short_lead], short_lead)
            out.append((a - b).cpu())
    return torch.cat(out)


def oi_covariance_file(reference_paths, output, forecast, *, long_lead_hours: float = 48.0,
                       short_lead_hours: float = 24.0, samples: int = 120) -> xr.Dataset:
    """Rule oi_covariance: NMC statistics of the forecast model (a :class:`hloba.forecast.ForecastSpec`)
    on the calibration year."""
    import logging

    import pandas as pd

    from hloba.channels import channel_coords
    from hloba.io import write_netcdf
    from hloba.states import load_years

    log = logging.getLogger(__name__)
    x, times, channels, grid = load_years(reference_paths)
    interval = times[1] - times[0]
    model = forecast.build(channels)
    leads = [pd.Timedelta(hours=h) / interval for h in (long_lead_hours, short_lead_hours)]
    if any(abs(v - round(v)) > 1e-9 for v in leads):
        raise ValueError(f"NMC leads {long_lead_hours} h and {short_lead_hours} h are not whole cycles of {interval}")
    d = nmc_differences(model, x, times, round(leads[0]), round(leads[1]), samples)
    ds = nmc_statistics(d.numpy(), grid).assign_coords(channel_coords(channels))
    ds = ds.assign_coords(channel2=list(ds["channel"].values), latitude=np.asarray(grid.latitude))
    ds.attrs.update(long_lead_hours=long_lead_hours, short_lead_hours=short_lead_hours)
    write_netcdf(ds, output)
    log.info("NMC covariance from %d differences: std %s", d.shape[0],
             ", ".join(f"{c.name} {s:.3g}" for c, s in zip(channels, ds["std"].mean("latitude").values)))
    return ds
