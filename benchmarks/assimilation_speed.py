"""Per-cycle cost of a HLOBA stream, split by stage, on CPU and (when present) CUDA.

    python benchmarks/assimilation_speed.py [--results results] [--year 2011] [--days 31]
                                            [--devices cpu,cuda] [--threads 2]

Runs the configured stream (config.yaml, the trained models and tuning under --results) from its
cold start through the spin-up and --days days of --year on each device, and prints per device:
milliseconds per cycle in forecast, encode, QC, O2Lnet, update, decode; cycles per second; the
peak resident memory of this process (and the peak CUDA memory). With two devices it prints the
largest difference of their latent analyses and decoded analyses (anomaly-std units). It also
prints the whole-year figures of results/latent/{year}.nc when that file exists (the timers the
stream stored). This is the GPU check of the streams issue: one short run per device.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hloba.assim.models import method_models  # noqa: E402
from hloba.assim.settings import RunSettings, StreamConfig, StreamInputs  # noqa: E402
from hloba.assim.stream import STAGES, run_stream  # noqa: E402
from hloba.config import load_config, stream_years, year_sets  # noqa: E402
from hloba.timeaxis import cycle_times  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--year", type=int)
    p.add_argument("--days", type=float, default=31)
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = Path(__file__).resolve().parents[1] / "config.yaml"
    config = load_config(*dict.fromkeys([base, Path(args.configfile).resolve()]))
    years = year_sets(config)
    year = args.year or years.reanalysis[-1]
    r = Path(args.results)
    cfg = StreamConfig.from_config(config)
    inputs = StreamInputs.from_results(r, config, stream_years(year, cfg.spinup_days, years.all),
                                       tuning=(r / "ensemble/stream_tuning.nc").exists() and cfg.tuning_days > 0)
    interval = inputs.forecast.interval
    times, first = cycle_times(year, interval, cfg.spinup_days)
    cycles = first + int(args.days * pd.Timedelta(days=1) / interval)
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    if "cuda" in args.devices and "cuda" not in devices:
        print("no CUDA device here: CPU only")
    analyses = {}
    for device in devices:
        models = method_models(cfg, inputs, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run = RunSettings(checkpoint_every=10**9, log_every=10**9, device=device, progress=False)
        result = run_stream(year, models, inputs.observations, cfg, run, max_cycles=cycles)
        wall = time.perf_counter() - start
        split = {k: 1e3 * v / cycles for k, v in result.timers.items()}
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        line = ", ".join(f"{k} {split[k]:.1f}" for k in STAGES)
        print(f"{device}: {cycles} cycles in {wall:.1f} s = {cycles / wall:.2f} cycles/s; ms per cycle: {line}; "
              f"peak RSS {peak:.0f} MiB" + (f", peak CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                                             if device == "cuda" else ""))
        analyses[device] = (result.fields["z_a"][first:cycles], models)
    if len(analyses) == 2:
        (za_c, m_c), (za_g, _) = analyses["cpu"], analyses["cuda"]
        with torch.no_grad():
            xc = m_c.autoencoder.cpu().decode(za_c)
            xg = m_c.autoencoder.decode(za_g)
        print(f"largest |z_a(cuda) - z_a(cpu)| = {float((za_c - za_g).abs().max()):.3g}; "
              f"largest decoded difference {float((xc - xg).abs().max()):.3g} anomaly std")
    latent = r / f"latent/{year}.nc"
    if latent.exists():
        with xr.open_dataset(latent) as ds:
            a = ds.attrs
            n = ds.sizes["time"] + int(a["spinup_cycles"])
            total = sum(float(a[f"seconds_{k}"]) for k in STAGES)
            print(f"whole stream {year} from {latent} (as run by the pipeline): {n} cycles, {n / total:.2f} cycles/s "
                  "of stage time; ms per cycle: " + ", ".join(f"{k} {1e3 * float(a[f'seconds_{k}']) / n:.1f}" for k in STAGES))


if __name__ == "__main__":
    main()
