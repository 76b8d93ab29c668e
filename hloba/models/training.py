"""A small, seeded training loop with early stopping, shared by the autoencoder and O2Lnet."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from hloba.models.settings import TrainingConfig, check_precision

log = logging.getLogger(__name__)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: a CPU with AMX tiles or with AVX-512's
    bfloat16 dot products (``avx512_bf16``: Intel Cooper Lake and later, AMD Zen 4 and later), or
    a CUDA GPU with bfloat16 support. Elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def bfloat16_pays(device: torch.device) -> bool:
    """Where ``auto`` picks bfloat16: CPUs with AMX tiles, where the default networks' steps and
    O2Lnet's pass take about half float32's time, or with ``avx512_bf16`` (0.56-0.64 times it on an
    AMD EPYC host: ``benchmarks/training_speed.py``, ``benchmarks/analysis_kernels.py``). Not a
    CUDA GPU, though it multiplies bfloat16 natively: on an H200 the default autoencoder's and
    O2Lnet's training steps took 1.36 and 1.76 times float32's time under bfloat16 autocast
    (``benchmarks/gpu_check.sh``; likely because layers this small are bound by kernel launches,
    to which autocast adds casts), so ``auto`` is float32 there."""
    return device.type == "cpu" and native_bfloat16(device)


def resolve_precision(precision: str, device: torch.device, key: str = "training.precision") -> torch.dtype:
    """The dtype of a pass's convolutions and matrix products for a precision setting
    (``training.precision``, ``assimilation.o2lnet_precision``): ``auto`` is bfloat16 where
    :func:`bfloat16_pays`, float32 otherwise; ``key`` names the setting in the error."""
    check_precision(precision, key)
    if precision == "auto":
        return torch.bfloat16 if bfloat16_pays(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def warn_if_emulated(dtype: torch.dtype, device: torch.device, key: str) -> None:
    """A warning when ``key`` asks for bfloat16 on a device that only emulates it (slower than float32)."""
    if dtype == torch.bfloat16 and not native_bfloat16(device):
        log.warning("%s: bfloat16 on %s is emulated (neither AMX tiles nor avx512_bf16, or a GPU without "
                    "bfloat16): slower than float32; set it to auto or float32", key, device)


def step_precision(device: torch.device, dtype: torch.dtype):
    """Autocast of a training step's forward pass to ``dtype`` (a no-op for float32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def learning_rate_factor(step: int, total: int, warmup: int) -> float:
    """The learning rate's factor at ``step`` (0-based) of ``total``: a linear rise over the first
    ``warmup`` steps to 1, then a cosine from 1 to 0.05 over the rest (with ``warmup = 0`` the
    cosine over all ``total`` steps)."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


def training_environment(device: torch.device, precision: str = "float32") -> dict:
    """What a trained network's weights depend on besides data, config and seed: the device, the
    step's precision and torch's intra-op thread count (on CPU, 1 and 2 threads give weights that
    differ by ~1e-7..1e-5, since reductions are split differently; in float32 the same count gives
    identical weights, in bfloat16 two runs may differ: docs/latent-space.md)."""
    dtype = resolve_precision(precision, torch.device(device))
    return {"device": str(device), "precision": str(dtype).removeprefix("torch."),
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}


class WeightAverage:
    """An exponential moving average of ``params`` (decay ``min(decay, (1 + t) / (10 + t))`` at update
    ``t``, so that the first steps do not weigh the initial weights); :meth:`swapped` puts it into
    the parameters for a block of code and gives them back after."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params, self.decay, self.updates = params, decay, 0
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], weight)
        self.updates += 1

    @contextlib.contextmanager
    def swapped(self):
        with torch.no_grad():
            kept = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.average):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, k in zip(self.params, kept):
                    p.copy_(k)


def fit(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    validation_loss: Callable[[], float],
    n_train: int,
    cfg: TrainingConfig,
    device: torch.device,
    name: str,
    progress: bool = True,
) -> list[dict]:
    """Train ``params`` by Adam with cosine decay (after ``cfg.warmup_epochs`` of linear warmup:
    :func:`learning_rate_factor`); keep the weights of the best validation epoch.

    ``batch_loss(indices, generator)`` returns the loss of the training samples ``indices``, run
    under autocast to ``cfg.precision``; ``validation_loss()`` the mean validation loss, always
    in float32 (it chooses the epoch kept). With ``cfg.average_decay`` the validation and the kept
    weights are those of :class:`WeightAverage`. Returns the per-epoch history.
    """
    device = torch.device(device)
    dtype = resolve_precision(cfg.precision, device)
    warn_if_emulated(dtype, device, "training.precision")
    log.info("%s: training steps in %s on %s", name, str(dtype).removeprefix("torch."), device)
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
    steps_per_epoch = max(1, min(cfg.samples_per_epoch, n_train) // cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_factor(s, total, warmup))
    average = WeightAverage(params, cfg.average_decay) if cfg.average_decay > 0 else None
    validated = average.swapped if average is not None else contextlib.nullcontext
    best, best_state, history, bad_epochs = math.inf, None, [], 0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator)[: steps_per_epoch * cfg.batch_size]
        running = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, mininterval=2.0)
        t_epoch = time.perf_counter()
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            with step_precision(device, dtype):
                loss = batch_loss(idx, generator).float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if average is not None:
                average.update()
            running += float(loss.detach())
            bar.set_postfix(loss=f"{running / (step + 1):.4f}")
        model.eval()
        with torch.no_grad(), validated():
            val = validation_loss()
            state = copy.deepcopy(model.state_dict()) if val < best else None
        seconds = time.perf_counter() - t_epoch
        history.append({"epoch": epoch + 1, "train_loss": running / steps_per_epoch, "validation_loss": val,
                        "seconds": seconds, "learning_rate": schedule.get_last_lr()[0]})
        improved = val < best
        if improved:
            best, best_state, bad_epochs = val, state, 0
        else:
            bad_epochs += 1
        log.info("%s epoch %d: train %.5f, validation %.5f%s (%.1f s)", name, epoch + 1,
                 history[-1]["train_loss"], val, " *" if improved else "", seconds)
        if bad_epochs >= cfg.patience:
            log.info("%s: early stop after %d epochs without improvement", name, bad_epochs)
            break
        if cfg.max_minutes is not None and (time.perf_counter() - start) / 60.0 > cfg.max_minutes:
            if epoch + 1 < cfg.epochs:
                log.warning("%s: stopping at the time limit of %.1f min (max_minutes) after %d of %d epochs: the "
                            "network is less trained than its epochs ask, and a slower or busier machine stops it "
                            "sooner; raise max_minutes for a result that does not depend on the machine", name,
                            cfg.max_minutes, epoch + 1, cfg.epochs)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
