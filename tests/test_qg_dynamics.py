"""Analytic checks of the two-layer QG model: invariants, Rossby waves, Phillips instability."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hloba.world.qg import QGModel, QGParams, random_initial_state


def unforced_model(**overrides) -> QGModel:
    params = replace(QGParams(), **overrides)
    return QGModel(params, forcing=False, drag=False, diffusion=False, moisture=False)


def single_mode_state(model: QGModel, ix: int, iy: int, layer_signs=(1.0, 1.0), amplitude=1e6) -> torch.Tensor:
    p = model.params
    x = torch.arange(p.nx, dtype=torch.float64) * p.dx
    y = torch.arange(p.ny, dtype=torch.float64) * p.dy
    k, l = 2 * math.pi * ix / p.domain_length_m, 2 * math.pi * iy / p.domain_length_m
    psi = amplitude * torch.cos(k * x[None, :] + l * y[:, None])
    psi = torch.stack([s * psi for s in layer_signs])[None]
    q = model.to_grid(model.pv_from_streamfunction(model.to_spectral(psi)))
    return torch.cat((q, torch.zeros(1, 1, p.ny, p.nx, dtype=torch.float64)), dim=1)


@pytest.mark.parametrize(("dt_minutes", "rms_wind"), [(30.0, 5.0), (15.0, 10.0)])
def test_energy_and_enstrophy_conserved_without_forcing_and_dissipation(dt_minutes, rms_wind):
    # Without hyperdiffusion enstrophy piles up at the truncation, where RK4's own damping acts:
    # at dt = 30 min and 10 m/s rms the drift reaches 2e-3, hence dt = 15 min for the strong flow.
    model = unforced_model(dt_minutes=dt_minutes)
    state = random_initial_state(model.params, 2, torch.Generator().manual_seed(0), rms_wind_m_s=rms_wind)
    e0, z0 = model.energy(state), model.enstrophy(state)
    out = model(state, 0.0, n_steps=1000)
    e1, z1 = model.energy(out), model.enstrophy(out)
    assert torch.all((e1 - e0).abs() / e0 < 1e-3)
    assert torch.all((z1 - z0).abs() / z0 < 1e-3)
    # the run is not trivially frozen: the flow evolved
    assert (out - state)[:, :2].abs().max() > 0.1 * state[:, :2].abs().max()


@pytest.mark.parametrize("mode", ["barotropic", "baroclinic"])
def test_rossby_wave_frequency_matches_dispersion_relation(mode):
    model = unforced_model()
    p = model.params
    ix, iy = 3, 2
    signs = (1.0, 1.0) if mode == "barotropic" else (1.0, -1.0)
    state = single_mode_state(model, ix, iy, signs)
    k, l = 2 * math.pi * ix / p.domain_length_m, 2 * math.pi * iy / p.domain_length_m
    k2 = k * k + l * l
    extra = 0.0 if mode == "barotropic" else 2.0 / p.deformation_radius_m**2
    omega = -p.beta * k / (k2 + extra)
    n_steps = 48  # one day
    out = model(state, 0.0, n_steps=n_steps)
    c0 = model.to_spectral(state)[0, 0, iy, ix]
    c1 = model.to_spectral(out)[0, 0, iy, ix]
    t = n_steps * p.dt_seconds
    measured = -float(torch.angle(c1 / c0)) / t
    assert abs(omega * t) < math.pi  # no phase wrapping
    assert measured == pytest.approx(omega, rel=1e-2)
    # and the amplitude is unchanged (no dissipation, linear wave)
    assert float(c1.abs() / c0.abs()) == pytest.approx(1.0, abs=1e-6)


def phillips_growth_rate(p: QGParams, k: float, l: float, shear: float) -> float:
    """Analytic growth rate of the two-layer Phillips problem (equal layers, beta, uniform shear)."""
    f = 1.0 / p.deformation_radius_m**2
    u1, u2 = shear, 0.0
    qy1, qy2 = p.beta + f * shear, p.beta - f * shear
    a = k * k + l * l + f
    d = a * a - f * f
    coeffs = [d, -((u1 + u2) * d - a * (qy1 + qy2)), u1 * u2 * d - a * (u1 * qy2 + u2 * qy1) + qy1 * qy2]
    return k * max(np.roots(coeffs).imag)


def test_phillips_most_unstable_growth_rate():
    params = replace(QGParams(), shear_seasonal_amplitude=0.0)
    model = QGModel(params, forcing=True, drag=False, diffusion=False, moisture=False)
    k0 = 2 * math.pi / params.domain_length_m
    modes = [(ix, iy) for ix in range(1, params.nx // 3 + 1) for iy in range(0, params.ny // 3 + 1)]
    rates = [phillips_growth_rate(params, ix * k0, iy * k0, params.shear_m_s) for ix, iy in modes]
    sigma = max(rates)
    ix, iy = modes[int(np.argmax(rates))]
    assert sigma > 0
    # Infinitesimal broadband noise: the fastest mode's amplitude grows at sigma once its
    # decaying partner has died out; nothing else about the state is assumed.
    state = random_initial_state(params, 1, torch.Generator().manual_seed(1), rms_wind_m_s=1e-6)
    amplitudes = []
    for day in range(20):
        amplitudes.append(float(model.invert(model.to_spectral(state[:, :2]))[0, 0, iy, ix].abs()))
        state = model(state, float(day), 48)
    days = np.arange(len(amplitudes), dtype=float)
    late = days >= 10
    measured = np.polyfit(days[late] * 86400.0, np.log(amplitudes)[late], 1)[0]
    assert measured == pytest.approx(sigma, rel=0.05)
    # the growth is baroclinic: the energy of the whole flow grows too, and stays infinitesimal
    assert float(model.energy(state)) < 1e-6
