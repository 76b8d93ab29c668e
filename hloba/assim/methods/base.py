"""The protocol between the cycle loop and an analysis method.

At each cycle the loop forecasts, encodes the members, checks the observations against the
background, and hands the method a :class:`Cycle`. The method returns an :class:`Analysis`: a
latent analysis (decoded by the loop), a model-space analysis (encoded by the loop), or neither
(the forecast goes on), with the latent variances it reports. A method keeps its own state across
cycles (:meth:`Method.state`, saved in the stream's checkpoints), may decide the quality control of
later cycles itself (:meth:`Method.qc_decisions`: latent 4D-Var checks a window's observations
against the window's background trajectory, which the feedback then records as their background,
:meth:`Method.decided_background`) and says at which cycles a checkpoint may be taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch

from hloba.assim.catalog import METHODS
from hloba.assim.cycle import ensemble_variance, mode_groups
from hloba.assim.update import first_guess_check
from hloba.obs.operator import apply_operator
from hloba.obs.withhold import QC_USED

if TYPE_CHECKING:
    from hloba.assim.models import StreamModels
    from hloba.assim.observations import StreamObservations
    from hloba.obs.operator import InterpolationWeights


class MethodError(RuntimeError):
    """A method's inputs do not fit it (a missing covariance, tuning of another shape)."""


@dataclass
class Cycle:
    """What a method sees at cycle ``k``."""

    k: int
    times: pd.DatetimeIndex
    zs: torch.Tensor  # (members, n) encoded forecasts, the background first
    x_b: torch.Tensor  # (1, C, ny, nx) physical background
    obs: "StreamObservations"
    s: slice  # this cycle's rows of ``obs``
    ok: torch.Tensor  # bool, rows used (passed the check, not withheld)
    weights: "InterpolationWeights"  # of this cycle's rows
    hx_b: torch.Tensor  # background at this cycle's observations
    b2_channel: torch.Tensor  # (C,) background error variance at the observations, per channel
    cold_first: bool  # first cycle of a cold start from climatology: no background worth weighing
    lap: Callable[[str], None]  # the stream's stage clock
    qc: torch.Tensor | None = None  # (rows of obs,) int8: the stream's qc codes, set for cycles before k
    # M(x_b), the background forecast to cycle k + 1, where the stream has run it already (as the
    # first of the next cycle's lagged members)
    x_b_next: torch.Tensor | None = None
    # the state the background was forecast from (the previous cycle's analysis; None at the first)
    x_prev: torch.Tensor | None = None

    @property
    def time(self) -> pd.Timestamp:
        return self.times[self.k]

    @property
    def z_b(self) -> torch.Tensor:
        return self.zs[:1]

    @property
    def n_used(self) -> int:
        return int(self.ok.sum())

    def used(self, k: int) -> tuple[slice, torch.Tensor]:
        """Rows of cycle ``k``'s observations (``k <= self.k``) and which of them were assimilated."""
        if k == self.k:
            return self.s, self.ok
        if k > self.k or self.qc is None:
            raise ValueError(f"cycle {self.k} knows the decisions of earlier cycles only, not of cycle {k}")
        s = self.obs.cycle(k)
        return s, (self.qc[s] == QC_USED).to(self.ok.device)

    def check_later(self, x: torch.Tensor, k: int, kappa: float):
        """First-guess check of cycle ``k``'s observations (``k > self.k``) against ``x``, the
        background forecast to cycle ``k`` (a method that reads later cycles: latent 4D-Var's window,
        HLOBA's lead). Returns their rows, interpolation weights, ``H(x)`` there and the rejections."""
        obs = self.obs
        s = obs.cycle(k)
        weights = obs.weights.select(s)
        hx = apply_operator(x, weights)[0]
        reject = first_guess_check(obs.value[s], hx, obs.r2[s], self.b2_channel[obs.channel[s]], kappa)
        return s, weights, hx, reject


@dataclass
class Analysis:
    """One cycle's analysis and the latent variances reported for it.

    ``z_a`` (latent, decoded by the loop) or ``x_a`` (physical, encoded by the loop), or both (the
    latent record and the state the stream forecasts from, made by the method), or neither (no
    analysis: the forecast goes on). Variances ``*_update`` are in the method's update
    coordinates (the stream maps them to latent coordinates for all cycles at once at its end:
    :func:`hloba.assim.cycle.latent_variances`), ``sigma_o2`` is latent; ``sigma_a2_raw_mean`` is
    the update's own mean analysis variance before any calibration factor."""

    z_o: torch.Tensor
    sigma_o2: torch.Tensor
    sigma_b2_update: torch.Tensor
    sigma_a2_update: torch.Tensor
    innovation: torch.Tensor  # z_o - z_b in update coordinates where z_o is informative
    sigma_b2_mean: float
    sigma_o2_mean: float
    sigma_a2_raw_mean: float
    z_a: torch.Tensor | None = None
    x_a: torch.Tensor | None = None
    iterations: int = 0
    # standardised (1, C, ny, nx): the part of x_a beyond the latent record's weighted decoding
    # (hloba's weighted_state: blended; hloba.latent.kept_background)
    kept: torch.Tensor | None = None


def _finite_mean(x: torch.Tensor) -> float:
    fin = torch.isfinite(x)
    return x[fin].mean().item() if bool(fin.any()) else float("inf")


class Method:
    """Base of the analysis methods: the hybrid background variance, the tuned factors, and the
    bookkeeping of what a method reports. Subclasses set the class attributes and :meth:`analyse`."""

    name = ""
    assimilates = True  # False: observations are checked and kept in the feedback, never used
    rotates = False  # updates in the calibration's decorrelating coordinates (assimilation.rotation)
    # tuned, needs_static_covariance, own_settings: the method's entry of hloba.assim.catalog.METHODS
    # (__init_subclass__), which the workflow reads without importing torch
    tuned = False
    needs_static_covariance = False
    own_settings: tuple[str, ...] = ()
    lagged_members = False  # forecasts the time-lagged members alongside the background (if b != 0)
    uses_later_observations = False  # an analysis reads observations after its time (a smoother)
    lead = 0  # cycles after the analysis time whose observations an analysis reads (outside a window)
    recorder = None  # set by run_stream: a method that records its cycles calls it (HLOBA, o2lnet.refine)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        traits = METHODS.get(cls.name)
        if traits is not None:
            cls.tuned, cls.needs_static_covariance = traits.tuned, traits.needs_static_covariance
            cls.own_settings = traits.own_settings

    def __init__(self, models: "StreamModels", cfg) -> None:
        self.models, self.cfg = models, cfg
        dev, n = models.device, int(models.sigma_clim2.numel())
        self.groups = mode_groups(n, cfg.inflation_groups, dev)
        self.n_groups = int(self.groups.max()) + 1
        self.correction = self._per_group(models.inflation_correction, "inflation_correction")
        self.alpha = self._per_group(models.analysis_variance_factor, "analysis_variance_factor")[self.groups]
        self.obs_factor = self._per_group(models.observation_variance_factor, "observation_variance_factor")[self.groups]
        self.rho = None if models.error_correlation is None else (
            self._per_group(models.error_correlation, "error_correlation")[self.groups].float())
        self.inflation = torch.ones(self.n_groups, dtype=torch.float64, device=dev)

    @property
    def members(self) -> int:
        """The forecasts run each cycle: the background, and the time-lagged members when the
        method weighs them (``lagged_members`` and a hybrid weight ``b`` that is not 0)."""
        weighed = self.lagged_members and self.models.hybrid_b != 0
        return self.models.members if weighed else 1

    @classmethod
    def reads_later_observations(cls, models: "StreamModels") -> bool:
        """Whether the method's analyses read observations after their time with these models (a
        smoother: latent 4D-Var, HLOBA with an O2Lnet window that reaches later cycles)."""
        return cls.uses_later_observations

    @property
    def window(self) -> int:
        """Cycles per analysis window: checkpoints are taken at window boundaries only."""
        return 1

    def _per_group(self, values: torch.Tensor | None, name: str) -> torch.Tensor:
        dev = self.models.device
        if values is None:
            return torch.ones(self.n_groups, dtype=torch.float64, device=dev)
        if values.numel() != self.n_groups:
            raise MethodError(f"the stream tuning has {values.numel()} {name} groups but assimilation.inflation_groups "
                              f"gives {self.n_groups}: rerun rule tune_stream")
        return values.to(dev, torch.float64)

    def state(self) -> dict:
        return {"inflation": self.inflation.cpu()}

    def load_state(self, state: dict) -> None:
        self.inflation = state["inflation"].to(self.models.device)

    def qc_decisions(self, k: int) -> torch.Tensor | None:
        """The rejections of cycle ``k`` when the method decided them earlier (else the loop checks)."""
        return None

    def decided_background(self, k: int) -> torch.Tensor | None:
        """``H(x_b)`` at cycle ``k``'s observations when the method checked and fitted them against
        a background of its own (latent 4D-Var: the window's background trajectory); the feedback
        file records it as the background. ``None``: the cycle's forecast is the background."""
        return None

    def analysis_weights(self) -> torch.Tensor | None:
        """Per channel ``g`` where every recorded analysis decodes as ``D(z_b) + g (D(z_a) - D(z_b))``
        (the latent file's :data:`hloba.latent.WEIGHTS`); ``None``: it decodes as ``D(z_a)``."""
        return None

    def analyse(self, c: Cycle) -> Analysis:
        raise NotImplementedError

    # -- shared pieces -------------------------------------------------------------------------
    def hybrid_background_variance(self, c: Cycle, ws: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``a sigma_clim2 + b s2`` in update coordinates, and that times the inflation ``lambda``
        (``inf`` on a cold first cycle); ``s2`` from the lagged members once there are enough of
        them, else the calibration's mean. ``ws``: the members in update coordinates, when the
        caller has them already."""
        m = self.models
        zs = c.zs
        if zs.shape[0] >= max(self.members, 2):
            s2_w = ensemble_variance(m.space.forward(zs) if ws is None else ws)
        else:
            s2_w = m.s2_fallback[None]
        sb2_raw = m.hybrid_a * m.sigma_clim2[None] + m.hybrid_b * s2_w
        if c.cold_first:
            return sb2_raw, torch.full_like(sb2_raw, float("inf"))
        return sb2_raw, (self.inflation * self.correction)[self.groups].to(sb2_raw.dtype) * sb2_raw

    def static_background_variance(self) -> torch.Tensor:
        """The variational and OI baselines' reported variance: ``var_b_scale * sigma_clim2``."""
        return self.cfg.var_b_scale * self.models.sigma_clim2[None].clone()

    def report(self, c: Cycle, sb2_w: torch.Tensor, sa2_w: torch.Tensor, *, z_o=None, sigma_o2=None, so2_w=None,
               w_o=None, w_b=None, z_a=None, x_a=None, iterations: int = 0) -> Analysis:
        """The :class:`Analysis` of an update with background/analysis variances ``sb2_w``/``sa2_w``
        (update coordinates); without an observation estimate ``z_o`` it is uninformative (``inf``).
        ``w_o, so2_w``: the estimate the update weighed, in update coordinates (default ``z_o``'s);
        ``w_b``: the background in update coordinates, when the caller has it."""
        space, z_b = self.models.space, c.z_b
        if z_o is None:
            z_o, sigma_o2 = torch.zeros_like(z_b), torch.full_like(z_b, float("inf"))
            so2_w = sigma_o2
        w_o = space.forward(z_o) if w_o is None else w_o
        innovation = (w_o - (space.forward(z_b) if w_b is None else w_b))[torch.isfinite(so2_w)]
        sa2_reported = sa2_w * self.alpha.to(sa2_w.dtype)
        return Analysis(
            z_o=z_o, sigma_o2=sigma_o2, sigma_b2_update=sb2_w, sigma_a2_update=sa2_reported, innovation=innovation,
            sigma_b2_mean=_finite_mean(sb2_w), sigma_o2_mean=_finite_mean(so2_w), sigma_a2_raw_mean=sa2_w.mean().item(),
            z_a=z_a, x_a=x_a, iterations=iterations,
        )
