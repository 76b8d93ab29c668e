"""Decode a year's latent analyses into model space, with uncertainty, in parallel with dask.

Per time step: the analysis ``D(z_a)`` and the standard deviation over ``samples`` Monte-Carlo
draws ``D(z_a + V (sigma_w * eps))``, ``eps ~ N(0, I)`` (``V`` the stream's update rotation and
``sigma_w^2`` the analysis variance in update coordinates; without a rotation ``V = I``), all
destandardised to physical units. Where the latent file holds per-channel weights ``g``
(:func:`hloba.latent.analysis_weights`: HLOBA with ``weighted_state: combined``), the analysis and
every draw are taken as ``D(z_b) + g (D(.) - D(z_b))``, the state the stream cycled from; with
``draw_background`` each draw also perturbs the background, ``D(z_b + d_b) + g (D(z_a + d_a) -
D(z_b + d_b))``, ``d_b`` drawn with the background variance and ``d_a`` jointly with it
(:func:`joint_draws`), so a channel of weight 0 keeps the background's uncertainty. The work
is split into chunks of consecutive times, one dask task each; each worker process loads the
decoder once (cached per process). Random draws are seeded per chunk, so results do not depend on
the number of workers or the order of tasks; decoding in the caller's process runs each chunk on
one torch thread, as a worker process does (with two threads, two decodes of the same chunk in one
test session differed in the last bits of the first half of its times, and the std of geopotential
by up to 5e-4 relative).
"""

from __future__ import annotations

import functools
import multiprocessing
import logging
import time as _time

import numpy as np
import pandas as pd
import torch

from hloba.latent import KEPT, WEIGHTS, analysis_weights, decoded_analysis, kept_part, latent_precision
from hloba.normalization import Normalizer
from hloba.runtime import torch_threads
from hloba.models.autoencoder import load_autoencoder

log = logging.getLogger(__name__)

LOADS = {"count": 0}  # decoder loads in this process (tests check: once per worker)


@functools.lru_cache(maxsize=4)
def worker_decoder(path: str, sha256: str = "", precision: torch.dtype = torch.float32
                   ) -> tuple[torch.nn.Module, Normalizer]:
    """The autoencoder and its normaliser, loaded once per process (``sha256`` and ``precision``, the
    dtype of its passes as the latent file records it, key the cache).
    In a dask worker process torch uses one thread (the workers are the parallelism); a threaded
    worker in the caller's process leaves the caller's thread count alone (setting it there would
    change every later torch computation of that process, and with it their last bits)."""
    try:
        from distributed import get_worker

        get_worker()
        if multiprocessing.parent_process() is not None:
            torch.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    ae, payload = load_autoencoder(path, inference_dtype=precision)
    LOADS["count"] += 1
    return ae, Normalizer.from_state(payload["normalizer"])


def decoder_loads() -> int:
    """How many times this process has loaded the decoder (run on a worker: that worker's count)."""
    return LOADS["count"]


def preload_decoder(path: str, sha256: str = "", precision: torch.dtype = torch.float32) -> int:
    """Load the decoder in this (worker) process now; returns the process's load count."""
    worker_decoder(path, sha256, precision)
    return LOADS["count"]


def joint_draws(sigma2_a: torch.Tensor, sigma2_b: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of the analysis and background errors ``(d_a, d_b)`` in update coordinates, each
    with its variance (``sigma2_a``, ``sigma2_b``: ``(time, latent)``) and correlated as the update
    makes them: for ``z_a = z_b + k (z_o - z_b)`` with independent background and estimate errors,
    ``cov(e_a, e_b) = (1 - k) sigma2_b = sigma2_a``, so ``d_a = c d_b + sqrt(sigma2_a - c^2 sigma2_b) eps``
    with ``c = sigma2_a / sigma2_b`` (capped at 1 where a calibrated ``sigma2_a`` exceeds ``sigma2_b``).
    Where the background variance is not finite or not positive (a cold first cycle) ``d_b`` is 0
    and ``d_a`` is drawn alone."""
    ok = torch.isfinite(sigma2_b) & (sigma2_b > 0)
    s2b = torch.where(ok, sigma2_b, torch.ones_like(sigma2_b))
    c = torch.where(ok, torch.minimum(sigma2_a / s2b, torch.ones_like(s2b)), torch.zeros_like(s2b))
    d_b = torch.where(ok, s2b.sqrt(), torch.zeros_like(s2b)) * torch.randn(s2b.shape, generator=generator)
    rest = (sigma2_a - c * c * s2b).clamp(min=0).sqrt()
    return c * d_b + rest * torch.randn(s2b.shape, generator=generator), d_b


@torch.no_grad()
def decode_chunk(autoencoder_path: str, sha256: str, times, z_a: np.ndarray, sigma2_update: np.ndarray,
                 rotation: np.ndarray | None, samples: int, seed: int, chunk: int, batch: int = 64,
                 z_b: np.ndarray | None = None, weights: np.ndarray | None = None,
                 sigma2_background: np.ndarray | None = None, kept: np.ndarray | None = None,
                 precision: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` physical ``(time, C, ny, nx)`` (float64, float32) for one chunk of times;
    with ``weights`` (and the chunk's backgrounds ``z_b``) each decoding ``d`` is taken as
    ``D(z_b) + g (d - D(z_b))``, plus the chunk's ``kept`` background part (standardised) where
    the file has one; with ``sigma2_background`` too (the background variance in update
    coordinates) each draw perturbs the background as well (:func:`joint_draws`). ``precision``: of
    the decoder's passes, the latent file's (:func:`hloba.latent.latent_precision`)."""
    ae, norm = worker_decoder(autoencoder_path, sha256, precision)
    times = pd.DatetimeIndex(times)
    z = torch.as_tensor(z_a, dtype=torch.float32)
    zb = None if weights is None else torch.as_tensor(z_b, dtype=torch.float32)
    d_b = None if weights is None else ae.decode(zb)
    kept = None if kept is None else torch.as_tensor(kept, dtype=torch.float32)
    mean = norm.destandardize(decoded_analysis(ae.decode(z), d_b, weights, kept), times)
    if samples < 2:
        return mean.numpy(), np.zeros(mean.shape, np.float32)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(chunk))
    s2 = torch.as_tensor(sigma2_update, dtype=torch.float32).clamp(min=0)
    sd = s2.sqrt()
    s2b = None if weights is None or sigma2_background is None else torch.as_tensor(sigma2_background, dtype=torch.float32)
    v = None if rotation is None else torch.as_tensor(rotation, dtype=torch.float32)
    rotate = (lambda d: d) if v is None else (lambda d: d @ v.T)
    total = torch.zeros_like(mean)
    total2 = torch.zeros_like(mean)
    for _ in range(samples):
        if s2b is None:
            dz, draw_b = rotate(sd * torch.randn(z.shape, generator=g)), d_b
        else:
            dz, dzb = joint_draws(s2, s2b, g)
            dz, draw_b = rotate(dz), ae.decode(zb + rotate(dzb))
        x = norm.destandardize(decoded_analysis(ae.decode(z + dz), draw_b, weights, kept), times)
        total += x
        total2 += x * x
    m = total / samples
    var = (total2 / samples - m * m).clamp(min=0) * samples / (samples - 1)
    return mean.numpy(), var.sqrt().float().numpy()


def time_chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def decode_latent(latent, autoencoder_path, sha256: str, samples: int, seed: int, time_chunk: int,
                  client=None, progress: bool = True, name: str = "analysis",
                  draw_background: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Decode every time of ``latent`` (the stream's dataset); returns ``(mean, std)`` physical
    (a weighted analysis as the stream cycled from it: :func:`hloba.latent.analysis_weights`;
    ``draw_background``: its draws perturb the background too, which needs the file's
    ``sigma_b2_update``; without weights the draws are the analysis's alone either way).

    With a dask ``client`` the chunks run on its workers; without one, in this process. ``name``
    tells the dask tasks of different fields apart (the background's decoding is not the analysis's).
    """
    times = pd.DatetimeIndex(latent["time"].values)
    z_a = latent["z_a"].values
    s2 = latent["sigma_a2_update"].values
    rotation = latent["rotation"].values if "rotation" in latent else None
    weights = analysis_weights(latent)
    z_b = latent["z_b"].values if weights is not None else None
    chunks = time_chunks(len(times), time_chunk)
    args = [(str(autoencoder_path), sha256, times[c].values, z_a[c], s2[c]) for c in chunks]
    precision = latent_precision(latent)  # decoded as the stream ran it
    # the kept part (blended weighted states' background, the smoother's correction) is added either way
    weighted = [{"kept": kept_part(latent, c)} if weights is None else
                {"z_b": z_b[c], "weights": weights, "kept": kept_part(latent, c)} for c in chunks]
    drawing = draw_background and weights is not None and samples >= 2  # else the draws are the analysis's alone
    if drawing:
        if "sigma_b2_update" not in latent:
            raise ValueError("uncertainty.draw_background needs the background variance sigma_b2_update in the "
                             "latent file, which this one lacks: rerun assimilate_year, or set draw_background: false")
        s2b = latent["sigma_b2_update"].values
        for c, kw in zip(chunks, weighted):
            kw["sigma2_background"] = s2b[c]
    mean = std = None
    t0 = _time.perf_counter()

    def place(i, result):
        nonlocal mean, std
        m, s = result
        if mean is None:
            mean = np.empty((len(times), *m.shape[1:]), np.float64)
            std = np.empty((len(times), *m.shape[1:]), np.float32)
        mean[chunks[i]], std[chunks[i]] = m, s

    if client is None:  # one thread, as in a worker process: the same sums, so the same bits
        with torch_threads(1):
            for i, a in enumerate(args):
                place(i, decode_chunk(*a, rotation, samples, seed, i, precision=precision, **weighted[i]))
                if progress:
                    log.info("decoded chunk %d/%d", i + 1, len(chunks))
    else:
        from distributed import as_completed

        # hash=False: a fresh key per call (a hashed key shared with an earlier call's released
        # future is lost with it: "lost dependencies")
        rot = client.scatter(rotation, broadcast=True, hash=False) if rotation is not None and samples >= 2 else None
        futures = [client.submit(decode_chunk, *a, rot, samples, seed, i, precision=precision, **weighted[i],
                                 key=f"decode-{name}-{i}-{sha256[:8]}-{seed}-{samples}-{precision}{'-b' if drawing else ''}")
                   for i, a in enumerate(args)]
        index = {f.key: i for i, f in enumerate(futures)}
        for done, f in enumerate(as_completed(futures), 1):
            place(index[f.key], f.result())
            if progress and (done % max(1, len(chunks) // 10) == 0 or done == len(chunks)):
                log.info("decoded %d/%d chunks (%.1f s)", done, len(chunks), _time.perf_counter() - t0)
            f.release()
    log.info("decoded %s: %d times x %d samples in %.1f s", name, len(times), samples, _time.perf_counter() - t0)
    return mean, std


def decode_means(latent, fields: dict, autoencoder_path, sha256: str, seed: int, time_chunk: int, client=None,
                 progress: bool = True) -> dict:
    """``{name: D(latent[variable])}`` physical, without samples, for ``fields = {name: variable}``
    (e.g. the background ``z_b`` and the O2Lnet estimate ``z_o`` that the std network reads), each
    ``D(z)`` as it is, never weighted."""
    plain = latent.drop_vars([WEIGHTS, KEPT], errors="ignore")
    return {name: decode_latent(plain.assign(z_a=plain[variable]), autoencoder_path, sha256, 0, seed, time_chunk,
                                client, progress, name=name)[0] for name, variable in fields.items()}
