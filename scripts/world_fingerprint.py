"""Fingerprints of the built-in world's reference files, to tell whether two hosts made the same world.

Prints, per file, a SHA-256 prefix of its data variables' values (in name order, as stored; the
attributes and the file's own bytes, which carry its creation time, left out) and the world's
transforms that made it, with the host's CPU, MKL branch setting and torch's CPU capability. Two
hosts made the same world when every line's fingerprint agrees (docs/atmosphere.md, "The same world on every host", lists the ones measured).

    python scripts/world_fingerprint.py results/reference/*.nc
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
from pathlib import Path

import numpy as np
import xarray as xr


def fingerprint(path) -> str:
    """SHA-256 (16 hex digits) of the data variables' values of one netCDF file."""
    digest = hashlib.sha256()
    with xr.open_dataset(path, mask_and_scale=False, decode_times=False) as ds:
        for name in sorted(ds.data_vars):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(ds[name].values).tobytes())
    return digest.hexdigest()[:16]


def transforms(path) -> str:
    """The world's transforms that made the file (its ``world_transforms`` attribute; files written
    before the attribute existed were made with torch's)."""
    with xr.open_dataset(path, decode_times=False) as ds:
        return str(ds.attrs.get("world_transforms", "torch"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="reference files (results/reference/{year}.nc)")
    args = parser.parse_args()
    import torch

    print(f"host: {cpu_model()}; MKL_CBWR={os.environ.get('MKL_CBWR', 'unset (rule make_world sets COMPATIBLE)')}; "
          f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for path in sorted(args.files):
        print(f"{Path(path).name}: {fingerprint(path)} ({transforms(path)} transforms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
