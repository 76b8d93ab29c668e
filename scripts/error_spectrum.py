"""Where by scale do the compared methods err? RMSE per band of total wavenumber, from a comparison.

    python scripts/error_spectrum.py [--results results] [--methods hloba,l4dvar,oi] [--against l4dvar]
        [--edges 2,4,8,16] [--out table.csv]

Reads ``results/comparison/runs/{method}.nc`` (rule compare_method) and the reference year, and
splits each channel's analysis error over the comparison's cycles into bands of total wavenumber
(cycles per domain; :func:`hloba.verify.spectra.band_rmse`, unweighted, so the total differs a
little from the scorecard's area-weighted RMSE). Prints each method's band RMSE and its ratio to
``--against``. The built-in world only: its grid is periodic in both directions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.channels import list_channels  # noqa: E402
from hloba.verify.latent import truth_on  # noqa: E402
from hloba.verify.spectra import band_labels, band_rmse  # noqa: E402


def method_bands(results: Path, methods: list[str], edges: list[float]) -> pd.DataFrame:
    """Rows (channel, method): band RMSE of each compared run's analysis error and its ``total``."""
    rows = []
    for method in methods:
        path = results / f"comparison/runs/{method}.nc"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `snakemake {path}` (or the comparison) first, "
                                    f"or leave {method} out")
        with xr.open_dataset(path) as run:
            analysis, year = run.analysis.load(), int(run.attrs["year"])
        reference = results / f"reference/{year}.nc"
        with xr.open_dataset(reference) as ds:
            if not (ds.attrs.get("longitude_periodic", 0) and ds.attrs.get("latitude_periodic", 0)):
                raise ValueError(f"{reference}: the grid is not periodic in both directions; bands of total "
                                 "wavenumber need the built-in world")
            known = {c.name: c for c in list_channels(ds)}
        channels = [str(c) for c in analysis.channel.values]
        truth = truth_on([reference], pd.DatetimeIndex(analysis.time.values), [known[c] for c in channels]).numpy()
        for c, channel in enumerate(channels):
            error = analysis.values[:, c] - truth[:, c]
            rows.append({"method": method, "channel": channel, **dict(zip(band_labels(edges), band_rmse(error, edges))),
                         "total": float(np.sqrt((error ** 2).mean()))})
    return pd.DataFrame(rows).set_index(["channel", "method"]).sort_index()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--methods", default="hloba,l4dvar,oi")
    p.add_argument("--against", default="l4dvar")
    p.add_argument("--edges", default="2,4,8,16", help="band edges in total wavenumber (cycles per domain)")
    p.add_argument("--out", default=None, help="csv of the table")
    args = p.parse_args()
    methods = args.methods.split(",")
    if args.against not in methods:
        methods.append(args.against)
    try:
        table = method_bands(Path(args.results), methods, [float(e) for e in args.edges.split(",")])
    except (FileNotFoundError, ValueError) as err:
        p.error(str(err))
    ratio = table / table.xs(args.against, level="method").reindex(table.index, level="channel")
    pd.set_option("display.width", 200)
    print("RMSE by band of total wavenumber (physical units; squares add up to the total's):")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\nratio to {args.against}:")
    print(ratio.drop(index=args.against, level="method").to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.join(ratio, rsuffix="_ratio").to_csv(args.out)


if __name__ == "__main__":
    main()
