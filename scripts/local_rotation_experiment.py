"""The local rotation's experiment (ensemble.rotation_cells) on a finished run's models.

Runs the lagged forecasts of rule generate_lagged_ensemble once on the calibration year, then
calibrates with one rotation of the whole latent and with rotations local to squares of ``b x b``
latent cells, and prints for each: the held-out off-diagonal error energy after rotation (and its
sampling floor; the rotation is fitted on the first half of the year, scored on the second), and
the update's products per cycle (the members and O2Lnet's estimate rotated, the variances mapped,
the analysis rotated back), timed alternately with the dense form in one process.

    .venv/bin/python scripts/local_rotation_experiment.py --results results [--cells 2 4 8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from hloba.assim.cycle import UpdateSpace
from hloba.config import load_config
from hloba.ensemble.calibration import calibrate, cell_blocks, lagged_forecasts
from hloba.ensemble.generate import latent_encoder
from hloba.forecast import build_forecast_model
from hloba.models.autoencoder import load_autoencoder
from hloba.normalization import Normalizer
from hloba.states import load_years


def products_ms(space: UpdateSpace, n: int, rows: int, repeat: int) -> float:
    """Milliseconds of one cycle's products with the rotation: ``rows`` states forward, one
    variance forward, one state and one variance back."""
    g = torch.Generator().manual_seed(0)
    z, var = torch.randn(rows, n, generator=g), torch.rand(1, n, generator=g)

    def cycle():
        w = space.forward(z)
        space.forward_variance(var)
        space.backward(w[:1])
        space.backward_variance(var)

    for _ in range(10):
        cycle()
    start = time.perf_counter()
    for _ in range(repeat):
        cycle()
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--config", type=Path, default=Path("config.yaml"))
    p.add_argument("--cells", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--rows", type=int, default=2,
                   help="states rotated a cycle: the background and O2Lnet's estimate (the lagged members "
                        "weigh nothing with the default cycling variance)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    years = config["years"]["calibration"]
    ae, payload = load_autoencoder(args.results / "models/autoencoder.pt")
    normalizer = Normalizer.from_state(payload["normalizer"])
    x, times, channels, _ = load_years([args.results / f"reference/{y}.nc" for y in years])
    model = build_forecast_model(config["forecast"], channels, pd.Timedelta(times[1] - times[0]),
                                 world=config["world"].get("qg", {}))
    lagged = lagged_forecasts(model, latent_encoder(ae, normalizer), x, times, config["ensemble"]["members"])
    n, rows = ae.cfg.n_latent, args.rows
    print(f"latent {ae.cfg.latent_shape} = {n}; {len(lagged.times)} valid times; {rows} rows rotated per cycle")
    print(f"{'rotation':>12s} {'off-diag energy':>16s} {'floor':>7s} {'ms/cycle':>9s} {'dense ms':>9s}")
    for cells in [None, *args.cells]:
        blocks = None if cells is None else cell_blocks(ae.cfg.latent_shape, cells)
        cal = calibrate(lagged, blocks)
        after = cal["decorrelation_after_rotation"]
        local = UpdateSpace(cal["rotation"], blocks)
        dense = UpdateSpace(cal["rotation"])
        ms = [(products_ms(local, n, rows, args.repeat), products_ms(dense, n, rows, args.repeat)) for _ in range(2)]
        label = "whole" if cells is None else f"{cells}x{cells} cells"
        print(f"{label:>12s} {after['off_diagonal_energy_fraction']:16.3f} {after['sampling_floor']:7.3f} "
              f"{sum(m[0] for m in ms) / 2:9.2f} {sum(m[1] for m in ms) / 2:9.2f}")
    before = cal["decorrelation_before"]
    print(f"{'none':>12s} {before['off_diagonal_energy_fraction']:16.3f} {before['sampling_floor']:7.3f}")


if __name__ == "__main__":
    main()
