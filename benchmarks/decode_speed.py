"""Decode throughput of the archive stage with 1 and 2 dask workers, in one run.

    python benchmarks/decode_speed.py [--results results] [--year 2011] [--steps 160] [--samples 16]

Decodes the first --steps time steps of results/latent/{year}.nc (mean + --samples Monte-Carlo
samples each) on a LocalCluster of 1, then 2 single-threaded worker processes, and prints time
steps per second and the ratio (the target is >= 1.6 on 2 cores). The decoder runs in the precision
the latent file records (``assimilation.autoencoder_precision``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.archive.cluster import dask_client  # noqa: E402
from hloba.archive.decode import decode_latent, preload_decoder  # noqa: E402
from hloba.latent import latent_precision  # noqa: E402
from hloba.runtime import file_sha256  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int, default=2011)
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--chunk", type=int, default=10)
    args = p.parse_args()
    r = Path(args.results)
    ae = r / "models/autoencoder.pt"
    sha = file_sha256(ae)
    with xr.open_dataset(r / f"latent/{args.year}.nc") as ds:
        latent = ds.isel(time=slice(0, args.steps)).load()
    rates = {}
    for workers in (1, 2):
        with dask_client(workers) as client:
            # every worker loads the decoder, in the precision the file records, before timing
            client.run(preload_decoder, str(ae), sha, latent_precision(latent))
            start = time.perf_counter()
            decode_latent(latent, ae, sha, args.samples, 0, args.chunk, client, progress=False)
            rates[workers] = args.steps / (time.perf_counter() - start)
        print(f"{workers} worker(s): {rates[workers]:.2f} time steps/s ({args.samples} samples + mean each)")
    print(f"ratio 2 workers / 1 worker = {rates[2] / rates[1]:.2f} (target >= 1.6)")


if __name__ == "__main__":
    main()
