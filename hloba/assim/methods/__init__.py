"""The analysis methods behind one protocol (:mod:`hloba.assim.methods.base`), one module each.

Adding a method is one module, one entry of :data:`REGISTRY` and its traits in
:data:`hloba.assim.catalog.METHODS` (what the workflow plans with); the cycle loop names none.
"""

from __future__ import annotations

from hloba.assim.catalog import NAMES
from hloba.assim.methods.base import Analysis, Cycle, Method, MethodError
from hloba.assim.methods.free import Free
from hloba.assim.methods.hloba import Hloba
from hloba.assim.methods.l3dvar import Latent3DVar
from hloba.assim.methods.l4dvar import Latent4DVar
from hloba.assim.methods.oi import OptimalInterpolation

REGISTRY: dict[str, type[Method]] = {m.name: m for m in (Hloba, Free, Latent3DVar, Latent4DVar, OptimalInterpolation)}

__all__ = ["NAMES", "REGISTRY", "Analysis", "Cycle", "Method", "MethodError", "build_method"]


def build_method(name: str, models, cfg) -> Method:
    if name not in REGISTRY:
        raise MethodError(f"assimilation.method {name!r} is not one of {NAMES}")
    return REGISTRY[name](models, cfg)
