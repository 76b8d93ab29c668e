"""Two-layer quasi-geostrophic (Phillips) model with a moisture tracer, in torch.

Doubly periodic beta-plane, pseudo-spectral with 2/3 dealiasing, RK4 in time, scale-selective
hyperdiffusion applied exactly (integrating factor), linear drag on the lower layer. Baroclinic
forcing is an imposed uniform vertical shear ``U1 - U2`` (the mean flow of the channel; the
eddies cannot change it, i.e. infinitely fast relaxation toward the imposed jet) whose strength
follows a seasonal cycle. This is the model family of pyqg and of the QG toy model in
ECMWF's OOPS/JEDI.

Notation (layer j = 1 upper, 2 lower; equal depths; ``F = 1 / Ld**2``):

    q1 = lap(psi1) + F (psi2 - psi1)
    q2 = lap(psi2) + F (psi1 - psi2)
    dq_j/dt + J(psi_j, q_j) + U_j dq_j/dx + Qy_j dpsi_j/dx = - delta_j2 r lap(psi2) + hyperdiffusion
    Qy1 = beta + F (U1 - U2),    Qy2 = beta - F (U1 - U2)

``psi_j`` and ``q_j`` are eddy fields (periodic); the total streamfunction is
``psi_j - U_j (y - y_c)``. The humidity anomaly ``h`` (kg/kg) about a background profile
``q_bg(y)`` that falls linearly northward with gradient ``-G`` obeys

    dh/dt + J(psi2, h) + U2 dh/dx = G v2 - h / tau_h - max(h - h_sat, 0) / tau_c
    h_sat = saturation_deficit + kappa * T'

where ``T' = f0 (psi1 - psi2) / (R ln(p2 / p1))`` is the mid-level temperature anomaly from the
thickness (hydrostatic relation). Condensation removes moisture above saturation, so humidity is
not a function of the streamfunctions.

Prognostic state: ``(batch, 3, ny, nx)`` in grid space, channels ``(q1, q2, h)``; with torch's
transforms (the class's default: the forecast model) the same code runs on CPU and CUDA and is
differentiable end to end; the built-in world steps with numpy's (``transforms="pocketfft"``, CPU
only), which round alike on every x86-64 host.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hloba.world.params import (  # noqa: F401 (re-exported: the world's parameters live there)
    DAYS_PER_YEAR, R_DRY, SECONDS_PER_DAY, TRANSFORMS, QGParams,
)


def seasonal_shear(params: QGParams, day_of_year: torch.Tensor | float) -> torch.Tensor:
    """Imposed vertical shear U1 - U2 (m/s) on a day of year; peaks at ``shear_peak_day_of_year``."""
    doy = torch.as_tensor(day_of_year, dtype=torch.float64)
    phase = 2.0 * math.pi * (doy - params.shear_peak_day_of_year) / DAYS_PER_YEAR
    return params.shear_m_s * (1.0 + params.shear_seasonal_amplitude * torch.cos(phase))


def _host_array(x: torch.Tensor) -> np.ndarray:
    if x.device.type != "cpu" or x.requires_grad:
        raise ValueError(
            f"transforms='pocketfft' works on CPU tensors without gradients (got one on {x.device}, "
            f"requires_grad={x.requires_grad}): use transforms='torch' on a GPU or through autograd"
        )
    return x.numpy()


class QGModel(torch.nn.Module):
    """Spectral operators and time stepping of the two-layer world.

    Switches ``forcing``, ``drag``, ``diffusion`` and ``moisture`` exist for analytic tests; the
    defaults are the full model. Buffers follow ``.to(device)``.
    """

    def __init__(
        self,
        params: QGParams,
        *,
        forcing: bool = True,
        drag: bool = True,
        diffusion: bool = True,
        moisture: bool = True,
        dtype: torch.dtype = torch.float64,
        transforms: str = "torch",
    ) -> None:
        super().__init__()
        if transforms not in TRANSFORMS:
            raise ValueError(f"transforms={transforms!r} is not one of {TRANSFORMS}")
        self.params = params
        self.transforms = transforms
        self.forcing, self.drag, self.diffusion, self.moisture = forcing, drag, diffusion, moisture
        self.dtype = dtype
        p = params
        kx = torch.fft.rfftfreq(p.nx, d=p.dx, dtype=torch.float64) * 2.0 * math.pi
        ky = torch.fft.fftfreq(p.ny, d=p.dy, dtype=torch.float64) * 2.0 * math.pi
        ky, kx = torch.meshgrid(ky, kx, indexing="ij")
        k2 = kx**2 + ky**2
        f = 1.0 / p.deformation_radius_m**2
        det = k2 * (k2 + 2.0 * f)
        inv_det = torch.where(det > 0, 1.0 / torch.where(det > 0, det, 1.0), 0.0)  # mean mode: psi = 0
        # 2/3 rule: keep |index| <= n/3 in both directions
        ix = torch.arange(p.nx // 2 + 1)
        iy = torch.fft.fftfreq(p.ny, d=1.0 / p.ny).abs()
        iy, ix = torch.meshgrid(iy, ix.to(iy.dtype), indexing="ij")
        dealias = ((ix <= p.nx / 3.0) & (iy <= p.ny / 3.0)).to(torch.float64)
        kc = (2.0 * math.pi / p.domain_length_m) * min(p.nx, p.ny) / 3.0
        rate = (k2 / kc**2) ** (p.hyperdiffusion_order // 2) / (p.hyperdiffusion_timescale_hours * 3600.0)
        hyper = torch.exp(-rate * p.dt_seconds)
        y = (torch.arange(p.ny, dtype=torch.float64) + 0.5) * p.dy - 0.5 * p.domain_length_m
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        ikx, iky = 1j * kx, 1j * ky
        a = k2 + f
        cross = torch.full_like(a, -f)
        minv = torch.stack((torch.stack((-a, cross)), torch.stack((cross, -a)))) * inv_det
        m11, m12 = minv[0, 0], minv[0, 1]
        # the grid rows of grid_tendency that derive from the PV (all but q1, q2, h), each
        # from_q1 * q1 + from_q2 * q2 in spectral space
        from_pv = [
            (-iky * m11, -iky * m12), (-iky * m12, -iky * m11), (-iky * m12, -iky * m11),  # u1 u2 u2
            (ikx * m11, ikx * m12), (ikx * m12, ikx * m11), (ikx * m12, ikx * m11),  # v1 v2 v2
            (m11 - m12, m12 - m11),  # psi1 - psi2
        ]
        spectral = {
            # PV -> streamfunction, (2, 2, ny, nkx): psi_i = sum_j minv[i, j] q_j
            "minv": minv,
            "from_q1": torch.stack([row[0] for row in from_pv]),
            "from_q2": torch.stack([row[1] for row in from_pv]),
            # minus the divergence of the (x, y) fluxes, dealiased
            "flux_div_x": -ikx * dealias,
            "flux_div_y": -iky * dealias,
            "ikx": ikx,
            "iky": iky,
        }
        for name, value in spectral.items():
            self.register_buffer(name, value.to(cdtype), persistent=False)
        for name, value in {
            "kx": kx, "ky": ky, "k2": k2, "dealias": dealias, "hyper": hyper, "y_centred": y,
        }.items():
            self.register_buffer(name, value.to(dtype), persistent=False)
        # linear sources of (q1, q2, h) from the grid rows (v1, v2, v2, q1, q2, h, thickness):
        # -Qy1 v1;  -Qy2 v2 - r (q2 - F (psi1 - psi2));  G v2 - h / tau_h, with Qy = beta +- F shear
        drag_rate = 1.0 / (p.drag_timescale_days * SECONDS_PER_DAY) if p.drag_timescale_days > 0 else 0.0
        humidity_gradient = (p.humidity_south_kg_kg - p.humidity_north_kg_kg) / p.domain_length_m
        base = torch.zeros(3, 7, dtype=torch.float64)
        base[0, 0] = base[1, 1] = -p.beta
        if drag:
            base[1, 4], base[1, 6] = -drag_rate, drag_rate * f
        if moisture:
            base[2, 1], base[2, 5] = humidity_gradient, -1.0 / (p.humidity_relaxation_days * SECONDS_PER_DAY)
        per_shear = torch.zeros(3, 7, dtype=torch.float64)
        per_shear[0, 0], per_shear[1, 1] = -f, f
        self.register_buffer("sources_base", base.to(dtype), persistent=False)
        self.register_buffer("sources_per_shear", per_shear.to(dtype), persistent=False)
        # irfft2 of a constant c at the mean mode gives c / (nx ny): the mean winds enter that way
        self.mean_mode_scale = float(p.nx * p.ny)
        self.f = f
        self.drag_rate = drag_rate
        self.humidity_gradient = humidity_gradient
        self.temperature_factor = p.f0 / (R_DRY * math.log(p.lower_level_hpa / p.upper_level_hpa))
        # saturation humidity per unit thickness psi1 - psi2
        self.condensation_coupling = p.saturation_sensitivity_kg_kg_per_k * self.temperature_factor

    # ----- spectral helpers -------------------------------------------------------------------
    def to_spectral(self, x: torch.Tensor) -> torch.Tensor:
        if self.transforms == "pocketfft":
            return torch.from_numpy(np.fft.rfft2(_host_array(x)))
        return torch.fft.rfft2(x)

    def to_grid(self, xh: torch.Tensor) -> torch.Tensor:
        if self.transforms == "pocketfft":
            return torch.from_numpy(np.fft.irfft2(_host_array(xh), s=(self.params.ny, self.params.nx)))
        return torch.fft.irfft2(xh, s=(self.params.ny, self.params.nx))

    def invert(self, qh: torch.Tensor) -> torch.Tensor:
        """PV to streamfunction. ``qh: (batch, 2, ny, nx//2+1)`` complex -> same shape."""
        return (self.minv * qh[:, None]).sum(dim=2)

    def pv_from_streamfunction(self, ph: torch.Tensor) -> torch.Tensor:
        """Streamfunction to PV, the inverse of :meth:`invert` (spectral)."""
        p1, p2 = ph[:, 0], ph[:, 1]
        return torch.stack(
            (-self.k2 * p1 + self.f * (p2 - p1), -self.k2 * p2 + self.f * (p1 - p2)), dim=1
        )

    def mean_winds(self, day_of_year: torch.Tensor | float, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Upper and lower mean zonal winds ``(..., batch)`` from the seasonal shear; ``day_of_year``
        is a scalar, ``(batch,)`` or has leading dimensions before the batch (``(stages, batch)``)."""
        doy = torch.as_tensor(day_of_year, dtype=torch.float64)
        shear = seasonal_shear(self.params, doy) if self.forcing else torch.zeros_like(doy)
        shear = shear.to(self.kx.device, self.dtype)
        shear = torch.broadcast_to(shear, (*shear.shape[:-1], batch) if shear.ndim else (batch,))
        u2 = torch.full_like(shear, self.params.lower_mean_wind_m_s if self.forcing else 0.0)
        return u2 + shear, u2

    # ----- dynamics -----------------------------------------------------------------------------
    def stage_constants(
        self, day_of_year: torch.Tensor | float, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The time-dependent terms of :meth:`grid_tendency` on a day of year (scalar or ``(batch,)``):
        ``sources: (batch, 3, 7)``, the linear sources of (q1, q2, h) from the grid rows
        (v1, v2, v2, q1, q2, h, thickness), and ``mean_winds: (batch, 3)``, (U1, U2, U2) scaled to
        the mean mode of the rows (u1, u2, u2). A leading dimension of ``day_of_year`` (e.g. the
        stages of a step) is kept in front."""
        u1, u2 = self.mean_winds(day_of_year, batch)
        return self._stage_terms(u1, u2)

    def _stage_terms(self, u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shear = (u1 - u2)[..., None, None]
        sources = torch.addcmul(self.sources_base, shear, self.sources_per_shear)
        winds = torch.stack((u1, u2, u2), dim=-1) * self.mean_mode_scale
        return sources, winds

    def tendency(self, sh: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
        """Spectral tendency of ``sh = rfft2(q1, q2, h)``, shape ``(batch, 3, ny, nx//2+1)``.

        ``u1, u2: (batch,)`` are the mean zonal winds of the two layers.
        """
        return self.grid_tendency(sh, *self._stage_terms(u1.to(self.dtype), u2.to(self.dtype)))

    def grid_tendency(self, sh: torch.Tensor, sources: torch.Tensor, mean_winds: torch.Tensor) -> torch.Tensor:
        """The tendency with the nonlinear terms formed on the grid as x and y fluxes, the linear
        ones as grid sources (one matrix product), from one inverse and two forward transforms.

        Grid rows: u1 + U1, u2 + U2, u2 + U2, v1, v2, v2, q1, q2, h, psi1 - psi2.
        The fluxes are ((u_j + U_j) q_j, (u2 + U2) h) and (v_j q_j, v2 h); the sources
        ``-Qy_j v_j``, the drag ``-r lap(psi2) = -r (q2 - F (psi1 - psi2))``, ``G v2 - h / tau_h``
        and minus the condensation. Exact for band-limited fields; ``sources`` and ``mean_winds``
        come from :meth:`stage_constants`.
        """
        p = self.params
        spectral = torch.addcmul(self.from_q1 * sh[:, 0:1], self.from_q2, sh[:, 1:2])
        spectral[:, 0:3, 0, 0] = mean_winds
        grid = self.to_grid(torch.cat((spectral[:, :6], sh, spectral[:, 6:]), dim=1))
        fluxes = grid[:, 0:6].unflatten(1, (2, 3)) * grid[:, None, 6:9]
        linear = self._linear_sources(sources, grid[:, 3:10])
        if self.moisture:
            condensation = torch.add(grid[:, 8], grid[:, 9], alpha=-self.condensation_coupling)
            condensation = condensation.sub_(p.saturation_deficit_kg_kg).relu_()
            linear[:, 2].sub_(condensation, alpha=1.0 / (p.condensation_timescale_hours * 3600.0))
        else:
            fluxes[:, :, 2] = 0.0
        fh = self.to_spectral(fluxes)
        out = self.to_spectral(linear) * self.dealias
        return out.addcmul_(fh[:, 0], self.flux_div_x).addcmul_(fh[:, 1], self.flux_div_y)

    def _linear_sources(self, sources: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``sources (batch, 3, 7)`` times the grid ``rows (batch, 7, ny, nx)``: a matrix product
        (BLAS, rounded per CPU) with torch's transforms, a broadcast sum (torch's own kernels, the
        same bits on AVX2 and AVX-512) with pocketfft's."""
        if self.transforms == "pocketfft":
            return (sources[..., None, None] * rows[:, None]).sum(dim=2)
        return torch.matmul(sources, rows.flatten(2)).unflatten(2, rows.shape[-2:])

    def step_spectral(self, sh: torch.Tensor, day_of_year: torch.Tensor | float) -> torch.Tensor:
        """One RK4 step of length ``params.dt_seconds`` in spectral space."""
        dt = self.params.dt_seconds
        doy = torch.as_tensor(day_of_year, dtype=torch.float64)
        doy = doy if doy.ndim else doy[None]
        stages = torch.stack((doy, doy + 0.5 * dt / SECONDS_PER_DAY, doy + dt / SECONDS_PER_DAY))
        sources, winds = self.stage_constants(stages, sh.shape[0])
        start, middle, end = (sources[0], winds[0]), (sources[1], winds[1]), (sources[2], winds[2])
        k1 = self.grid_tendency(sh, *start)
        k2 = self.grid_tendency(torch.add(sh, k1, alpha=0.5 * dt), *middle)
        k3 = self.grid_tendency(torch.add(sh, k2, alpha=0.5 * dt), *middle)
        k4 = self.grid_tendency(torch.add(sh, k3, alpha=dt), *end)
        out = torch.add(sh, torch.add(torch.add(k1, k4), torch.add(k2, k3), alpha=2.0), alpha=dt / 6.0)
        if self.diffusion:
            out = out * self.hyper
        return out

    def forward(self, state: torch.Tensor, day_of_year: torch.Tensor | float, n_steps: int = 1) -> torch.Tensor:
        """Advance grid-space ``state: (batch, 3, ny, nx)`` by ``n_steps`` time steps."""
        sh = self.to_spectral(state.to(self.dtype)) * self.dealias
        doy = torch.as_tensor(day_of_year, dtype=torch.float64)
        for i in range(n_steps):
            sh = self.step_spectral(sh, doy + i * self.params.dt_seconds / SECONDS_PER_DAY)
        return self.to_grid(sh)

    # ----- diagnostics ----------------------------------------------------------------------------
    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """Domain-mean eddy total energy per unit mass (m2 s-2) ``(batch,)``: kinetic + available potential."""
        ph = self.invert(self.to_spectral(state[:, :2].to(self.dtype)))
        psi = self.to_grid(ph)
        u, v = self.to_grid(-self.iky * ph), self.to_grid(self.ikx * ph)
        ke = 0.5 * (u**2 + v**2).mean(dim=(-2, -1)).sum(dim=1)
        pe = 0.5 * self.f * ((psi[:, 0] - psi[:, 1]) ** 2).mean(dim=(-2, -1))
        return ke + pe

    def enstrophy(self, state: torch.Tensor) -> torch.Tensor:
        """Domain-mean eddy potential enstrophy ``(batch,)``: mean over layers of q**2 / 2."""
        return 0.5 * (state[:, :2].to(self.dtype) ** 2).mean(dim=(-2, -1)).sum(dim=1)

    def streamfunction(self, state: torch.Tensor) -> torch.Tensor:
        """Eddy streamfunction ``(batch, 2, ny, nx)`` of a grid-space state."""
        return self.to_grid(self.invert(self.to_spectral(state[:, :2].to(self.dtype))))

    def velocities(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eddy velocities ``u, v: (batch, 2, ny, nx)``."""
        ph = self.invert(self.to_spectral(state[:, :2].to(self.dtype)))
        return self.to_grid(-self.iky * ph), self.to_grid(self.ikx * ph)


def random_initial_state(
    params: QGParams, batch: int, generator: torch.Generator, rms_wind_m_s: float = 5.0,
    dtype: torch.dtype = torch.float64, transforms: str = "torch",
) -> torch.Tensor:
    """Broadband random eddies with rms velocity ``rms_wind_m_s`` and no humidity anomaly
    (``transforms``: as :class:`QGModel`'s).

    Finite-amplitude broadband noise (rather than an infinitesimal one) keeps pure north-south
    modes from growing without bound during spin-up.
    """
    model = QGModel(params, dtype=dtype, transforms=transforms)
    shape = (batch, 2, params.ny, params.nx // 2 + 1)
    re = torch.randn(shape, generator=generator, dtype=torch.float64)
    im = torch.randn(shape, generator=generator, dtype=torch.float64)
    kmag = model.k2.sqrt()
    k0 = 2.0 * math.pi / params.domain_length_m
    band = ((kmag >= 2 * k0) & (kmag <= min(params.nx, params.ny) / 4 * k0)).to(torch.float64)
    ph = torch.complex(re, im) * band / torch.where(kmag > 0, kmag, 1.0) ** 2
    psi = model.to_grid(ph.to(torch.complex128))
    state = torch.cat((model.to_grid(model.pv_from_streamfunction(model.to_spectral(psi))), torch.zeros(batch, 1, params.ny, params.nx, dtype=torch.float64)), dim=1)
    u, v = model.velocities(state)
    rms = (u**2 + v**2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    state[:, :2] = state[:, :2] * (rms_wind_m_s / rms)
    return state.to(dtype)
