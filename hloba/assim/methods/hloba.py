"""HLOBA: O2Lnet's latent estimate from the cycle's observations, weighed element-wise against the
hybrid (static + time-lagged ensemble) background variance, with the inflation adapted online.

An O2Lnet trained on a window of cycles (``o2lnet.window_hours``: slots ``(1 - n, ..., 0)``) reads
the observations that the stream assimilated at the window's earlier cycles besides this cycle's.
A window that reaches ``m`` cycles past the analysis time (``o2lnet.window_lead_hours``: slots
``(1 - n + m, ..., m)``) makes HLOBA a fixed-lag smoother: the later cycles' observations are
checked against the background's forecast ``M^j(x_b)`` (as latent 4D-Var checks its window's;
``M(x_b)`` is the stream's forecast of the next cycle's lagged member where it runs lagged members:
``Cycle.x_b_next``), or, with ``assimilation.lead_guess``, against the background itself
(``persistence``) or carried on in time from the previous analysis (``extrapolated``:
:func:`hloba.assim.update.time_extrapolation`), which run no forecast;
those decisions serve O2Lnet's window only, and each cycle is checked again by the stream against
its own background when it comes.

``assimilation.update`` chooses what is weighed: O2Lnet's posterior as it comes (``posterior``,
the paper's form) or its likelihood, the posterior with O2Lnet's climatological prior removed
(``likelihood``; :func:`hloba.assim.update.observation_estimate`). With
``assimilation.decoded_increment: weighted`` the analysis is the decoded background plus the decoded
increment weighted per channel (weights fitted by rule tune_stream; :meth:`Hloba.weighted_analysis`):
with ``assimilation.weighted_state: combined`` the stream cycles from it and the latent file keeps
``z_b``, ``z_a`` and the weights, from which the archive decodes the same state; ``projected``
encodes it again and cycles from the decoding; ``incremental`` adds the weighted decoded increment to
the background itself; ``blended`` keeps a tuned part of what the autoencoder cannot represent of
the background, which the latent file keeps too. ``full`` is the paper's ``D(z_a)``. O2Lnet's pass
runs in ``assimilation.o2lnet_precision`` (bfloat16 where the hardware has it, as it was trained:
:func:`hloba.models.o2lnet.inference_pass`)."""

from __future__ import annotations

import torch

from hloba.assim.cycle import inflation_estimate, smooth_inflation
from hloba.assim.methods.base import Analysis, Cycle, Method, MethodError
from hloba.assim.update import (
    check_update_inputs, correlated_update, hybrid_update, observation_estimate, time_extrapolation,
)
from hloba.latent import incremental_state, kept_background, weighted_increment
from hloba.models.o2lnet import inference_pass, render_observations


def o2lnet_slots(models) -> tuple[int, ...]:
    """The cycle offsets of O2Lnet's window (``(0,)``: the analysis time's observations only)."""
    return tuple(getattr(getattr(models.o2lnet, "cfg", None), "slots", (0,)))


class Hloba(Method):
    name = "hloba"
    rotates = True
    lagged_members = True

    def __init__(self, models, cfg) -> None:
        super().__init__(models, cfg)
        self.slots = o2lnet_slots(models)
        self.lead = max(0, max(self.slots))  # cycles after the analysis time that the window reaches
        self._used: dict[int, tuple[torch.Tensor, ...]] = {}  # cycle -> its used observations
        self.o2lnet_pass = inference_pass(models.o2lnet, models.o2lnet_dtype)
        try:  # before the first cycle, not at it
            check_update_inputs(cfg.update, models.prior_mean, models.prior_var)
        except ValueError as err:
            raise MethodError(str(err)) from None

    @classmethod
    def reads_later_observations(cls, models) -> bool:
        return max(o2lnet_slots(models)) > 0

    def later_observations(self, c: Cycle) -> dict[int, tuple[torch.Tensor, ...]]:
        """``channel, row, col, value`` of the observations of cycles ``k + 1 .. k + lead`` (those
        the stream has) that pass the first-guess check against the lead's guess of the state there
        (``assimilation.lead_guess``: the background's forecast ``M^j(x_b)``, or without a forecast);
        withheld ones are never used, and nothing is rejected on a cold first cycle."""
        obs, out = c.obs, {}
        last = min(c.k + self.lead, len(c.times) - 1)
        if all(obs.cycle(k).stop == obs.cycle(k).start for k in range(c.k + 1, last + 1)):
            return out
        x = c.x_b
        for k in range(c.k + 1, last + 1):
            x = self.lead_state(c, k, x, self.cfg.lead_guess)
            s = obs.cycle(k)
            if c.cold_first:
                reject = torch.zeros(s.stop - s.start, dtype=torch.bool, device=obs.value.device)
            else:
                reject = c.check_later(x, k, self.cfg.qc_threshold)[3]
            used = ~reject & ~obs.withheld[s]
            out[k] = (obs.channel[s][used], obs.row[s][used], obs.col[s][used], obs.value_std[s][used])
        return out

    def lead_state(self, c: Cycle, k: int, x: torch.Tensor, guess: str) -> torch.Tensor:
        """The state at later cycle ``k`` that its observations are checked against, ``x`` the one
        at cycle ``k - 1`` (``c.x_b`` at the analysis time): ``M(x)`` (``forecast``; the stream's
        own forecast of its lagged members where it has one), the background held (``persistence``)
        or carried on in time from the previous analysis (``extrapolated``), which run no forecast."""
        if guess != "forecast":
            return time_extrapolation(c.x_b, c.x_prev if guess == "extrapolated" else None, k - c.k)
        if k == c.k + 1 and c.x_b_next is not None:
            return c.x_b_next
        return self.models.forecast.step(x, [c.times[k - 1]], 1).double()

    def window_observations(self, c: Cycle) -> tuple[torch.Tensor, ...]:
        """``channel, row, col, value`` of the used observations of O2Lnet's slots (cycles before the
        stream's first and after its last contribute none); slot ``j``'s channels are offset by
        ``j * C``. Later cycles' observations (a window with a lead) are :meth:`later_observations`.

        Each earlier cycle's used observations are gathered once and kept while a later window reads
        them (after a resume they are gathered again from the stream's qc codes: the same rows)."""
        C = len(self.models.channels)
        parts = []
        later = self.later_observations(c) if self.lead else {}
        for j, offset in enumerate(self.slots):
            k = c.k + offset
            if k in later:
                channel, row, col, value = later[k]
                parts.append((channel + j * C, row, col, value))
            elif 0 <= k <= c.k:
                if k not in self._used:
                    s, used = c.used(k)
                    o = c.obs
                    self._used[k] = (o.channel[s][used], o.row[s][used], o.col[s][used], o.value_std[s][used])
                channel, row, col, value = self._used[k]
                parts.append((channel + j * C, row, col, value))
        for k in [k for k in self._used if k <= c.k + min(self.slots)]:
            del self._used[k]  # no later window reads it
        return tuple(torch.cat(x) for x in zip(*parts))

    def observation_estimate(self, c: Cycle) -> tuple[torch.Tensor, torch.Tensor]:
        """O2Lnet's ``(z_o, sigma_o2)`` from the window's used observations (``inf`` without any)."""
        z_b = c.z_b
        if c.n_used == 0:  # nothing new: the earlier slots' observations are already in the background
            return torch.zeros_like(z_b), torch.full_like(z_b, float("inf"))
        m = self.models
        (ny, nx), C = m.grid.shape, len(m.channels)
        channel, row, col, value = self.window_observations(c)
        rendered = render_observations(torch.zeros(len(value), dtype=torch.long, device=m.device), channel, row,
                                       col, value, 1, C * len(self.slots), ny, nx)
        z_o, logvar = self.o2lnet_pass(rendered)
        self.last_window = (channel, row, col, value)  # what a recorder records
        return z_o, logvar.exp()

    def analyse(self, c: Cycle) -> Analysis:
        m, cfg = self.models, self.cfg
        z_o, sigma_o2 = self.observation_estimate(c)
        c.lap("o2lnet")
        # the members (background first) and the estimate in update coordinates: one product, so
        # that the rotation is read once (the update's cost is reading V, not multiplying by it)
        rotated = m.space.forward(torch.cat((c.zs, z_o.to(c.zs.dtype)))) if c.n_used else m.space.forward(c.zs)
        ws, w_b = rotated[: c.zs.shape[0]], rotated[:1]
        w_o, so2_w = observation_estimate(cfg.update, rotated[-1:] if c.n_used else z_o,
                                          m.space.forward_variance(sigma_o2) if c.n_used else sigma_o2,
                                          m.prior_mean, m.prior_var)
        so2_w = so2_w * self.obs_factor.to(so2_w.dtype)  # ones unless tune_stream calibrated it
        sb2_raw, sb2_w = self.hybrid_background_variance(c, ws)
        if self.recorder is not None and c.n_used:  # o2lnet.refine: what O2Lnet read and the update weighed
            self.recorder(c, self.last_window, w_b, sb2_w)
        if self.rho is None:
            w_a, sa2_w = hybrid_update(w_b, sb2_w, w_o, so2_w)
        else:
            w_a, sa2_w = correlated_update(w_b, sb2_w, w_o, so2_w, self.rho, cfg.correlated_gain)
        if cfg.adaptive_inflation and not c.cold_first and c.n_used:
            est = inflation_estimate(w_o - w_b, sb2_raw, so2_w, self.groups, self.n_groups)
            self.inflation = smooth_inflation(self.inflation, est, cfg.inflation_smoothing, cfg.inflation_min,
                                              cfg.inflation_max)
        z_a, x_a, kept = m.space.backward(w_a), None, None
        if self.analysis_weights() is not None or (m.increment_weights is not None and c.n_used and not c.cold_first):
            keeps = cfg.weighted_state in ("incremental", "blended")  # the background's own part
            x_b = m.normalizer.standardize(c.x_b, [c.time]) if keeps else None
            x_w, z_a, kept = self.weighted_analysis(c.z_b, z_a, x_b)
            if cfg.weighted_state != "projected":  # the stream forecasts from x_w, not from D(z_a)
                x_a = m.normalizer.destandardize(x_w, [c.time])
        a = self.report(c, sb2_w, sa2_w, z_o=z_o, sigma_o2=sigma_o2, so2_w=so2_w, w_o=w_o, w_b=w_b, z_a=z_a, x_a=x_a)
        a.kept = kept
        return a

    def analysis_weights(self) -> torch.Tensor | None:
        """The tuned weights where every cycle's analysis is ``D(z_b) + g (D(z_a) - D(z_b))``
        (``weighted_state: combined``): then the latent file's ``z_b``, ``z_a`` and weights decode to
        the stream's state at each cycle, cold or unobserved ones included."""
        if self.cfg.weighted_state in ("combined", "blended"):
            return self.models.increment_weights
        return None

    def weighted_analysis(self, z_b: torch.Tensor, z_a: torch.Tensor, x_b: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``x_w = D(z_b) + g (D(z_a) - D(z_b))`` (standardised) and its latent record, ``g`` the
        tuned weight of each channel's decoded increment (:func:`hloba.latent.weighted_increment`;
        standardised space, where it is the same combination as in physical units).
        With ``assimilation.weighted_state: combined`` the stream forecasts from ``x_w`` and the
        record is ``z_a`` itself: the archive decodes ``x_w`` from it, ``z_b`` and the weights (no
        encoding in the cycle). With ``projected`` the record is ``E(x_w)``, which the stream
        decodes, so that its forecast starts from what the archive decodes. Given the standardised
        background ``x_b`` (``incremental``), ``x_w = x_b + g (D(z_a) - D(z_b))``
        (:func:`hloba.latent.incremental_state`), which the stream forecasts from; its record is
        ``E(x_w)``. With ``blended``, ``x_w = x_b + h (D(z_b) - x_b) + g (D(z_a) - D(z_b))``
        (:func:`hloba.latent.kept_background`, ``h`` the tuned weight of the autoencoder's change to the
        background), recorded as ``combined`` is with the third value, the kept part
        ``(1 - h) (x_b - D(z_b))`` that the archive adds (``None`` for the other states).
        ``projected`` and ``incremental`` take the whole increment on a cold first cycle (the weights
        are fitted to cycling backgrounds); ``combined`` and ``blended`` weigh every cycle alike."""
        ae, g = self.models.autoencoder, self.models.increment_weights
        decoded = ae.decode(torch.cat((z_b, z_a.to(z_b.dtype))))
        state = self.cfg.weighted_state
        if x_b is None:
            x_w = weighted_increment(decoded[:1], decoded[1:], g)
        elif state == "blended":
            kept = kept_background(x_b, decoded[:1], self.models.projection_weights)
            return weighted_increment(decoded[:1], decoded[1:], g) + kept, z_a, kept
        else:
            x_w = incremental_state(x_b, decoded[:1], decoded[1:], g)
        if state == "combined":
            return x_w, z_a, None
        return x_w, ae.encode(x_w.to(decoded.dtype)), None
