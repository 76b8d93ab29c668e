"""The Snakemake workflow: dry run, lint, formatting, and the tiny pipeline end to end."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from conftest import copy_workflow

from hloba.models.o2lnet import load_o2lnet
from hloba.testing import imported_modules

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run(cmd, cwd, check=True):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture()
def workdir(repo, tmp_path):
    """A copy of the workflow (no results) in a temporary folder."""
    return copy_workflow(repo, tmp_path)


def test_dry_run_lists_the_rules(workdir):
    proc = run([sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--cores", "2"], workdir)
    out = proc.stdout
    # the Snakefile plans without torch: each Snakemake start (a dry run, a rerun, every job a
    # cluster executor submits) took 6.9 s with it, 3.8 without (benchmarks/workflow_start.py)
    imported = imported_modules(proc.stderr)
    assert "hloba.assim.settings" in imported and "torch" not in imported
    for rule in ("make_world_0", "make_world_1", "compute_normalization", "simulate_observations", "train_autoencoder", "train_o2lnet", "all"):
        assert rule in out
    assert "results/reference/2011.nc" in out
    # o2lnet.refine: the trained O2Lnet, its tuning, the refined O2Lnet that every stream reads
    assert "rule tune_stream_base:" in out and "rule refine_o2lnet:" in out
    assert "results/models/o2lnet_base.pt" in out and "results/ensemble/stream_tuning_base.nc" in out
    # the compared variant hloba_unrefined reads the trained O2Lnet and the tuning made for it
    job = re.search(r"rule compare_method:\n\s+input: ([^\n]*)\n\s+output: results/comparison/runs/hloba_unrefined.nc", out)
    assert job and "o2lnet_base.pt" in job.group(1) and "stream_tuning_base.nc" in job.group(1)
    job = re.search(r"rule compare_method:\n\s+input: ([^\n]*)\n\s+output: results/comparison/runs/hloba.nc", out)
    assert job and "results/models/o2lnet.pt" in job.group(1) and "stream_tuning.nc" in job.group(1)
    # its streams' years leave the world's runs as they were: 2000-2005 and 2006-2011
    assert re.search(r"rule make_world_1:\n\s+output: results/reference/2006.nc", out)


def job_threads(dry_run: str) -> dict:
    """Rule -> set of threads of its jobs in a dry run's listing (Snakemake omits ``threads: 1``)."""
    out = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run):
        if m := re.match(r"(?:local)?rule (\w+):", block):
            rule = m.group(1)
            t = re.search(r"^\s+threads: (\d+)", block, flags=re.M)
            out.setdefault(rule, set()).add(int(t.group(1)) if t else 1)
    return out


def test_jobs_after_training_run_side_by_side_on_two_cores(workdir):
    shared = ("tune_stream", "tune_variant", "calibrate_uncertainty", "decode_year", "evaluate_year", "assimilate_year")
    two = job_threads(run(SNAKEMAKE + ["-n", "--cores", "2"], workdir).stdout)
    assert all(two[rule] == {1} for rule in shared), two
    # the cost table's timings: each method alone on the cores; training takes both
    assert two["compare_method"] == two["train_o2lnet"] == {2}
    eight = job_threads(run(SNAKEMAKE + ["-n", "--cores", "8"], workdir).stdout)
    assert all(eight[rule] == {2} for rule in shared), eight


def test_lint_and_format_are_clean(repo):
    lint = run(SNAKEMAKE + ["--lint"], repo, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], repo, check=False)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_every_rule_has_log_benchmark_and_conda(repo):
    import re

    text = "\n".join(p.read_text() for p in (repo / "workflow/rules").glob("*.smk"))
    rules = len(re.findall(r"^\s*rule( \w+)?:", text, flags=re.M))  # conditional and looped rules are indented
    derived = len(re.findall(r"^\s*use rule \w+ as \w+ with:", text, flags=re.M))  # inherit the rest
    assert rules >= 2 and derived >= 1
    for directive in ("log:", "benchmark:"):  # a derived rule writes its own log and benchmark
        assert len(re.findall(rf"^\s+{directive}", text, flags=re.M)) == rules + derived, directive
    for directive in ("conda:", "threads:", "resources:"):  # a derived rule may restate them
        assert rules <= len(re.findall(rf"^\s+{directive}", text, flags=re.M)) <= rules + derived, directive


def test_bad_config_fails_before_any_job_with_the_key(workdir):
    """The Snakefile checks the merged config before planning (each kind of bad key, named alike,
    is tests/test_config.py's, in-process)."""
    key = "world.qg.nx"
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"world": {"qg": {"nx": "abc"}}}))
    proc = run(SNAKEMAKE + ["-n", "--cores", "1", "--configfile", "bad.yaml"], workdir, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert any(line.startswith(f"config key '{key}'") for line in output.splitlines()), output
    assert not (workdir / "results").exists()


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tiny_pipeline, tmp_path):
    """The session's tiny pipeline (conftest) made every output. Reruns happen in a copy (other
    tests read the session's results)."""
    import shutil

    workdir = tmp_path / "wf"
    shutil.copytree(tiny_pipeline, workdir, symlinks=True)
    for year in (2001, 2002):
        with xr.open_dataset(workdir / f"results/reference/{year}.nc") as ds:
            assert ds["temperature"].attrs["units"] == "K"
    with xr.open_dataset(workdir / "results/prep/normalization.nc") as norm:
        assert norm.sizes["channel"] == 8
        assert (norm["std"] > 0).all()
    obs = pd.read_parquet(workdir / "results/obs/2002.parquet")
    assert set(obs.platform) == {"radiosonde", "surface", "satellite", "aircraft"}
    assert 0.0 < obs.gross_error.mean() < 0.05
    ae_report = json.loads((workdir / "results/models/autoencoder_report.json").read_text())
    assert len(ae_report["validation_rmse_over_anomaly_std"]) == 8
    assert ae_report["history"][-1]["validation_loss"] < ae_report["history"][0]["validation_loss"] * 1.5
    o2l_report = json.loads((workdir / "results/models/o2lnet_report.json").read_text())
    assert 0.2 < o2l_report["calibration_mean_normalized_squared_error"] < 5.0
    model, payload = load_o2lnet(workdir / "results/models/o2lnet.pt")
    assert payload["static_sigma_o2"].shape == (model.cfg.ae.n_latent,)
    log = (workdir / "results/logs/make_world/0.log").read_text()
    assert "year 2002 done" in log
    assert "world.transforms pocketfft: numpy's pocketfft, the same world on every x86-64 host" in log
    with xr.open_dataset(workdir / "results/reference/2002.nc") as ref:
        assert ref.attrs["world_transforms"] == "pocketfft"
    assert (workdir / "results/benchmarks/make_world/0.tsv").exists()
    with xr.open_dataset(workdir / "results/ensemble/calibration.nc") as cal:
        assert cal.attrs["forecast_model"] == "qg"
        assert cal.attrs["hybrid_a"] >= 0 and cal.attrs["hybrid_b"] >= 0
        assert (cal["sigma_clim2"] > 0).all()
        rmse = cal["lead_rmse"].values
        assert (rmse[-1] > rmse[0]).sum() >= 6  # errors grow with lead for most channels
    for png in ("error_growth.png", "sigma_clim_map.png"):
        assert (workdir / "results/ensemble" / png).read_bytes()[:4] == b"\x89PNG"
    # the stream, the archive, the figures and the evaluation of the reanalysis year
    with xr.open_dataset(workdir / "results/reanalysis/2002.nc") as ds:
        assert ds.sizes["time"] == 1460 and "temperature_std" in ds
        assert ds.attrs["uncertainty_model"] == "network"  # the std network fitted on the calibration year
    for png in ("maps.png", "uncertainty_series.png"):
        assert (workdir / "results/figures/2002" / png).read_bytes()[:4] == b"\x89PNG"
    scores = pd.read_csv(workdir / "results/evaluation/2002/scores.csv")
    year = scores[scores.period == "year"].set_index("channel")
    assert len(year) == 8 and (year.acc > 0.5).all() and (year.spread_skill > 0.3).all()
    # the reliability of the std: ten bins per channel, and the same spread/RMSE as the scores
    reliability = pd.read_csv(workdir / "results/evaluation/2002/reliability.csv")
    assert reliability.groupby("channel").size().to_dict() == {c: 10 for c in year.index}
    spread = reliability.groupby("channel").spread_over_rmse.first()
    np.testing.assert_allclose(spread[year.index], year.spread_skill, rtol=1e-4)
    assert reliability.corr_std_abs_error.between(-1, 1).all() and reliability.reliability_slope.notna().all()
    assert (workdir / "results/evaluation/2002/reliability.png").read_bytes()[:4] == b"\x89PNG"
    # the std network's archive std (issue #16's targets, on the tiny world): shape, size and slope,
    # and larger far from the fixed stations than near them, as the error is
    summary = reliability.groupby("channel").first()
    assert (summary.corr_std_abs_error >= 0.3).all() and summary.spread_over_rmse.between(0.8, 1.2).all(), summary
    assert summary.reliability_slope.between(0.7, 1.3).all(), summary
    assert summary.std_far_over_near.mean() > 1.0 and summary.rmse_far_over_near.mean() > 1.0, summary
    obs_stats = pd.read_csv(workdir / "results/evaluation/2002/observations.csv")
    assert set(obs_stats.platform) == {"radiosonde", "surface", "satellite", "aircraft"}
    # the analysis fits the observations better than the background on the whole (tiny world: O-A / O-B
    # std 0.91-1.002 per variable and platform, mean 0.988); a smoother's analysis is drawn to its
    # window's observations, the next cycle's too, so a row may sit at 1 (the filter gave 0.92-0.997;
    # with the smoother's correction, which reads the next two cycles' increments, 0.88-1.010, mean 0.984)
    fit = obs_stats.oma_std / obs_stats.omb_std
    assert fit.mean() < 0.995 and fit.max() < 1.02, fit
    skill = pd.read_csv(workdir / "results/evaluation/2002/forecast_skill.csv")
    assert sorted(skill.lead_days.unique()) == [1, 2] and len(skill) == 16
    day = skill.pivot(index="channel", columns="lead_days", values="rmse")
    floor = skill.pivot(index="channel", columns="lead_days", values="rmse_from_truth")
    assert (floor[2] >= floor[1]).all()  # model error grows with lead from a perfect start
    assert (floor[1] < day[1]).all()  # and stays below the error of forecasts from the analyses
    # the method comparison: every method on the same period, HLOBA beats the free run everywhere
    card = pd.read_csv(workdir / "results/comparison/scorecard.csv")
    methods = ["hloba", "hloba_filter", "hloba_norotation", "l3dvar", "l4dvar", "oi", "free"]
    assert sorted(card.method.unique()) == sorted(methods) and len(card) == 7 * 8
    assert (card[card.method == "hloba"].ratio_to_free < 1.0).all()
    assert (card[card.method == "l4dvar"].ratio_to_l4dvar == 1.0).all()
    mean = card.groupby("method").rmse_normalised.mean()
    assert mean["hloba"] <= mean["l3dvar"]  # issue #15: HLOBA at least as good as latent 3D-Var
    # the smoother (assimilation.smoother_hours) improves on the filter's analyses of the same stream
    assert mean["hloba"] < mean["hloba_filter"]
    # scored also at latent 4D-Var's window starts (every 4th cycle), and the smoothers say so (latent
    # 4D-Var, and HLOBA with O2Lnet's window reaching 6 hours past the analysis time)
    assert card.rmse_window_start.notna().all() and (card.rmse_window_start != card.rmse).any()
    assert card.groupby("method").uses_later_observations.first().to_dict() == {
        m: m in ("l4dvar", "hloba", "hloba_filter", "hloba_norotation") for m in methods}
    cost = pd.read_csv(workdir / "results/comparison/cost.csv").set_index("method")
    assert (cost.analysis_ms_per_cycle > 0).all() and cost.loc["l4dvar", "time_ratio_to_l4dvar"] == 1.0
    assert cost.loc["l4dvar", "mean_iterations"] > 0 and cost.loc["hloba", "mean_iterations"] == 0
    assert (workdir / "results/comparison/scorecard.png").read_bytes()[:4] == b"\x89PNG"
    # nothing left to do: a second run is a no-op
    again = run(SNAKEMAKE + ["-n", "--cores", "2", "--configfile", "config/test.yaml"], workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    # how a stream runs (rule resources) reruns nothing; what it makes (params) reruns the streams
    (workdir / "run.yaml").write_text("assimilation: {log_every: 7, checkpoint_every: 13}\n")
    same = run(SNAKEMAKE + ["-n", "--cores", "2", "--configfile", "config/test.yaml", "run.yaml"], workdir)
    assert "Nothing to be done" in same.stdout + same.stderr
    (workdir / "science.yaml").write_text("assimilation: {qc_threshold: 3.5}\n")
    plan = run(SNAKEMAKE + ["-n", "--cores", "2", "--configfile", "config/test.yaml", "science.yaml"], workdir).stdout
    assert "tune_stream" in plan and "assimilate_year" in plan and "train_o2lnet" not in plan
    # a setting that HLOBA alone reads reruns HLOBA's compared runs, not the baselines'
    (workdir / "hloba_only.yaml").write_text("assimilation: {lead_guess: persistence}\n")
    plan = run(SNAKEMAKE + ["-n", "--cores", "2", "--configfile", "config/test.yaml", "hloba_only.yaml"], workdir).stdout
    assert set(re.findall(r"^\s*output: results/comparison/runs/(\w+)\.nc", plan, re.M)) == {
        "hloba", "hloba_filter", "hloba_norotation"}
    # switching the forecast model through config alone trains the emulator and recalibrates,
    # and nothing upstream reruns (the plan; the emulator is trained and used end to end in
    # tests/test_own_data.py's global example)
    switch = ["--configfile", "config/test.yaml", "--config", "forecast={'model': 'emulator'}"]
    plan = run(SNAKEMAKE + ["-n", "--cores", "2"] + switch, workdir).stdout
    assert "train_emulator" in plan and "generate_lagged_ensemble" in plan
    assert "tune_stream" in plan and "assimilate_year" in plan and "compare_method" in plan
    assert "train_autoencoder" not in plan and "make_world" not in plan
    # rerunning one year touches only that year's file
    other = workdir / "results/obs/2001.parquet"
    before = (other.read_bytes(), other.stat().st_mtime_ns)
    target = workdir / "results/obs/2002.parquet"
    old_bytes, old_mtime = target.read_bytes(), target.stat().st_mtime_ns
    # (the target comes first: --configfile and --forcerun take several values)
    rerun = run(SNAKEMAKE + ["results/obs/2002.parquet", "--cores", "2", "--configfile", "config/test.yaml",
                             "--forcerun", "simulate_observations"], workdir)
    assert "1 of 1 steps" in rerun.stdout + rerun.stderr
    assert (other.read_bytes(), other.stat().st_mtime_ns) == before
    assert target.stat().st_mtime_ns != old_mtime
    assert target.read_bytes() == old_bytes  # same seed, same bytes
