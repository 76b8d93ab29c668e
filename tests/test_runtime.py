"""The lowest layer: device choice, torch threads, glibc's malloc setting, the world's FFT branch."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import keep_mkl_branch
from hloba.runtime import PORTABLE_MKL_BRANCH, portable_fft, resolve_device, reuse_freed_memory, torch_threads

REPO = Path(__file__).resolve().parents[1]
# a few days of the default 64 x 64 world at its 60-minute step, in a process of its own (MKL reads
# its branch at the first call), through the world's entry-point setting
WORLD_RUN = """
import sys
import numpy as np, torch
from hloba.runtime import portable_fft
from hloba.world.qg import QGModel, QGParams, random_initial_state
print(portable_fft())
torch.set_num_threads(1)
params = QGParams(dt_minutes=60.0)
transforms = sys.argv[2] if len(sys.argv) > 2 else "torch"
model = QGModel(params, dtype=torch.float64, transforms=transforms)
state = random_initial_state(params, 1, torch.Generator().manual_seed(3), dtype=torch.float64, transforms=transforms)
with torch.no_grad():
    np.save(sys.argv[1], model(state, 0.0, 24 * 5).numpy())
"""


def test_cuda_without_a_gpu_names_the_choices():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' requested but no CUDA GPU is available: use 'cpu' or 'auto'"):
        resolve_device("cuda")


def test_threads_are_restored():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc only")
def test_freed_memory_is_kept_on_glibc():
    # glibc accepts both thresholds, and setting them again (every rule, the CLI) is harmless
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True


def test_the_world_entry_points_ask_for_the_portable_fft_branch(monkeypatch):
    keep_mkl_branch(monkeypatch)
    assert portable_fft() == PORTABLE_MKL_BRANCH == "COMPATIBLE" == os.environ["MKL_CBWR"]
    monkeypatch.setenv("MKL_CBWR", "AUTO")  # a user's own choice stays
    assert portable_fft() == "AUTO" == os.environ["MKL_CBWR"]
    adapter = (REPO / "workflow/scripts/make_world.py").read_text()
    assert adapter.index("portable_fft()") < adapter.index("write_reference_years(config")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="MKL's branches: x86 only")
def test_the_world_is_the_same_bits_with_avx2_and_the_hosts_widest_vectors(tmp_path):
    """With MKL's portable FFT branch, what is left to differ between x86 hosts is torch's own
    element-wise kernels, which it picks by instruction set: AVX2 and the host's widest (AVX-512
    here, 2026-12-05) must give the same trajectory to the bit (docs/atmosphere.md). With
    world.transforms: pocketfft (numpy's FFTs, compiled once for every x86-64 CPU, and no BLAS) MKL is
    out of the world's steps: its host-specific branch (AUTO, which on Intel hosts changes torch's
    world) changes no bit either, and the trajectory stays torch's to rounding over these 5 days."""
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    runs = {}
    for name, transforms, setting in (("widest", "torch", {}), ("avx2", "torch", {"ATEN_CPU_CAPABILITY": "avx2"}),
                                      ("pocketfft", "pocketfft", {}),
                                      ("pocketfft_avx2_auto", "pocketfft", {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AUTO"})):
        out = subprocess.run([sys.executable, "-c", WORLD_RUN, str(tmp_path / f"{name}.npy"), transforms],
                             env=env | setting, capture_output=True, text=True, check=True)
        assert out.stdout.split()[-1] == setting.get("MKL_CBWR", "COMPATIBLE")
        runs[name] = np.load(tmp_path / f"{name}.npy")
    assert np.isfinite(runs["widest"]).all() and runs["widest"].std() > 0
    np.testing.assert_array_equal(runs["widest"], runs["avx2"])
    np.testing.assert_array_equal(runs["pocketfft"], runs["pocketfft_avx2_auto"])
    np.testing.assert_allclose(runs["pocketfft"], runs["widest"], rtol=0, atol=1e-6 * np.abs(runs["widest"]).max())
