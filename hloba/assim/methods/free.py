"""The free run: no analysis. Observations are checked against the forecast and kept in the
feedback (QC flag 2, not assimilated); the reported variance is the hybrid background variance."""

from __future__ import annotations

from hloba.assim.methods.base import Analysis, Cycle, Method


class Free(Method):
    name = "free"
    assimilates = False

    def analyse(self, c: Cycle) -> Analysis:
        c.lap("o2lnet")
        _, sb2_w = self.hybrid_background_variance(c)
        return self.report(c, sb2_w, sb2_w)
