"""Compare two pipeline results folders: the scorecard and every reanalysis and latent year.

A refactor must leave the numbers alone. Run the pipeline on two commits into two folders, then:

    python scripts/compare_results.py BEFORE/results AFTER/results --rtol 1e-6

Prints the largest relative difference per file and variable; exits 1 when any exceeds ``--rtol``
(relative to the variable's largest magnitude, so near-zero values do not blow it up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max |a|`` over finite values; ``inf`` where the shapes or the NaN/inf masks differ."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    fin = np.isfinite(a)
    if not fin.any():
        return 0.0
    scale = np.abs(a[fin]).max() or 1.0
    return float(np.abs(a[fin] - b[fin]).max() / scale)


def compare_tables(before: Path, after: Path) -> dict[str, float]:
    a, b = pd.read_csv(before), pd.read_csv(after)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return {"<layout>": float("inf")}
    out = {}
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(a[col]):
            out[col] = relative_difference(a[col].to_numpy(), b[col].to_numpy())
        elif not a[col].equals(b[col]):
            out[col] = float("inf")
    return out


def compare_datasets(before: Path, after: Path) -> dict[str, float]:
    with xr.open_dataset(before) as a, xr.open_dataset(after) as b:
        names = sorted(set(a.data_vars) | set(b.data_vars))
        return {n: relative_difference(a[n].values, b[n].values) if n in a and n in b else float("inf")
                for n in names if n not in a or np.issubdtype(a[n].dtype, np.number)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    pairs = [("comparison/scorecard.csv", compare_tables)]
    pairs += [(str(p.relative_to(args.before)), compare_datasets)
              for sub in ("reanalysis", "latent") for p in sorted((args.before / sub).glob("*.nc"))]
    worst = 0.0
    for rel, compare in pairs:
        if not (args.after / rel).exists():
            print(f"{rel}: missing in {args.after}")
            worst = float("inf")
            continue
        diffs = compare(args.before / rel, args.after / rel)
        top = max(diffs.values(), default=0.0)
        worst = max(worst, top)
        name = max(diffs, key=diffs.get) if diffs else "-"
        print(f"{rel}: largest relative difference {top:.3g} ({name}; {len(diffs)} variables)")
    print(f"worst {worst:.3g} (tolerance {args.rtol:g}): {'equal' if worst <= args.rtol else 'DIFFERENT'}")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
