"""Wall time of a finished pipeline run, per rule and in total, from Snakemake's own records.

    python benchmarks/pipeline_timing.py [--results results] [--log .snakemake/log/<run>.snakemake.log]
                                         [--markdown]

Per rule it sums the ``benchmark:`` files under ``results/benchmarks/`` (seconds, CPU seconds,
peak resident memory, number of jobs). The total is given twice: the sum of the jobs' times (the
work) and the wall time of the Snakemake run that wrote them, from the first and last time stamp
of its log (the newest log under ``.snakemake/log/`` unless ``--log`` names one); with more than
one core the wall time is the smaller. A rule rerun on its own later overwrites its benchmark
file, so give the log of the run you want timed. ``--markdown`` prints the table for README.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def rule_times(benchmarks: Path) -> pd.DataFrame:
    """One row per rule: jobs, summed and largest job seconds, CPU seconds, peak RSS (MiB)."""
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")):
        rel = path.relative_to(benchmarks)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        table = pd.read_csv(path, sep="\t")
        if table.empty:
            continue
        last = table.iloc[-1]  # repeated benchmarks (snakemake's repeat()) report each run: take the last
        rows.append({"rule": rule, "seconds": float(last["s"]), "cpu_seconds": float(last.get("cpu_time", float("nan"))),
                     "max_rss_mib": float(last.get("max_rss", float("nan")))})
    if not rows:
        raise SystemExit(f"no benchmark files under {benchmarks}: run the pipeline first (snakemake --cores 2)")
    jobs = pd.DataFrame(rows)
    out = jobs.groupby("rule").agg(jobs=("seconds", "size"), seconds=("seconds", "sum"),
                                   longest_job_s=("seconds", "max"), cpu_seconds=("cpu_seconds", "sum"),
                                   max_rss_mib=("max_rss_mib", "max"))
    return out.sort_values("seconds", ascending=False)


def log_wall_seconds(log: Path) -> tuple[float, datetime, datetime]:
    """Seconds between the first and last ``[date]`` stamp of a Snakemake log."""
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        m = STAMP.match(line.strip())
        if m:
            stamps.append(datetime.strptime(re.sub(" +", " ", m.group(1)), "%a %b %d %H:%M:%S %Y"))
    if len(stamps) < 2:
        raise SystemExit(f"{log} has fewer than two time stamps: is it a Snakemake log of a run that did jobs?")
    return (stamps[-1] - stamps[0]).total_seconds(), stamps[0], stamps[-1]


def newest_log(workdir: Path) -> Path | None:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    return logs[-1] if logs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--log", type=Path, default=None, help="Snakemake log of the run (default: the newest)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    table = rule_times(args.results / "benchmarks")
    total = table["seconds"].sum()
    if args.markdown:
        print("| rule | jobs | minutes (sum) | longest job (min) | peak memory (MiB) |")
        print("|---|---|---|---|---|")
        for rule, r in table.iterrows():
            print(f"| `{rule}` | {int(r.jobs)} | {r.seconds / 60:.1f} | {r.longest_job_s / 60:.1f} | {r.max_rss_mib:.0f} |")
    else:
        with pd.option_context("display.width", 140, "display.max_rows", 200):
            print(table.round(1).to_string())
    print(f"\nsum of job times: {total / 60:.1f} min over {int(table['jobs'].sum())} jobs")
    log = args.log or newest_log(Path.cwd())
    if log is None:
        print("no Snakemake log found (.snakemake/log/): wall time unknown", file=sys.stderr)
    else:
        wall, first, last = log_wall_seconds(log)
        print(f"wall time of the run in {log.name}: {wall / 60:.1f} min ({first:%Y-%m-%d %H:%M} .. {last:%H:%M})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
