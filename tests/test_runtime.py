"""The lowest layer: device choice, torch threads, glibc's malloc setting."""

import platform
import sys

import pytest
import torch

from hloba.runtime import resolve_device, reuse_freed_memory, torch_threads


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
