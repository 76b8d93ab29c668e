"""What HLOBA's lead could check the next cycle's observations against without a forecast
(``assimilation.lead_guess``), measured on a finished pipeline's files before any is chosen.

    python scripts/lead_guess_experiment.py [--results results] [--configfile config.yaml [overlay.yaml]] [--days 20]

One HLOBA stream runs the comparison period as configured (tuning from
``results/ensemble/stream_tuning.nc``). At every cycle whose next cycle has observations, each guess of the
state there is formed from the same background: ``forecast`` ``M(x_b)`` (the stream's default),
``persistence`` ``x_b`` and ``extrapolated`` ``x_b + (x_b - x_a)`` of the previous analysis ``x_a``.
Printed per guess: its time per cycle, its RMSE / anomaly std against the truth at the next cycle
(per channel and mean), the fraction of the next cycle's observations it rejects, and how many of
its decisions differ from the forecast's (rejected by it only / passed by it only). The skill of a
stream that uses a guess, each tuned as rule tune_stream tunes, is
``scripts/tuned_settings_experiment.py ... guess:lead_guess=...``; ``--score`` is quicker: each
guess's stream on the comparison period with the pipeline's tuning as it is (not retuned), its
decoded analysis RMSE / anomaly std per channel.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from cycling_covariance_experiment import score  # noqa: E402
from hloba.assim.methods import REGISTRY  # noqa: E402
from hloba.assim.methods.hloba import Hloba  # noqa: E402
from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.catalog import LEAD_GUESSES  # noqa: E402
from hloba.assim.year import run_period  # noqa: E402
from hloba.config import load_config, year_sets  # noqa: E402
from hloba.scores import rmse  # noqa: E402
from hloba.timeaxis import cycle_times  # noqa: E402
from hloba.verify.compare import truth_on  # noqa: E402


class Tally:
    """Per guess: seconds, squared errors against the truth, rejections and disagreements."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(LEAD_GUESSES, 0.0)
        self.guesses: dict[str, list] = {g: [] for g in LEAD_GUESSES}
        self.times: list = []
        self.checked, self.rejected = 0, dict.fromkeys(LEAD_GUESSES, 0)
        self.only_this = dict.fromkeys(LEAD_GUESSES, 0)  # rejected by the guess, passed by the forecast
        self.only_forecast = dict.fromkeys(LEAD_GUESSES, 0)


def instrumented(tally: Tally, start: pd.Timestamp) -> type[Hloba]:
    """HLOBA that, at each lead check from ``start`` on, also forms and checks every guess (it uses
    the configured one)."""

    class Measured(Hloba):
        def later_observations(self, c):
            k = c.k + 1
            if k < len(c.times) and c.time >= start and c.obs.cycle(k).stop > c.obs.cycle(k).start:
                rejects = {}
                for g in LEAD_GUESSES:
                    t0 = time.perf_counter()
                    x = self.lead_state(c, k, c.x_b, g)
                    tally.seconds[g] += time.perf_counter() - t0
                    tally.guesses[g].append(x[0].float().cpu())
                    rejects[g] = c.check_later(x, k, self.cfg.qc_threshold)[3]
                tally.times.append(c.times[k])
                tally.checked += int(rejects["forecast"].numel())
                for g, r in rejects.items():
                    tally.rejected[g] += int(r.sum())
                    tally.only_this[g] += int((r & ~rejects["forecast"]).sum())
                    tally.only_forecast[g] += int((~r & rejects["forecast"]).sum())
            return super().later_observations(c)

    return Measured


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"],
                   help="config files, each over the one before (as Snakemake merges them)")
    p.add_argument("--days", type=float, default=None, help="default: the comparison's days")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--score", action="store_true", help="also run each guess's stream (the tuning not retuned)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results, config = Path(args.results), load_config(*(REPO / f for f in args.configfile))
    comparison = config.get("comparison") or {}
    year = comparison.get("year") or year_sets(config).reanalysis[-1]
    days = args.days or comparison.get("days", 20)
    cfg = StreamConfig.from_config(config).with_(method="hloba", spinup_days=comparison.get("spinup_days", 10))
    inputs = StreamInputs.from_results(results, config, (year - 1, year), tuning=True)
    models = method_models(cfg, inputs, "cpu")
    tally = Tally()
    times, first = cycle_times(year, models.interval, cfg.spinup_days, models.phase)
    REGISTRY["hloba"] = instrumented(tally, times[first])  # the scored period's cycles
    run_period(year, models, inputs.observations, cfg, days, RunSettings(device="cpu", progress=False))
    truth = truth_on([results / f"reference/{year}.nc"], pd.DatetimeIndex(tally.times), models.channels).double()
    scale = models.normalizer.anomaly_std.double()
    names = [c.name for c in models.channels]
    rows = []
    for g in LEAD_GUESSES:
        err = rmse(torch.stack(tally.guesses[g]).double(), truth, models.grid.area_weights()).numpy() / scale.numpy()
        n = len(tally.times)
        rows.append({"guess": g, "ms_per_cycle": 1e3 * tally.seconds[g] / n, **dict(zip(names, err)),
                     "mean": float(np.mean(err)), "rejected_%": 100 * tally.rejected[g] / tally.checked,
                     "only_it_rejects": tally.only_this[g], "only_forecast_rejects": tally.only_forecast[g]})
    pd.set_option("display.width", 250)
    print(f"{len(tally.times)} lead checks of {tally.checked} observations ({year}, {days} days after "
          f"{cfg.spinup_days} of spin-up); guess RMSE / anomaly std at the next cycle")
    table = pd.DataFrame(rows).set_index("guess")
    print(table.rename(columns=lambda s: "".join(w[:3] for w in s.split("_"))).round(4).to_string())
    if args.score:
        REGISTRY["hloba"] = Hloba
        with tempfile.TemporaryDirectory() as tmp:  # the pipeline's tuning, for every guess
            tuning = Path(tmp) / "tuning.nc"
            ds = xr.load_dataset(inputs.tuning)
            ds.attrs.pop("lead_guess", None)
            ds.to_netcdf(tuning)
            rows = [{"guess": g, **dict(zip(names, err := score(results, config, cfg.with_(lead_guess=g),
                                                               replace(inputs, tuning=str(tuning))))),
                     "mean": float(err.mean())} for g in LEAD_GUESSES]
        print("\nHLOBA analysis RMSE / anomaly std with each guess (the pipeline's tuning, not retuned)")
        print(pd.DataFrame(rows).set_index("guess").rename(
            columns=lambda s: "".join(w[:3] for w in s.split("_"))).round(4).to_string())


if __name__ == "__main__":
    main()
