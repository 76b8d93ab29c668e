"""Presentation of the two-layer world as atmospheric fields on a latitude-longitude grid.

The beta-plane square is mapped onto a mid-latitude sector: ``y`` to latitude around
``center_latitude`` (1 degree = 111.2 km) and ``x`` to longitude at the scale of the central
latitude. Physical variables (SI units, CF names):

- ``geopotential`` at the upper (250 hPa) and lower (750 hPa) levels:
  ``Phi_j = Phi_ref_j + f0 * (psi_j - U_j (y - y_c))``;
- ``u_component_of_wind``, ``v_component_of_wind`` at both levels: ``U_j - dpsi_j/dy``, ``dpsi_j/dx``;
- ``temperature`` at the mid level (500 hPa) from the thickness, hydrostatic relation
  ``T = (Phi_1 - Phi_2) / (R ln(p2 / p1))``;
- ``specific_humidity`` at the lower level: ``max(q_bg(y) + h, 0)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hloba.world.qg import R_DRY, QGModel, QGParams

EARTH_RADIUS_M = 6.371e6
GRAVITY = 9.80665
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180.0
# Standard-atmosphere heights of the two layers' pressure levels (m)
REFERENCE_HEIGHT_M = {250.0: 10_363.0, 500.0: 5_574.0, 700.0: 3_012.0, 750.0: 2_466.0, 850.0: 1_457.0}


def grid_coordinates(params: QGParams, center_latitude: float = 45.0) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes ``(ny,)`` and longitudes ``(nx,)`` in degrees, ascending."""
    y = (np.arange(params.ny) + 0.5) * params.dy - 0.5 * params.domain_length_m
    x = np.arange(params.nx) * params.dx
    lat = center_latitude + y / METRES_PER_DEGREE
    lon = x / (METRES_PER_DEGREE * math.cos(math.radians(center_latitude)))
    if lat.min() <= -90 or lat.max() >= 90:
        raise ValueError(
            f"domain_length_m={params.domain_length_m:g} around center_latitude={center_latitude} "
            f"spans latitudes {lat.min():.1f}..{lat.max():.1f}: reduce the domain or move the centre"
        )
    return lat, lon


def longitude_period(params: QGParams, center_latitude: float = 45.0) -> float:
    """Length in degrees of the periodic longitude axis (``nx * dlon``)."""
    return params.domain_length_m / (METRES_PER_DEGREE * math.cos(math.radians(center_latitude)))


def reference_geopotential(level_hpa: float) -> float:
    """Standard-atmosphere geopotential (m2 s-2) of a pressure level the world uses."""
    try:
        return REFERENCE_HEIGHT_M[float(level_hpa)] * GRAVITY
    except KeyError:
        raise ValueError(
            f"no reference height for level {level_hpa} hPa; known: {sorted(REFERENCE_HEIGHT_M)}"
        ) from None


def physical_fields(model: QGModel, state: torch.Tensor, day_of_year: torch.Tensor | float) -> dict[str, torch.Tensor]:
    """Atmospheric fields of a grid-space state ``(batch, 3, ny, nx)``.

    Returns a dict of tensors: two-level variables ``(batch, 2, ny, nx)`` (upper, lower) and
    single-level ones ``(batch, ny, nx)``.
    """
    p = model.params
    batch = state.shape[0]
    u1, u2 = model.mean_winds(day_of_year, batch)
    umean = torch.stack((u1, u2), dim=1)[:, :, None, None]
    ph = model.invert(model.to_spectral(state[:, :2].to(model.dtype)))
    eddy = model.to_grid(torch.cat((ph, -model.iky * ph, model.ikx * ph), dim=1))
    psi, u, v = eddy[:, 0:2], eddy[:, 2:4], eddy[:, 4:6]
    y = model.y_centred[None, None, :, None]
    psi_total = psi - umean * y
    phi_ref = torch.tensor(
        [reference_geopotential(p.upper_level_hpa), reference_geopotential(p.lower_level_hpa)],
        dtype=model.dtype, device=state.device,
    )[None, :, None, None]
    geopotential = phi_ref + p.f0 * psi_total
    log_p = math.log(p.lower_level_hpa / p.upper_level_hpa)
    temperature = (geopotential[:, 0] - geopotential[:, 1]) / (R_DRY * log_p)
    q_bg = 0.5 * (p.humidity_south_kg_kg + p.humidity_north_kg_kg) - model.humidity_gradient * model.y_centred
    humidity = torch.clamp(q_bg[None, :, None] + state[:, 2].to(model.dtype), min=0.0)
    return {
        "geopotential": geopotential,
        "u_component_of_wind": umean + u,
        "v_component_of_wind": v,
        "temperature": temperature,
        "specific_humidity": humidity,
    }


def mid_level_hpa(params: QGParams) -> float:
    """Pressure (hPa) at which the thickness temperature is reported: midway between the layers."""
    return 0.5 * (params.upper_level_hpa + params.lower_level_hpa)


def state_from_fields(
    model: QGModel, geopotential: torch.Tensor, specific_humidity: torch.Tensor, day_of_year: torch.Tensor | float,
    mean_winds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of :func:`physical_fields`: the grid-space model state ``(batch, 3, ny, nx)``.

    ``geopotential: (batch, 2, ny, nx)`` (upper, lower) and ``specific_humidity: (batch, ny, nx)``
    determine the state; winds and temperature are diagnostic. The mean flow whose geostrophic
    height gradient is removed defaults to the model's own; pass the data's ``mean_winds:
    (batch, 2)`` (the domain-mean zonal winds, which the periodic eddies cannot change) when the
    state comes from another model or the truth, so that a different mean flow does not leave a
    non-periodic ramp in the eddy streamfunction. Humidity clipped at zero is not recovered below zero.
    """
    p = model.params
    batch = geopotential.shape[0]
    if mean_winds is None:
        u1, u2 = model.mean_winds(day_of_year, batch)
        umean = torch.stack((u1, u2), dim=1)[:, :, None, None]
    else:
        umean = mean_winds.to(model.dtype)[:, :, None, None]
    phi_ref = torch.tensor(
        [reference_geopotential(p.upper_level_hpa), reference_geopotential(p.lower_level_hpa)],
        dtype=model.dtype, device=geopotential.device,
    )[None, :, None, None]
    psi = (geopotential.to(model.dtype) - phi_ref) / p.f0 + umean * model.y_centred[None, None, :, None]
    q = model.to_grid(model.pv_from_streamfunction(model.to_spectral(psi)) * model.dealias)
    q_bg = 0.5 * (p.humidity_south_kg_kg + p.humidity_north_kg_kg) - model.humidity_gradient * model.y_centred
    h = specific_humidity.to(model.dtype) - q_bg[None, :, None]
    return torch.cat((q, h[:, None]), dim=1)
