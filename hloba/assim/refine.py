"""O2Lnet refined through HLOBA's update (``o2lnet.refine``, rule ``refine_o2lnet``).

O2Lnet is trained from observations alone, so where the observations leave the state open its
estimate errs much as a background does: on the default world the decoded estimate's errors
correlate with the cycling background's by 0.4-0.6 per channel, and the element-wise update, which
takes them as independent, weighs them as two pieces of evidence. The refinement records HLOBA's
cycles with the trained O2Lnet and the tuning made for it (rule ``tune_stream_base``) over the years
``refine.years``: at each cycle the observations of O2Lnet's window, the background in update
coordinates and its variance, the standardised background and the truth. It then fine-tunes
O2Lnet for ``refine.epochs`` on them: the loss is the area-weighted mean square of the analysis
that the update and the tuned band weights make from its estimate,
``x_b + h (D(z_b) - x_b) + g (D(z_a) - D(z_b)) - x_t`` (over its value with the trained O2Lnet),
plus ``refine.nll_weight`` times O2Lnet's own Gaussian NLL of the encoded truth, which keeps its
variance a variance (the stream's adaptive inflation reads it: without the term the variance
becomes a gain, the inflation follows it, and the cycling analyses get worse). The epoch whose
analyses fit the calibration year's tuning period best is kept (when none beats the trained
O2Lnet, the trained O2Lnet is returned unchanged). The tuning is then made again for the
refined O2Lnet (rule ``tune_stream``). Measured in docs/streams.md ("O2Lnet refined through the
update").
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hloba.assim.methods.hloba import o2lnet_slots
from hloba.assim.models import method_models
from hloba.assim.settings import RefineSettings, RunSettings, StreamConfig, StreamInputs
from hloba.assim.tuning import _truth
from hloba.assim.update import hybrid_update
from hloba.assim.year import run_period
from hloba.bands import band_weighted
from hloba.config import stream_years
from hloba.io import atomic_path
from hloba.models.o2lnet import gaussian_nll, render_observations

log = logging.getLogger(__name__)


@dataclass
class CycleRecord:
    """What one HLOBA cycle gave O2Lnet and the update: the window's used observations (``channel``
    with the slot's offset, ``row``, ``col``, standardised ``value``), the background (latent, update
    coordinates with its variance, standardised model space) and the truth."""

    time: pd.Timestamp
    window: tuple[torch.Tensor, ...]
    z_b: torch.Tensor  # (1, n)
    w_b: torch.Tensor  # (1, n)
    sb2_w: torch.Tensor  # (1, n)
    x_b: torch.Tensor  # (1, C, ny, nx)
    x_t: torch.Tensor | None = field(default=None)  # (C, ny, nx)
    z_t: torch.Tensor | None = field(default=None)  # (n,)


def cycle_recorder(records: list[CycleRecord], normalizer) -> Callable:
    """A recorder for :meth:`hloba.assim.methods.hloba.Hloba.analyse` that appends to ``records``."""

    def record(c, window, w_b, sb2_w) -> None:
        records.append(CycleRecord(
            c.time, tuple(t.detach() for t in window), c.z_b.detach().float(), w_b.detach().float(),
            sb2_w.detach().float(), normalizer.standardize(c.x_b, [c.time]).detach().float()))

    return record


def record_stream(year: int, models, observations, cfg: StreamConfig, days: float, reference_paths) -> list[CycleRecord]:
    """The records of HLOBA's stream over ``days`` of ``year`` (its spin-up's cycles left out), with the truth."""
    records: list[CycleRecord] = []
    run_period(year, models, observations, cfg, days, RunSettings(progress=False),
               recorder=cycle_recorder(records, models.normalizer))
    kept = [r for r in records if r.time.year == year]
    if not kept:
        raise ValueError(f"o2lnet.refine: the stream of {year} analysed no cycle with observations in {year}")
    x_t, z_t = _truth(models, reference_paths, pd.DatetimeIndex([r.time for r in kept]))
    for r, x, z in zip(kept, x_t.to(models.device), z_t.to(models.device)):
        r.x_t, r.z_t = x.float(), z.float()
    return kept


class UpdateAnalysis:
    """The stream's analysis from a batch of records and O2Lnet's ``(z_o, sigma_o2)``, differentiable
    in them: the stream's element-wise update in its update coordinates (``models.space``,
    :func:`hloba.assim.update.hybrid_update`), then the blend
    ``x_b + h (D(z_b) - x_b) + g (D(z_a) - D(z_b))`` with the tuned band weights (standardised)."""

    def __init__(self, models, n_slots: int) -> None:
        if models.increment_weights is None or models.projection_weights is None:
            raise ValueError("o2lnet.refine needs the blended analysis (assimilation.decoded_increment: weighted, "
                             "weighted_state: blended) and its tuned weights")
        self.models, self.n_slots = models, n_slots
        dev = models.device
        self.h, self.g = models.projection_weights.float().to(dev), models.increment_weights.float().to(dev)
        self.area = torch.as_tensor(models.grid.area_weights(), dtype=torch.float32, device=dev)[None, None, :, None]

    def render(self, batch: Sequence[CycleRecord], min_keep: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """O2Lnet's input for a batch of records (:func:`hloba.models.o2lnet.render_observations`).
        ``min_keep < 1`` thins each record's window by grid cell (a fixed station's reports share
        one): each cell is kept with a probability drawn per record from ``[min_keep, 1]``."""
        (ny, nx), C = self.models.grid.shape, len(self.models.channels)
        dev = self.models.device
        sample = torch.cat([torch.full((len(r.window[3]),), j, dtype=torch.long, device=dev)
                            for j, r in enumerate(batch)])
        channel, row, col, value = (torch.cat([r.window[i] for r in batch]) for i in range(4))
        if min_keep < 1.0:
            keep_prob = min_keep + (1.0 - min_keep) * torch.rand(len(batch), generator=generator)
            kept_cells = torch.rand(len(batch), ny * nx, generator=generator) < keep_prob[:, None]
            keep = kept_cells.to(dev)[sample, row.long() * nx + col.long()]
            sample, channel, row, col, value = (t[keep] for t in (sample, channel, row, col, value))
        return render_observations(sample, channel.long(), row.long(), col.long(), value.float(), len(batch),
                                   C * self.n_slots, ny, nx)

    def decoded_background(self, batch: Sequence[CycleRecord]) -> torch.Tensor:
        """``D(z_b)`` of a batch of records (no gradient)."""
        with torch.no_grad():
            return self.models.autoencoder.decode(torch.cat([r.z_b for r in batch]))

    def analysis(self, batch: Sequence[CycleRecord], z_o: torch.Tensor, sigma_o2: torch.Tensor,
                 d_b: torch.Tensor | None = None) -> torch.Tensor:
        """The blended analysis (standardised) from the estimate; ``d_b``: the batch's
        :meth:`decoded_background`, when the caller has it."""
        space = self.models.space
        w_b, sb2 = torch.cat([r.w_b for r in batch]), torch.cat([r.sb2_w for r in batch])
        w_a, _ = hybrid_update(w_b, sb2, space.forward(z_o), space.forward_variance(sigma_o2))
        x_b = torch.cat([r.x_b for r in batch])
        d_b = self.decoded_background(batch) if d_b is None else d_b
        d_a = self.models.autoencoder.decode(space.backward(w_a))
        return x_b + band_weighted(d_b - x_b, self.h) + band_weighted(d_a - d_b, self.g)

    def squares(self, x: torch.Tensor, batch: Sequence[CycleRecord]) -> torch.Tensor:
        """Area-weighted squared errors against the truth, summed per channel ``(C,)``."""
        return ((x - torch.stack([r.x_t for r in batch])).square() * self.area).sum(dim=(0, 2, 3))


def analysis_scores(net, blend: UpdateAnalysis, records: Sequence[CycleRecord], amp, batch_size: int = 32
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: the analysis RMSE (anomaly std) over ``records`` with ``net`` as O2Lnet, and the
    correlation of the decoded estimate's errors with the decoded background's."""
    net.eval()
    C = len(blend.models.channels)
    sq, cross, eo2, eb2 = (torch.zeros(C, device=blend.models.device) for _ in range(4))
    ae = blend.models.autoencoder
    with torch.no_grad():
        for a in range(0, len(records), batch_size):
            batch = records[a:a + batch_size]
            with amp:
                z_o, logvar = net(blend.render(batch))
            z_o, d_b = z_o.float(), blend.decoded_background(batch)
            sq += blend.squares(blend.analysis(batch, z_o, logvar.float().exp(), d_b), batch)
            x_t = torch.stack([r.x_t for r in batch])
            e_o, e_b = ae.decode(z_o) - x_t, d_b - x_t
            cross += (e_o * e_b * blend.area).sum(dim=(0, 2, 3))
            eo2 += (e_o.square() * blend.area).sum(dim=(0, 2, 3))
            eb2 += (e_b.square() * blend.area).sum(dim=(0, 2, 3))
    ny, nx = blend.models.grid.shape
    return (sq / (len(records) * ny * nx)).sqrt().cpu().numpy(), (cross / (eo2 * eb2).sqrt()).cpu().numpy()


def refine_o2lnet(net: torch.nn.Module, blend: UpdateAnalysis, train: Sequence[CycleRecord],
                  valid: Sequence[CycleRecord], settings: RefineSettings, amp) -> tuple[dict, dict]:
    """Fine-tune a copy of O2Lnet ``net`` on the ``train`` records (module docstring); returns the
    state dict of the epoch with the lowest mean analysis RMSE on ``valid`` (``net``'s own when no
    epoch beats it) and a report (per epoch and per channel, before and after)."""
    net = copy.deepcopy(net).float()
    for p in blend.models.autoencoder.parameters():
        p.requires_grad_(False)
    names = [c.name for c in blend.models.channels]
    rmse0, corr0 = analysis_scores(net, blend, valid, amp)
    scale_rmse, _ = analysis_scores(net, blend, train, amp)
    ny, nx = blend.models.grid.shape
    scale = float(np.square(scale_rmse).sum()) * ny * nx  # a cycle's summed square with the trained O2Lnet
    best = (float(rmse0.mean()), copy.deepcopy(net.state_dict()), 0, rmse0, corr0)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    gen = torch.Generator().manual_seed(settings.seed)
    epochs = []
    log.info("refine O2Lnet on %d cycles, scored on %d: analysis RMSE mean %.4f before", len(train), len(valid),
             rmse0.mean())
    for epoch in range(settings.epochs):
        net.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        total, n = 0.0, 0
        for a in range(0, len(order) - settings.batch_size + 1, settings.batch_size):
            batch = [train[i] for i in order[a:a + settings.batch_size]]
            with amp:
                z_o, logvar = net(blend.render(batch, settings.min_keep, gen))
            z_o, logvar = z_o.float(), logvar.float()
            loss = blend.squares(blend.analysis(batch, z_o, logvar.exp()), batch).sum() / len(batch) / scale
            if settings.nll_weight:
                loss = loss + settings.nll_weight * gaussian_nll(torch.stack([r.z_t for r in batch]), z_o, logvar)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(batch), n + len(batch)
        rmse, corr = analysis_scores(net, blend, valid, amp)
        epochs.append({"epoch": epoch + 1, "loss": total / max(n, 1), "analysis_rmse_mean": float(rmse.mean()),
                       "error_correlation_mean": float(corr.mean())})
        log.info("refine epoch %d: loss %.4f, analysis RMSE mean %.4f (%.4f before), corr(e_o, e_b) mean %.3f",
                 epoch + 1, total / max(n, 1), rmse.mean(), rmse0.mean(), corr.mean())
        if rmse.mean() < best[0]:
            best = (float(rmse.mean()), copy.deepcopy(net.state_dict()), epoch + 1, rmse, corr)
    _, state, kept, rmse, corr = best
    report = {
        "settings": settings.to_dict(), "train_cycles": len(train), "valid_cycles": len(valid), "kept_epoch": kept,
        "epochs": epochs, "channels": names,
        "analysis_rmse_before": rmse0.tolist(), "analysis_rmse_after": rmse.tolist(),
        "error_correlation_before": corr0.tolist(), "error_correlation_after": corr.tolist(),
    }
    return {k: v.detach().cpu() for k, v in state.items()}, report


def refine_o2lnet_file(settings: RefineSettings, tuning_year: int, inputs: StreamInputs, reference_paths,
                       checkpoint_path, report_path, cfg: StreamConfig, run: RunSettings, round_index: int = 1) -> dict:
    """Rule refine_o2lnet: record the streams of ``settings.years`` and of the tuning period of
    ``tuning_year`` with ``inputs`` (the trained O2Lnet and its tuning), refine O2Lnet
    (:func:`refine_o2lnet`) and write its checkpoint (the input's, with the refined weights and the
    report in ``meta["refine"]``) and the report (JSON). ``round_index`` > 1 (the experiment script's
    ``--round``): ``inputs`` hold an already refined O2Lnet and the tuning made for it; the shuffle
    seed is ``seed + round_index - 1`` and the input's own report moves to ``meta["refine_history"]``
    (docs/streams.md: a second round, measured and not kept)."""
    if round_index < 1:
        raise ValueError(f"the refinement round {round_index} must be 1 or more (1: from the trained O2Lnet)")
    available = sorted({int(Path(p).stem) for p in inputs.observations})
    references = {int(Path(p).stem): str(p) for p in reference_paths}

    def records(year: int, days: float) -> tuple[list[CycleRecord], object]:
        years = {str(y) for y in stream_years(year, cfg.spinup_days, available)}
        year_inputs = replace(inputs, observations=tuple(p for p in inputs.observations if Path(p).stem in years))
        models = method_models(cfg, year_inputs, run.device)
        kept = record_stream(year, models, year_inputs.observations, cfg, days, [references[year]])
        log.info("refine: %d cycles of %d recorded", len(kept), year)
        return kept, models

    train: list[CycleRecord] = []
    for year in settings.years:
        train += records(year, settings.days)[0]
    valid, models = records(tuning_year, cfg.tuning_days)
    blend = UpdateAnalysis(models, len(o2lnet_slots(models)))
    amp = torch.autocast(models.device.type, dtype=torch.bfloat16, enabled=models.o2lnet_dtype == torch.bfloat16)
    state, report = refine_o2lnet(models.o2lnet, blend, train, valid,
                                  replace(settings, seed=settings.seed + round_index - 1), amp)
    report |= {"tuning_year": int(tuning_year), "round": int(round_index)}
    checkpoint = torch.load(inputs.o2lnet, map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = state
    meta = checkpoint.setdefault("meta", {})
    if "refine" in meta:  # the input is an earlier round's
        meta["refine_history"] = [*meta.get("refine_history", []), meta["refine"]]
    meta["refine"] = report
    with atomic_path(checkpoint_path) as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    return report
