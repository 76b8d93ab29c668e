"""Where work runs and what files are: the device choice and file identities (the lowest layer)."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available: use 'cpu' or 'auto'")
    return torch.device(device)


@contextmanager
def torch_threads(n: int):
    """Torch's intra-op threads set to ``n`` inside the block, the caller's count restored after.
    One thread makes a computation's sums the same as in a single-threaded worker process."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
