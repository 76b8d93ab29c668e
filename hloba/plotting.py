"""Figures without a display: matplotlib's Agg backend and one atomic PNG writer for every figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hloba.io import atomic_path  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path) -> None:
    """Write ``fig`` as PNG atomically (a killed job leaves no partial figure) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
