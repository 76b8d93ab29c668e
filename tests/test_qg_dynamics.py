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


def equation_tendency(model: QGModel, sh: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """The module docstring's equations term by term, each derivative spectral (independent of the
    grid-flux form the model uses)."""
    p, ikx, iky = model.params, model.ikx, model.iky
    grid = model.to_grid
    qh, hh = sh[:, :2], sh[:, 2:3]
    ph = model.invert(qh)
    u, v, h = grid(-iky * ph), grid(ikx * ph), grid(hh)
    jacobian = model.to_spectral(u * grid(ikx * qh) + v * grid(iky * qh))
    umean = torch.stack((u1, u2), dim=1)[:, :, None, None]
    qy = torch.stack((p.beta + model.f * (u1 - u2), p.beta - model.f * (u1 - u2)), dim=1)[:, :, None, None]
    dq = -jacobian - ikx * (umean * qh + qy * ph)
    dq[:, 1] += model.drag_rate * model.k2 * ph[:, 1]
    thickness = grid(ph[:, :1] - ph[:, 1:])
    h_sat = p.saturation_deficit_kg_kg + p.saturation_sensitivity_kg_kg_per_k * model.temperature_factor * thickness
    condensation = torch.relu(h - h_sat) / (p.condensation_timescale_hours * 3600.0)
    dh = (-model.to_spectral(u[:, 1:2] * grid(ikx * hh) + v[:, 1:2] * grid(iky * hh) + condensation)
          - ikx * (umean[:, 1:2] * hh - model.humidity_gradient * ph[:, 1:2])
          - hh / (p.humidity_relaxation_days * 86400.0))
    return torch.cat((dq, dh), dim=1) * model.dealias


@pytest.fixture(scope="module")
def developed() -> torch.Tensor:
    """Three members of the default world 20 days after broadband noise: a developed turbulent state
    with humidity, spun up once for the tests below that need one."""
    model = QGModel(QGParams())
    state = model(random_initial_state(model.params, 3, torch.Generator().manual_seed(3)), 0.0, 48 * 20)
    assert bool((state[:, 2].abs().amax(dim=(-2, -1)) > 1e-4).all())  # each member's humidity has developed
    return state


def test_the_tendency_is_the_equations(developed):
    """The grid-flux tendency (fluxes in divergence form, linear terms through the grid) equals the
    advective form evaluated term by term, on a developed turbulent state with humidity."""
    model, state = QGModel(QGParams()), developed[:2]
    sh = model.to_spectral(state) * model.dealias
    u1, u2 = torch.tensor([9.0, 6.0], dtype=torch.float64), torch.tensor([0.5, -1.0], dtype=torch.float64)
    expected = equation_tendency(model, sh, u1, u2)
    got = model.tendency(sh, u1, u2)
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-10


def test_float32_tendency_is_the_float64_one(developed):
    """The world can step in float32 (world.precision): its tendency is the float64 one to single
    precision on a developed state with humidity."""
    params = QGParams()
    model64, model32 = QGModel(params), QGModel(params, dtype=torch.float32)
    state = developed[:1]
    u1, u2 = torch.tensor([8.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    t64 = model64.tendency(model64.to_spectral(state) * model64.dealias, u1, u2)
    t32 = model32.tendency(model32.to_spectral(state.float()) * model32.dealias, u1, u2)
    assert t32.dtype == torch.complex64
    assert float((t32.to(torch.complex128) - t64).abs().max() / t64.abs().max()) < 1e-5


def test_members_on_different_days_step_as_if_alone(developed):
    """step_spectral takes one day of year per member (the forecast model's lagged members): each
    member of the batch evolves exactly as it does alone with its own day."""
    model, state = QGModel(QGParams()), developed
    days = torch.tensor([10.0, 100.0, 200.0], dtype=torch.float64)
    together = model(state, days, 12)
    for i, day in enumerate(days.tolist()):
        alone = model(state[i:i + 1], day, 12)
        assert torch.allclose(together[i:i + 1], alone, rtol=0, atol=1e-12 * float(alone.abs().max()))
    # the days matter: the seasonal shear differs between January and July
    assert float((model(state[:1], 200.0, 12) - together[:1]).abs().max()) > 1e-6 * float(together.abs().max())


def test_pocketfft_transforms_step_the_same_equations(developed):
    """world.transforms: pocketfft (numpy's FFTs, the broadcast sum for the linear sources) gives
    torch's tendency to rounding on a developed state with humidity, and its step; it refuses a GPU
    tensor or one under autograd with the way out."""
    params = QGParams()
    model, portable = QGModel(params), QGModel(params, transforms="pocketfft")
    state = developed[:2]
    sh = model.to_spectral(state) * model.dealias
    assert float((portable.to_spectral(state) * model.dealias - sh).abs().max() / sh.abs().max()) < 1e-14
    u1, u2 = torch.tensor([9.0, 6.0], dtype=torch.float64), torch.tensor([0.5, -1.0], dtype=torch.float64)
    expected, got = model.tendency(sh, u1, u2), portable.tendency(sh, u1, u2)
    assert got.dtype == expected.dtype and float((got - expected).abs().max() / expected.abs().max()) < 1e-12
    stepped = portable(state, 40.0, 6)
    assert float((stepped - model(state, 40.0, 6)).abs().max() / stepped.abs().max()) < 1e-11
    with pytest.raises(ValueError, match="transforms='pocketfft' works on CPU tensors without gradients.*use transforms='torch'"):
        portable.to_spectral(state.clone().requires_grad_())
    with pytest.raises(ValueError, match=r"transforms='mkl' is not one of \('torch', 'pocketfft'\)"):
        QGModel(params, transforms="mkl")
