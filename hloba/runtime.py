"""Where work runs and what files are: the device choice and file identities (the lowest layer)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
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


def reuse_freed_memory(mmap_threshold_bytes: int = 32 << 20, trim_threshold_bytes: int = 1 << 30) -> bool:
    """Let glibc's malloc keep freed blocks of up to ``mmap_threshold_bytes`` (the top of glibc's
    own dynamic threshold, 32 MiB) for reuse instead of returning each one to the system.

    Torch allocates every temporary afresh; by default glibc maps blocks above 128 KiB (a
    threshold that grows with use) anew and trims the free top of its heap, so what a step frees
    goes back to the kernel, which zeroes it page by page when the next step touches it. A time
    step of the world on 8 members, or a batch of training, then spends much of its time in page
    faults (``benchmarks/world_speed.py``, ``benchmarks/training_speed.py``). The process keeps up
    to ``trim_threshold_bytes`` of freed memory. Returns whether the setting took (False off
    glibc, e.g. macOS or musl: nothing changes there).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold_bytes)) and bool(
        mallopt(m_trim_threshold, trim_threshold_bytes)
    )


PORTABLE_MKL_BRANCH = "COMPATIBLE"


def portable_fft() -> str:
    """Ask MKL, which computes torch's FFTs on x86 CPUs, for its vendor-independent code branch
    (``MKL_CBWR=COMPATIBLE``), so that a built-in world stepped with ``world.transforms: torch`` is
    the same bits on every Intel host (the default, ``pocketfft``, leaves MKL out of the world's steps
    and is the same on every x86-64 host, AMD too). In its automatic branch MKL rounds an FFT
    differently on different CPUs (an AVX-512 Intel host against an AVX2 one), and the chaotic
    world turns the last bit into other weather within about 100 simulated days
    (docs/atmosphere.md). On the AMD host measured MKL ignores the setting and its world is another
    one (``scripts/world_fingerprint.py`` tells them apart). torch's own element-wise kernels give
    the same bits with AVX2 and AVX-512.

    MKL reads the setting at the process's first MKL call, so the world's entry points (rule
    make_world, ``hloba make-world``) call this before they step it; a value already in the
    environment is kept (``MKL_CBWR=AUTO`` restores the faster host-specific branch). Returns the
    value in force. The branch costs the world's step some speed (docs/atmosphere.md) and is not set for the
    other rules, whose FFTs (the forecast model) and matrix products keep MKL's fastest branch.
    """
    return os.environ.setdefault("MKL_CBWR", PORTABLE_MKL_BRANCH)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
