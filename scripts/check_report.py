"""Render the Snakemake report and check it in headless Chromium (issue 7, "Report").

    python scripts/check_report.py [--configfile config/test.yaml] [--out results/report_check]

1. ``snakemake --report <out>/report.html`` (a self-contained HTML page) for the workflow's
   current results;
2. checks that the page lists the report's categories and files (maps, error time series,
   scorecard, cost, uncertainty, observation statistics);
3. opens it in headless Chromium (``chromium`` on PATH, or ``$CHROMIUM``; Debian:
   ``apt-get install chromium``) and saves ``<out>/report.png``; the screenshot must not be blank.

Exit status 0 when everything holds; otherwise it says what failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

EXPECTED = ("Method comparison", "Verification", "Reanalysis", "Assimilation", "scorecard.png", "cost.csv",
            "maps.png", "uncertainty_series.png", "observations.csv", "forecast_skill.csv")


def find_chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chrome")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", help="the config the results were made with (default: config.yaml)")
    parser.add_argument("--out", default="results/report_check", type=Path)
    parser.add_argument("--workdir", default=".", type=Path, help="the workflow directory")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    cmd = [sys.executable, "-m", "snakemake", "--report", str(html)]
    if args.configfile:
        cmd += ["--configfile", args.configfile]
    proc = subprocess.run(cmd, cwd=args.workdir, capture_output=True, text=True)
    if proc.returncode != 0 or not html.exists():
        sys.exit(f"snakemake --report failed:\n{proc.stderr[-3000:]}")
    text = html.read_text(errors="replace")
    missing = [e for e in EXPECTED if e not in text]
    print(f"report {html}: {html.stat().st_size / 2**20:.1f} MiB; missing entries: {missing or 'none'}")
    png = out / "report.png"
    png.unlink(missing_ok=True)
    shot = subprocess.run([find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1400,1000", "--virtual-time-budget=15000", f"--screenshot={png}",
                           html.as_uri()], capture_output=True, text=True, timeout=180)
    if not png.exists():
        sys.exit(f"Chromium wrote no screenshot:\n{shot.stderr[-3000:]}")
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)[..., :3]
    distinct = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    print(f"screenshot {png}: {pixels.shape[1]} x {pixels.shape[0]} px, pixel std {pixels.std():.3f}, "
          f"{distinct} distinct colours")
    ok = not missing and pixels.std() > 0.02 and distinct > 50
    print("report renders" if ok else "REPORT CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
