"""The tiny configuration through the real Snakemake slurm executor plugin, against fake SLURM
commands (tests/fake_slurm: sbatch runs the job script locally, sacct reports its state)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import copy_workflow

FAKE = os.path.join(os.path.dirname(__file__), "fake_slurm")


def rule_resources(repo) -> dict:
    """threads, mem_mb and runtime of every rule, read from the rule files."""
    out = {}
    for smk in (repo / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n\s*rule ", smk.read_text())[1:]:  # conditional rules are indented
            name = block.split(":", 1)[0].strip()
            # a literal value, or None where the rule computes it (assimilate_year's threads)
            get = lambda key: int(m.group(1)) if (m := re.search(rf"{key}[:=]\s*(\d+)", block)) else None  # noqa: E731
            out[name] = {"threads": get("threads"), "mem_mb": get("mem_mb"), "runtime": get("runtime")}
    return out


@pytest.mark.slow
def test_tiny_workflow_through_the_slurm_executor(repo, tiny_pipeline, tmp_path):
    work = copy_workflow(repo, tmp_path / "wf")
    # the world and its normalization are made (the session pipeline's); what follows is submitted:
    # one job on the CPU partition, one on the GPU partition
    for name in ("reference", "prep"):
        shutil.copytree(tiny_pipeline / "results" / name, work / "results" / name)
    profile = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["software-deployment-method"] == "conda"
    # fill the placeholders as a user would; no conda on this machine
    profile.pop("software-deployment-method")
    assert profile["default-resources"]["slurm_account"] == "'<your-account>'"
    profile["default-resources"].update(slurm_account="'hlobatest'", slurm_partition="'cpu'")
    for rule in profile.get("set-resources", {}).values():
        rule["slurm_partition"] = "'gpu'"
    profile["set-resources"].setdefault("train_autoencoder", {})["gpu"] = 1  # a GPU through the portable resource
    (work / "profiles/test-slurm").mkdir()
    (work / "profiles/test-slurm/config.yaml").write_text(yaml.safe_dump(profile))
    state = tmp_path / "slurm"
    # jobs finish inside sbatch, so the executor's first status check (after 1 s) finds them done
    # rather than backing off by 10 s per check
    env = dict(os.environ, PATH=f"{FAKE}:{os.environ['PATH']}", FAKE_SLURM_DIR=str(state), FAKE_SLURM_SYNC="1")
    targets = ["results/models/autoencoder.pt", "results/obs/2002.parquet"]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--profile", "profiles/test-slurm", "--configfile",
         "config/test.yaml", "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (work / "results/models/autoencoder.pt").exists()
    subs = [json.loads(line) for line in (state / "submissions.jsonl").read_text().splitlines()]
    rules = [re.match(r"rule_(\w+?)(_wildcards_.*)?$", s["options"]["comment"]).group(1) for s in subs]
    assert sorted(rules) == ["simulate_observations", "train_autoencoder"]
    expected = rule_resources(repo)
    for sub, rule in zip(subs, rules):
        opts, want = sub["options"], expected[rule]
        assert opts["A"] == "hlobatest" if "A" in opts else opts["account"] == "hlobatest"
        partition = opts.get("p", opts.get("partition"))
        assert partition == ("gpu" if rule in profile["set-resources"] else "cpu"), (rule, opts)
        assert int(opts["cpus-per-task"]) == want["threads"], (rule, opts)
        assert int(opts["mem"]) == want["mem_mb"], (rule, opts)
        assert int(opts.get("t", opts.get("time"))) == want["runtime"], (rule, opts)
        gpus = [a for a in sub["argv"] if "gpu" in a and a.startswith("--g")]
        assert bool(gpus) == (rule == "train_autoencoder"), (rule, sub["argv"])
    sruns = [json.loads(line) for line in (state / "srun.jsonl").read_text().splitlines()]
    assert len(sruns) == len(subs)
    ae_job = str(subs[rules.index("train_autoencoder")]["jobid"])
    assert any(o.startswith("--gpus=1") or o.startswith("--gres=gpu:1") for s in sruns if s["jobid"] == ae_job
               for o in s["options"]), sruns
