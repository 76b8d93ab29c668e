"""Latent 3D-Var: ``min_z |z - z_b|^2_B + |y - H(D(z))|^2_R`` with the static latent
``B = var_b_scale * sigma_clim2`` (the background's time-lagged spread is not used)."""

from __future__ import annotations

from hloba.assim.methods.base import Analysis, Cycle, Method
from hloba.assim.var import latent_var
from hloba.obs.operator import apply_operator


class Latent3DVar(Method):
    name = "l3dvar"

    def analyse(self, c: Cycle) -> Analysis:
        c.lap("o2lnet")
        sb2_w = self.static_background_variance()
        if not c.n_used:
            return self.report(c, sb2_w, sb2_w.clone())
        m, cfg, ok, s = self.models, self.cfg, c.ok, c.s
        w_ok = c.weights.select(ok)
        var = latent_var(
            c.z_b.double(), sb2_w.double(),
            lambda z: apply_operator(m.normalizer.destandardize(m.autoencoder.decode(z.float()), [c.time]), w_ok)[0],
            c.obs.value[s][ok], c.obs.r2[s][ok], cfg.var_tolerance, cfg.var_max_iterations,
        )
        return self.report(c, sb2_w, sb2_w.clone(), z_a=var.z_a.float(), iterations=var.iterations)
