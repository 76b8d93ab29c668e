"""envs/*.yaml list the same packages as pyproject.toml (conda names mapped to PyPI names)."""

import re

import pytest
import tomllib
import yaml

CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch-gpu": "torch", "netcdf4": "netcdf4", "distributed": "dask"}


def names(requirements):
    out = set()
    for req in requirements:
        name = re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].strip().lower()
        out.add(CONDA_TO_PYPI.get(name, name))
    return out


@pytest.mark.parametrize("env", ["envs/hloba.yaml", "envs/hloba-gpu.yaml"])
def test_env_matches_pyproject(repo, env):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = names(project["dependencies"])
    spec = yaml.safe_load((repo / env).read_text())
    conda = [d for d in spec["dependencies"] if isinstance(d, str)]
    have = names(conda) - {"python", "pip"}
    assert have == wanted
    assert "conda-forge" in spec["channels"]
    torch_pkg = [d for d in conda if d.startswith("pytorch")]
    assert torch_pkg == (["pytorch-gpu>=2.3"] if "gpu" in env else ["pytorch-cpu>=2.3"])
    # lower bounds agree
    bounds = {re.split(r"[<>=\[]", r)[0].lower(): re.search(r">=([\d.]+)", r).group(1) for r in project["dependencies"]}
    for dep in conda:
        m = re.match(r"([\w-]+)>=([\d.]+)", dep)
        if m:
            pypi = CONDA_TO_PYPI.get(m.group(1), m.group(1))
            assert bounds[pypi] == m.group(2), dep


def test_every_rule_uses_an_env_file_that_exists(repo):
    text = (repo / "workflow/rules/common.smk").read_text()
    env = re.search(r'ENV = "([^"]+)"', text).group(1)
    assert (repo / "workflow/rules" / env).resolve().exists()
