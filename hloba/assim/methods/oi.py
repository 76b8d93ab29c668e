"""Model-space optimal interpolation with the static NMC covariance of rule oi_covariance; its
latent record is the encoded analysis ``E(x_a)``."""

from __future__ import annotations

from hloba.assim.methods.base import Analysis, Cycle, Method, MethodError
from hloba.assim.oi import optimal_interpolation


class OptimalInterpolation(Method):
    name = "oi"

    def __init__(self, models, cfg) -> None:
        super().__init__(models, cfg)
        if models.oi is None:
            raise MethodError("method oi needs the static covariance of rule oi_covariance (oi_covariance=...)")

    def analyse(self, c: Cycle) -> Analysis:
        c.lap("o2lnet")
        sb2_w = self.static_background_variance()
        if not c.n_used:
            return self.report(c, sb2_w, sb2_w.clone())
        ok, s = c.ok, c.s
        x_a = optimal_interpolation(c.x_b[0], c.obs.value[s][ok], c.obs.r2[s][ok], c.weights.select(ok),
                                    self.models.oi, c.hx_b[ok])[None]
        return self.report(c, sb2_w, sb2_w.clone(), x_a=x_a)
