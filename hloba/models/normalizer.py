"""Standardised anomalies: ``x_norm = (x - climatology(t)) / anomaly_std`` per channel, and back.

Built from ``results/prep/normalization.nc`` and carried inside every checkpoint (as tensors),
so a model can be used from its file alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from hloba.normalization import fractional_day_of_year, harmonic_design


class Normalizer:
    """Per-channel standardisation about a harmonic day-of-year climatology."""

    def __init__(self, anomaly_std: torch.Tensor, coefficients: torch.Tensor, n_harmonics: int) -> None:
        self.anomaly_std = anomaly_std.double()  # (C,)
        self.coefficients = coefficients.double()  # (1 + 2 n_harmonics, C, ny, nx)
        self.n_harmonics = int(n_harmonics)

    @classmethod
    def from_dataset(cls, norm: xr.Dataset) -> "Normalizer":
        return cls(
            torch.as_tensor(norm["anomaly_std"].values), torch.as_tensor(norm["climatology_coefficients"].values),
            int(norm.attrs["n_harmonics"]),
        )

    @classmethod
    def from_state(cls, state: dict) -> "Normalizer":
        return cls(state["anomaly_std"], state["coefficients"], int(state["n_harmonics"]))

    def state(self) -> dict:
        return {"anomaly_std": self.anomaly_std, "coefficients": self.coefficients, "n_harmonics": self.n_harmonics}

    def climatology(self, times) -> torch.Tensor:
        """``(time, C, ny, nx)`` climatology at ``times``."""
        design = torch.as_tensor(harmonic_design(fractional_day_of_year(pd.DatetimeIndex(np.atleast_1d(times))), self.n_harmonics))
        return torch.tensordot(design, self.coefficients, dims=1)

    def standardize(self, x: torch.Tensor, times) -> torch.Tensor:
        clim = self.climatology(times).to(x.device, torch.float64)
        std = self.anomaly_std.to(x.device)[None, :, None, None]
        return ((x.double() - clim) / std).to(torch.float32)

    def destandardize(self, x_norm: torch.Tensor, times) -> torch.Tensor:
        clim = self.climatology(times).to(x_norm.device, torch.float64)
        std = self.anomaly_std.to(x_norm.device)[None, :, None, None]
        return x_norm.double() * std + clim
