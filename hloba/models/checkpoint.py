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


def describe_grid(grid: Grid) -> str:
    return (f"{grid.shape[0]} x {grid.shape[1]} grid ({grid.latitude[0]:.2f}..{grid.latitude[-1]:.2f}N, "
            f"{grid.longitude[0]:.2f}..{grid.longitude[-1]:.2f}E)")


def layout_mismatch(channels_a: list[Channel], grid_a: Grid, channels_b: list[Channel], grid_b: Grid) -> str | None:
    """``"channels"`` or ``"grid"`` where two layouts differ (channels first), else ``None``."""
    if [c.name for c in channels_a] != [c.name for c in channels_b]:
        return "channels"
    coords_a, coords_b = grid_a.latitude + grid_a.longitude, grid_b.latitude + grid_b.longitude
    if grid_a.shape != grid_b.shape or max(abs(a - b) for a, b in zip(coords_a, coords_b)) > 1e-4:
        return "grid"
    return None


def check_matches_data(payload: dict, channels: list[Channel], grid: Grid, path="checkpoint") -> None:
    """Fail with a message naming the mismatch if the data's channels or grid differ from the checkpoint's."""
    want, g = channels_from_state(payload["channels"]), grid_from_state(payload["grid"])
    what = layout_mismatch(want, g, channels, grid)
    if what == "channels":
        raise CheckpointError(
            f"{path} was trained on channels {[c.name for c in want]} but the data have "
            f"{[c.name for c in channels]}: retrain or give matching data"
        )
    if what == "grid":
        raise CheckpointError(
            f"{path} was trained on a {describe_grid(g)} but the data are on a {describe_grid(grid)}: retrain or regrid"
        )


def check_models_agree(payload_a: dict, path_a, payload_b: dict, path_b) -> None:
    """Two checkpoints used together (autoencoder and O2Lnet) must share channels and grid; the
    message names both files with their layouts, since either may be the stale one."""
    ch_a, g_a = channels_from_state(payload_a["channels"]), grid_from_state(payload_a["grid"])
    ch_b, g_b = channels_from_state(payload_b["channels"]), grid_from_state(payload_b["grid"])
    what = layout_mismatch(ch_a, g_a, ch_b, g_b)
    if what is None:
        return
    layout = {"channels": lambda ch, g: f"channels {[c.name for c in ch]}", "grid": lambda ch, g: f"a {describe_grid(g)}"}[what]
    raise CheckpointError(
        f"{path_a} and {path_b} were trained on different data: {path_a} on {layout(ch_a, g_a)}, {path_b} on "
        f"{layout(ch_b, g_b)}; the one that does not match the reference is stale: retrain it "
        "(snakemake --forcerun train_autoencoder retrains both)"
    )
