"""The stream's stage clock and the peak memory of each analysis (the comparison's cost table)."""

from __future__ import annotations

import time as _time

import torch

STAGES = ("forecast", "encode", "qc", "o2lnet", "update", "decode")


class StageClock:
    """Seconds per stage of the cycle, summed over cycles (``total`` carries over a resume)."""

    def __init__(self, device: torch.device, total: dict | None = None) -> None:
        self.total = dict(total) if total else dict.fromkeys(STAGES, 0.0)
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._t = 0.0
        self.memory = AnalysisMemory(device)

    def start(self) -> None:
        self.sync()
        self._t = _time.perf_counter()

    def lap(self, stage: str) -> None:
        self.sync()
        now = _time.perf_counter()
        self.total[stage] += now - self._t
        self._t = now


class AnalysisMemory:
    """Peak memory of one analysis above what was held before it (MiB).

    CUDA: the allocator's peak. CPU (Linux): the resident-set high-water mark, reset through
    ``/proc/self/clear_refs`` before each analysis; NaN where the kernel does not offer that.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._base = 0.0

    @staticmethod
    def _status_kb(key: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return float(line.split()[1])
        raise OSError(key)

    def start(self) -> None:
        try:
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
                self._base = torch.cuda.memory_allocated() / 2**20
            else:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self._base = self._status_kb("VmRSS") / 1024
        except OSError:
            self._base = float("nan")

    def peak(self) -> float:
        try:
            if self.cuda:
                return torch.cuda.max_memory_allocated() / 2**20 - self._base
            return self._status_kb("VmHWM") / 1024 - self._base
        except OSError:
            return float("nan")
