"""A stream's state between cycles, and its checkpoints.

The state is saved atomically every ``checkpoint_every`` cycles (at window boundaries); a rerun
with the same inputs (the same :func:`fingerprint`) continues from it and gives exactly the
outputs of an uninterrupted run. An unreadable checkpoint, or one from other inputs, is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from hloba.io import atomic_path
from hloba.obs.withhold import QC_NOT_ASSIMILATED
from hloba.runtime import file_sha256

log = logging.getLogger(__name__)

FORMAT = 6  # of the checkpoint files (1: before the methods had their own state; 2: before ``previous``;
# 3: before a combined weighted state recorded the update's own z_a instead of E(x_w); 4: before ``kept``;
# 5: before ``increments``)


def fingerprint(year: int, config: dict, forecast: dict, paths) -> str:
    """Identity of a stream's inputs: a checkpoint is resumed only when this matches."""
    h = hashlib.sha256(json.dumps({"year": year, "config": config, "forecast": forecast}, sort_keys=True,
                                  default=str).encode())
    for p in paths:
        if p:
            h.update(file_sha256(p).encode())
    return h.hexdigest()


@dataclass
class StreamState:
    """Everything carried from one cycle to the next, and what the cycles have written so far."""

    cycle: int  # the next cycle to run
    members: torch.Tensor  # (m, C, ny, nx) forecasts valid at ``cycle``: the background first
    b2_channel: torch.Tensor  # (C,) background error variance at the observations
    fields: dict  # latent fields, (cycles, n) each
    diagnostics: torch.Tensor  # (cycles, len(DIAGNOSTICS))
    background: torch.Tensor  # H(x_b) per observation
    analysis: torch.Tensor  # H(x_a) per observation
    qc: torch.Tensor  # int8 per observation
    timers: dict
    method: dict  # the method's own state
    generator: torch.Tensor | None = None  # a stochastic forecast model's random state
    previous: torch.Tensor | None = None  # (1, C, ny, nx) the state the background was forecast from
    # (cycles, C, ny, nx) int16 multiples of hloba.latent.KEPT_QUANTUM: each cycle's kept background
    # part (hloba's weighted_state: blended, hloba.latent.kept_background); None for the other methods
    kept: torch.Tensor | None = None
    # (cycles, C, ny, nx) int16 in the same quanta: each cycle's standardised increment x_a - x_b, which
    # the smoother reads (assimilation.smoother_hours; hloba.smoother); None when nothing reads them
    increments: torch.Tensor | None = None

    @classmethod
    def fresh(cls, members, b2_channel, field_names, n_cycles: int, n_latent: int, n_diagnostics: int,
              n_obs: int, timers: dict, method: dict) -> "StreamState":
        nan = float("nan")
        return cls(
            0, members, b2_channel, {k: torch.full((n_cycles, n_latent), nan) for k in field_names},
            torch.full((n_cycles, n_diagnostics), nan, dtype=torch.float64),
            torch.full((n_obs,), nan, dtype=torch.float64), torch.full((n_obs,), nan, dtype=torch.float64),
            torch.full((n_obs,), QC_NOT_ASSIMILATED, dtype=torch.int8), timers, method,
        )

    def save(self, path: Path, fp: str) -> None:
        state = {"format": FORMAT, "fingerprint": fp, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        state["members"], state["b2_channel"] = self.members.cpu(), self.b2_channel.cpu()
        state["previous"] = None if self.previous is None else self.previous.cpu()
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: Path | None, fp: str, device) -> "StreamState | None":
        if path is None or not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
            log.warning("stream checkpoint %s unreadable (%s): starting from the beginning", path, type(err).__name__)
            return None
        if state.get("fingerprint") != fp or state.get("format") != FORMAT:
            log.warning("stream checkpoint %s is from other inputs or settings: starting from the beginning", path)
            return None
        out = cls(**{k: state[k] for k in cls.__dataclass_fields__})
        out.members, out.b2_channel = out.members.to(device), out.b2_channel.to(device)
        out.previous = None if out.previous is None else out.previous.to(device)
        return out
