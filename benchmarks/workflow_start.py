"""What one Snakemake start costs: ``snakemake -n`` on a copy of the workflow (no results), the
default and the tiny configuration, as it runs and with torch imported first (what each start cost
while the Snakefile's settings modules imported torch, before 2026-12-07). Every Snakemake start
pays it: a dry run, a rerun of one year, each job that a cluster executor submits (it parses the
Snakefile again), and the tests' 30-odd starts.

    .venv/bin/python benchmarks/workflow_start.py --repeats 5

Prints the median wall and CPU seconds of each, interleaved so that a busy host slows both alike,
and whether a plain start imports torch.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hloba.testing import copy_workflow, imported_modules  # noqa: E402

# snakemake's command line with torch imported before it: the start as it was
WITH_TORCH = "import runpy, sys, torch; sys.argv[0] = 'snakemake'; runpy.run_module('snakemake', run_name='__main__')"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the child) and stderr of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(REPO, Path(tmp))
        _, _, imports = timed([sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--cores", "2"], work)
        print(f"a plain start imports torch: {'torch' in imported_modules(imports)}")
        for name, overlay in (("default", []), ("tiny", ["--configfile", "config/test.yaml"])):
            dry = ["-n", "--cores", "2", *overlay]
            runs = {"as it runs": [sys.executable, "-m", "snakemake", *dry],
                    "torch first": [sys.executable, "-c", WITH_TORCH, *dry]}
            times = {label: [] for label in runs}
            for _ in range(args.repeats):
                for label, cmd in runs.items():
                    times[label].append(timed(cmd, work)[:2])
            for label, values in times.items():
                wall = statistics.median(v[0] for v in values)
                cpu = statistics.median(v[1] for v in values)
                print(f"{name:8s} {label:12s} wall {wall:5.2f} s  cpu {cpu:5.2f} s  ({args.repeats} runs, median)")


if __name__ == "__main__":
    main()
