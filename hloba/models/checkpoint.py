"""One checkpoint format: ``torch.save`` of a dict, loaded with ``weights_only=True``.

Keys: ``format`` ("hloba-checkpoint"), ``format_version``, ``kind`` ("autoencoder", "o2lnet", ...),
``hloba_version``, ``config`` (what rebuilds the module), ``state_dict``, ``channels`` (names,
variables, levels), ``grid`` (latitudes, longitudes, periods), ``normalizer`` (tensors), and
free-form ``meta`` (training history, data provenance).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from hloba import __version__
from hloba.channels import Channel
from hloba.grid import Grid
from hloba.io import atomic_path

FORMAT = "hloba-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign, or does not fit the data."""


def channels_to_state(channels: list[Channel]) -> dict:
    return {"names": [c.name for c in channels], "variables": [c.variable for c in channels],
            "levels": [c.level for c in channels]}


def channels_from_state(state: dict) -> list[Channel]:
    return [Channel(v, lev) for v, lev in zip(state["variables"], state["levels"])]


def grid_to_state(grid: Grid) -> dict:
    return {"latitude": list(grid.latitude), "longitude": list(grid.longitude),
            "longitude_period": grid.longitude_period, "latitude_period": grid.latitude_period}


def grid_from_state(state: dict) -> Grid:
    return Grid(tuple(state["latitude"]), tuple(state["longitude"]), state["longitude_period"], state["latitude_period"])


def save_checkpoint(path, kind: str, config: dict, state_dict: dict, channels: list[Channel], grid: Grid,
                    normalizer_state: dict, meta: dict | None = None, tensors: dict | None = None) -> None:
    """Write a checkpoint atomically; ``tensors`` adds named top-level tensors (e.g. a static variance)."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "hloba_version": __version__,
        "config": config, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "channels": channels_to_state(channels), "grid": grid_to_state(grid),
        "normalizer": normalizer_state, "meta": meta or {},
    }
    payload.update(tensors or {})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, kind: str) -> dict:
    """Load and check a checkpoint of ``kind``; errors name the file and what to do."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist: run the training rule first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError) as err:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}): it is truncated or not a torch file; "
            "delete it and rerun the training rule"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an hloba checkpoint (no format={FORMAT!r} key)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('format_version')}, this hloba reads "
            f"{FORMAT_VERSION}: retrain it"
        )
    if payload.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} holds a {payload.get('kind')!r} model, expected {kind!r}")
    return payload


def load_module(path, kind: str, build, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a module of ``kind`` from its checkpoint file alone.

    ``build(config: dict) -> nn.Module`` constructs the architecture from the stored config; the
    weights must then fit it exactly. Returns the module (in eval mode, on ``device``) and the payload.
    """
    payload = load_checkpoint(path, kind)
    module = build(payload["config"])
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the stored architecture ({err})") from None
    return module.to(device).eval(), payload


def check_matches_data(payload: dict, channels: list[Channel], grid: Grid, path="checkpoint") -> None:
    """Fail with a message naming the mismatch if the data's channels or grid differ from the checkpoint's."""
    want = channels_from_state(payload["channels"])
    if [c.name for c in want] != [c.name for c in channels]:
        raise CheckpointError(
            f"{path} was trained on channels {[c.name for c in want]} but the data have "
            f"{[c.name for c in channels]}: retrain or give matching data"
        )
    g = grid_from_state(payload["grid"])
    if g.shape != grid.shape or max(abs(a - b) for a, b in zip(g.latitude + g.longitude, grid.latitude + grid.longitude)) > 1e-4:
        raise CheckpointError(
            f"{path} was trained on a {g.shape[0]} x {g.shape[1]} grid "
            f"({g.latitude[0]:.2f}..{g.latitude[-1]:.2f}N) but the data are {grid.shape[0]} x {grid.shape[1]} "
            f"({grid.latitude[0]:.2f}..{grid.latitude[-1]:.2f}N): retrain or regrid"
        )
