"""A loud first-guess check: a channel rejected above a fraction over a day stops the stream.

The first-guess check (:func:`hloba.assim.update.first_guess_check`) rejects single bad
observations. When it rejects most of a channel's observations for a whole day, the cause is not
the observations' random errors but a systematic mismatch: observations in other units, a biased
instrument, or a background that has drifted away. Carrying on would produce an analysis without
that channel's observations while reporting success, so :class:`RejectionAlarm` raises instead,
naming the channel, the day, the fraction rejected and the mean O-B against its expected spread
``sqrt(r2 + b2)``.

Counts are kept per calendar day of the cycle times; a day is judged when the first cycle of the
next day arrives (and at the end of the stream). Channels with fewer than ``min_count``
observations in a day are not judged (a handful of rejections says little). The stream's spin-up
is not judged (``judge_from``: the first cycle of the year), nor is the first day with
observations: a background from a cold start or from a spin-up without observations (the first
year of a record) is still adjusting. Measured on the tiny world: up to 62 % of a channel's
observations rejected on the first day with observations after a free spin-up, at most 6 % from
the next day on; after a cold start with a barely trained emulator, a sparse channel (24
observations a day) had 25-54 % rejected on the second and third days of the spin-up and at
most 12 % after it, while observations in other units are rejected at 100 % every day. A stream
resumed from a checkpoint counts its days, warm-up included, from the resume point. Latent
4D-Var's later window cycles are checked against the window's forecast trajectory (a longer lead
than the check's background variance describes) and are not counted.
"""

from __future__ import annotations

import pandas as pd
import torch


class QCAlarmError(RuntimeError):
    """Most of a channel's observations were rejected over a day."""


class RejectionAlarm:
    """Per-channel daily counts of the first-guess check; :meth:`add` once per cycle."""

    def __init__(self, channel_names: list[str], max_fraction: float = 0.5, min_count: int = 20,
                 judge_from: pd.Timestamp | None = None) -> None:
        self.names, self.max_fraction, self.min_count = list(channel_names), float(max_fraction), int(min_count)
        self.judge_from = None if judge_from is None else pd.Timestamp(judge_from).normalize()
        self.day: pd.Timestamp | None = None
        self.warm = False  # a day with observations has passed
        self._reset()

    def _reset(self) -> None:
        c = len(self.names)
        self.n = torch.zeros(c, dtype=torch.float64)
        self.rejected = torch.zeros(c, dtype=torch.float64)
        self.innovation = torch.zeros(c, dtype=torch.float64)
        self.spread2 = torch.zeros(c, dtype=torch.float64)

    def add(self, time: pd.Timestamp, channel: torch.Tensor, reject: torch.Tensor, innovation: torch.Tensor,
            expected_var: torch.Tensor) -> None:
        """One cycle: ``channel, reject, innovation (y - H(x_b)), expected_var (r2 + b2): (n_obs,)``.

        Judges the previous day first when ``time`` starts a new one."""
        day = pd.Timestamp(time).normalize()
        if self.day is not None and day != self.day:
            self.check()
            self.warm = self.warm or bool(self.n.sum() > 0)
            self._reset()
        self.day = day
        c = len(self.names)
        ch = channel.cpu().long()
        self.n += torch.bincount(ch, minlength=c).double()
        self.rejected += torch.bincount(ch, weights=reject.cpu().double(), minlength=c)
        self.innovation += torch.bincount(ch, weights=innovation.cpu().double(), minlength=c)
        self.spread2 += torch.bincount(ch, weights=expected_var.cpu().double(), minlength=c)

    def check(self) -> None:
        """Raise :class:`QCAlarmError` for the first channel of the current day above the fraction
        (not in the spin-up, not on the first day with observations)."""
        if not self.warm or self.day is None or (self.judge_from is not None and self.day < self.judge_from):
            return
        judged = self.n >= self.min_count
        fraction = torch.where(judged, self.rejected / self.n.clamp(min=1), torch.zeros_like(self.n))
        over = torch.nonzero(fraction > self.max_fraction).flatten()
        if len(over):
            k = int(over[0])
            n = self.n[k]
            raise QCAlarmError(
                f"{self.names[k]}: the first-guess check rejected {100 * fraction[k]:.0f} % of its {int(n)} "
                f"observations on {self.day.date()} (limit {100 * self.max_fraction:.0f} %, "
                f"assimilation.max_rejected_fraction); mean O-B {float(self.innovation[k] / n):.4g} against an "
                f"expected spread of {float((self.spread2[k] / n).sqrt()):.4g}: check the observations' units "
                "and bias, or the forecast model")
