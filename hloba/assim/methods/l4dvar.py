"""Latent strong-constraint 4D-Var over windows of ``window_hours`` (whole cycle steps of the data).

At each window's first cycle the analysis fits the window's observations through the forecast
model; the window's later cycles are its forecast trajectory (no analysis there). Their
observations are checked against the background trajectory ``M^j(x_b)`` when the window starts:
those decisions are the method's, and the stream's rejection alarm does not judge them. The
feedback's background of those observations is ``H(M^j(x_b))``, the departures the minimisation
fitted (as 4D-Var feedback files report them), and their analysis ``H`` of the fitted trajectory.
"""

from __future__ import annotations

import torch

from hloba.assim.methods.base import Analysis, Cycle, Method
from hloba.assim.var import latent_var, window_observer
from hloba.obs.operator import apply_operator
from hloba.timeaxis import window_cycles


class Latent4DVar(Method):
    name = "l4dvar"
    uses_later_observations = True  # the window's later cycles are fitted at its first

    def __init__(self, models, cfg) -> None:
        super().__init__(models, cfg)
        self._window = window_cycles(cfg.window_hours, models.interval)
        self._decided: dict[int, torch.Tensor] = {}  # QC of the current window's later cycles
        self._background: dict[int, torch.Tensor] = {}  # and H(M^j(x_b)) at their observations

    @property
    def window(self) -> int:
        return self._window

    def qc_decisions(self, k: int) -> torch.Tensor | None:
        return self._decided.pop(k, None)

    def decided_background(self, k: int) -> torch.Tensor | None:
        return self._background.pop(k, None)

    def analyse(self, c: Cycle) -> Analysis:
        c.lap("o2lnet")
        sb2_w = self.static_background_variance()
        if c.k % self._window:
            return self.report(c, sb2_w, sb2_w.clone())
        var = self._fit_window(c, min(c.k + self._window, len(c.times)), sb2_w)
        if var is None:
            return self.report(c, sb2_w, sb2_w.clone())
        return self.report(c, sb2_w, sb2_w.clone(), z_a=var.z_a.float(), iterations=var.iterations)

    def _fit_window(self, c: Cycle, end: int, sigma_b2: torch.Tensor):
        """The minimisation over cycles ``c.k..end-1`` (``None`` without any used observation);
        records the QC decisions of the later cycles."""
        m, cfg, obs, times = self.models, self.cfg, c.obs, c.times
        operators, ys, r2s = [], [], []
        self._decided, self._background = {}, {}
        x = c.x_b
        for j in range(c.k, end):
            if j == c.k:
                sj, keep, wj = c.s, c.ok, c.weights
            else:
                x = m.forecast.step(x, [times[j - 1]], 1).double()
                sj, wj, hx, reject = c.check_later(x, j, cfg.qc_threshold)
                self._decided[j], keep = reject, ~reject & ~obs.withheld[sj]
                self._background[j] = hx
            if bool(keep.any()):
                w_used = wj.select(keep)
                operators.append(lambda xx, w_used=w_used: apply_operator(xx, w_used)[0])
                ys.append(obs.value[sj][keep])
                r2s.append(obs.r2[sj][keep])
            else:
                operators.append(None)
        if not ys:
            return None
        observe = window_observer(
            lambda z: m.normalizer.destandardize(m.autoencoder.decode(z.float()), [times[c.k]]).double(),
            lambda xx, t: m.forecast.step(xx, [t], 1), operators, times[c.k:end],
        )
        return latent_var(c.z_b.double(), sigma_b2.double(), observe, torch.cat(ys), torch.cat(r2s),
                          cfg.var_tolerance, cfg.var_max_iterations)
