"""Pieces of one assimilation cycle as pure functions: update coordinates, ensemble variance,
online inflation (DESIGN sections 2 and 4).

The element-wise update runs in *update coordinates*: the latent vector itself, or, with the
calibration's decorrelating rotation ``V`` (columns = eigenvectors of the latent background-error
covariance), ``w = V^T z``. Row vectors are used throughout: ``w = z @ V``, ``z = w @ V^T``.
Variances are mapped by their diagonal: ``var(w) = var(z) @ V**2`` (exact for diagonal ``var(z)``
only in the sense of keeping the diagonal of ``V^T diag(var z) V``), and back likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class LocalRotation:
    """A rotation that mixes latent elements only within blocks: ``V[rows[b], cols[b]] = mats[b]``
    and zero elsewhere (``rows``, ``cols``: ``(blocks, size)`` latent and mode indices). Blocks
    smaller than the largest are padded with index ``n`` (a slot past the vector's end, read as 0
    and dropped) and zero rows and columns of ``mats``."""

    rows: torch.Tensor
    cols: torch.Tensor
    mats: torch.Tensor
    squared: torch.Tensor
    # the blocks transposed, stored contiguous for the maps back (a transposed view cost more)
    mats_t: torch.Tensor = field(init=False, repr=False, compare=False)
    squared_t: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mats_t", self.mats.transpose(1, 2).contiguous())
        object.__setattr__(self, "squared_t", self.squared.transpose(1, 2).contiguous())

    @classmethod
    def from_dense(cls, rotation: torch.Tensor, blocks: torch.Tensor) -> "LocalRotation":
        """Its blocks from the dense ``V`` and the block of each latent element; an error where ``V``
        mixes elements of two blocks."""
        n = rotation.shape[0]
        parts, claimed = [], torch.zeros(rotation.shape[1], dtype=torch.bool, device=rotation.device)
        for b in torch.unique(blocks):
            r = torch.nonzero(blocks == b).flatten()
            c = torch.nonzero((rotation[r] != 0).any(0)).flatten()
            if len(c) != len(r) or claimed[c].any():
                raise ValueError("the calibration's rotation is not block-diagonal over its rotation_block: "
                                 "rerun rule generate_lagged_ensemble")
            claimed[c] = True
            parts.append((r, c))
        size = max(len(r) for r, _ in parts)
        rows = torch.full((len(parts), size), n, dtype=torch.long, device=rotation.device)
        cols = rows.clone()
        mats = torch.zeros(len(parts), size, size, dtype=rotation.dtype, device=rotation.device)
        for b, (r, c) in enumerate(parts):
            rows[b, : len(r)], cols[b, : len(c)] = r, c
            mats[b, : len(r), : len(c)] = rotation[r[:, None], c[None, :]]
        return cls(rows, cols, mats, mats.square())

    def to(self, device) -> "LocalRotation":
        return LocalRotation(*(t.to(device) for t in (self.rows, self.cols, self.mats, self.squared)))

    @staticmethod
    def _apply(x: torch.Tensor, take: torch.Tensor, put: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        padded = torch.nn.functional.pad(x, (0, 1))  # slot n reads 0
        out = x.new_empty(x.shape[0], n + 1)
        out[:, put] = torch.bmm(padded[:, take].transpose(0, 1), mats).transpose(0, 1).to(x.dtype)
        return out[:, :n]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._apply(z, self.rows, self.cols, self.mats)

    def backward(self, w: torch.Tensor) -> torch.Tensor:
        return self._apply(w, self.cols, self.rows, self.mats_t)

    def forward_variance(self, var_z: torch.Tensor) -> torch.Tensor:
        return self._apply(var_z, self.rows, self.cols, self.squared)

    def backward_variance(self, var_w: torch.Tensor) -> torch.Tensor:
        return self._apply(var_w, self.cols, self.rows, self.squared_t)


@dataclass(frozen=True)
class DenseRotation:
    """The rotation ``V`` of the whole latent (columns are modes). ``V**2``, which maps variances, is
    formed once (forming it at each use cost more than the products); ``V^T`` and ``(V**2)^T`` are
    stored row-major: every product is then ``rows @ M.T`` with M row-major, the form BLAS serves
    fastest for a few rows (on 2 cores one to three rows cost as much as one row that way, against
    1.7-2 times as much as ``rows @ V``: benchmarks/analysis_kernels.py)."""

    rotation: torch.Tensor
    squared: torch.Tensor = field(init=False, repr=False, compare=False)
    rotation_t: torch.Tensor = field(init=False, repr=False, compare=False)
    squared_t: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        squared = self.rotation.square()
        object.__setattr__(self, "squared", squared)
        object.__setattr__(self, "rotation_t", self.rotation.T.contiguous())
        object.__setattr__(self, "squared_t", squared.T.contiguous())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.rotation_t.T

    def backward(self, w: torch.Tensor) -> torch.Tensor:
        return w @ self.rotation.T

    def forward_variance(self, var_z: torch.Tensor) -> torch.Tensor:
        return var_z @ self.squared_t.T

    def backward_variance(self, var_w: torch.Tensor) -> torch.Tensor:
        return var_w @ self.squared.T


@dataclass(frozen=True)
class UpdateSpace:
    """Identity (``rotation is None``) or the orthogonal rotation ``w = V^T z``: applied whole
    (:class:`DenseRotation`), or with ``blocks`` (the block of each latent element, ``V`` zero
    outside the blocks) block by block (:class:`LocalRotation`)."""

    rotation: torch.Tensor | None = None  # (n, n), columns are modes
    blocks: torch.Tensor | None = None  # (n,): a local rotation (ensemble.rotation_cells)
    maps: DenseRotation | LocalRotation | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.rotation is None:
            return
        maps = DenseRotation(self.rotation) if self.blocks is None else \
            LocalRotation.from_dense(self.rotation, self.blocks.to(self.rotation.device))
        object.__setattr__(self, "maps", maps)

    @property
    def local(self) -> LocalRotation | None:
        """The block-by-block rotation, where the calibration has one."""
        return self.maps if isinstance(self.maps, LocalRotation) else None

    def to(self, device) -> "UpdateSpace":
        if self.rotation is None:
            return UpdateSpace()
        return UpdateSpace(self.rotation.to(device), None if self.blocks is None else self.blocks.to(device))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.maps is None else self.maps.forward(z)

    def backward(self, w: torch.Tensor) -> torch.Tensor:
        return w if self.maps is None else self.maps.backward(w)

    def forward_variance(self, var_z: torch.Tensor) -> torch.Tensor:
        return var_z if self.maps is None else self.maps.forward_variance(var_z)

    def backward_variance(self, var_w: torch.Tensor) -> torch.Tensor:
        return var_w if self.maps is None else self.maps.backward_variance(var_w)


def latent_variances(space: UpdateSpace, update: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Variances ``(cycles, n)`` in update coordinates mapped back to latent ones (on the space's
    device, returned on ``update``'s device and dtype). A row with a non-finite element (the
    uninformative background of a cold start) is ``inf`` throughout.

    The stream maps its cycles' variances in one pass at its end: read once for many cycles, the
    rotation costs a fraction of a matrix-vector product per cycle. Every product has ``chunk``
    rows (the last padded with zeros), so that a row's result does not depend on how many cycles
    the stream ran (BLAS picks its kernel by the shape): a stream stopped early, or resumed, maps
    its cycles bit for bit as a longer one."""
    if space.rotation is None:
        return update.clone()
    out = torch.empty_like(update)
    dev, dtype = space.rotation.device, space.rotation.dtype
    for start in range(0, update.shape[0], chunk):
        part = update[start:start + chunk]
        rows = torch.zeros(chunk, part.shape[1], device=dev, dtype=dtype)
        rows[: len(part)] = part.to(dev, dtype).nan_to_num(posinf=0.0)
        mapped = space.backward_variance(rows)[: len(part)].to(update)
        out[start:start + chunk] = torch.where(torch.isfinite(part).all(dim=1, keepdim=True), mapped, float("inf"))
    return out


def ensemble_variance(members: torch.Tensor) -> torch.Tensor:
    """Unbiased element-wise variance over members: ``(m, n) -> (1, n)`` (``m >= 2``)."""
    if members.shape[0] < 2:
        raise ValueError(f"the ensemble variance needs at least 2 members, got {members.shape[0]}")
    return members.var(dim=0, unbiased=True, keepdim=True)


def mode_groups(n: int, n_groups: int, device=None) -> torch.Tensor:
    """Group index of each of ``n`` update coordinates: ``n_groups`` contiguous, equal blocks.

    In rotated coordinates (modes ordered by variance) a block is a band of the error spectrum; in
    latent coordinates, part of one latent channel.
    """
    n_groups = max(1, min(int(n_groups), n))
    return torch.arange(n, device=device) * n_groups // n


def inflation_estimate(d: torch.Tensor, sigma_b2: torch.Tensor, sigma_o2: torch.Tensor,
                       groups: torch.Tensor | None = None, n_groups: int = 1) -> torch.Tensor:
    """Background-variance scale per group from one cycle's innovations ``d = z_o - z_b``.

    ``E[d^2] = lambda sigma_b2 + sigma_o2`` pooled over each group's elements with finite
    ``sigma_o2``: ``lambda = (sum d^2 - sum sigma_o2) / sum sigma_b2``; NaN where nothing was
    observed. ``d, sigma_b2, sigma_o2: (1, n)`` or ``(n,)``; returns ``(n_groups,)`` float64.
    """
    d, sb2, so2 = d.reshape(-1).double(), sigma_b2.reshape(-1).double(), sigma_o2.reshape(-1).double()
    if groups is None:
        groups = torch.zeros(d.numel(), dtype=torch.long, device=d.device)
    ok = torch.isfinite(so2) & torch.isfinite(sb2)
    zero = torch.zeros(n_groups, dtype=torch.float64, device=d.device)
    num = zero.index_add(0, groups[ok], d[ok].square() - so2[ok])
    den = zero.index_add(0, groups[ok], sb2[ok])
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(den, float("nan")))


def smooth_inflation(previous: torch.Tensor, estimate: torch.Tensor, smoothing: float, lower: float,
                     upper: float) -> torch.Tensor:
    """Exponential smoothing of the inflation over cycles, each estimate clipped to ``[lower, upper]``;
    groups without an estimate (NaN) keep their value."""
    clipped = estimate.clamp(lower, upper)
    return torch.where(torch.isnan(estimate), previous, (1.0 - smoothing) * previous + smoothing * clipped)


def observation_background_variance(
    previous: torch.Tensor, channel: torch.Tensor, innovation: torch.Tensor, r2: torch.Tensor, smoothing: float,
    floor: torch.Tensor,
) -> torch.Tensor:
    """Per-channel background error variance at the observations, adapted from O-B statistics.

    ``E[(y - H x_b)^2] = b2 + r2`` per channel over this cycle's accepted observations, smoothed
    exponentially over cycles; channels without observations keep their value; never below ``floor``.
    """
    n_ch = previous.shape[0]
    count = torch.zeros(n_ch, dtype=previous.dtype, device=previous.device).index_add_(
        0, channel, torch.ones_like(innovation, dtype=previous.dtype))
    excess = torch.zeros_like(count).index_add_(0, channel, (innovation.square() - r2).to(previous.dtype))
    seen = count > 0
    estimate = torch.maximum(excess / count.clamp(min=1), floor)
    return torch.where(seen, (1 - smoothing) * previous + smoothing * estimate, previous)


def group_mean(values: torch.Tensor, groups: torch.Tensor, n_groups: int,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over time and over each group's elements (where ``mask`` holds; 0 for a group with
    none): ``(time, n) -> (n_groups,)``."""
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    v = torch.where(mask, values.double(), 0.0)
    total = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, v.sum(0))
    count = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, mask.double().sum(0))
    return total / count.clamp(min=1)


def group_ratio(numerator: torch.Tensor, denominator: torch.Tensor, groups: torch.Tensor, n_groups: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean(numerator) / mean(denominator)`` per group (:func:`group_mean`), e.g. ``mean(e^2) / mean(sigma^2)``."""
    return group_mean(numerator, groups, n_groups, mask) / group_mean(denominator, groups, n_groups, mask).clamp(
        min=1e-300)


def pooled_correlation(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """``sum(a b) / sqrt(sum(a^2) sum(b^2))`` over the elements where ``mask`` holds (errors: no mean removed)."""
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a.double(), b.double()
    return float((a * b).sum() / (a.square().sum() * b.square().sum()).sqrt().clamp(min=1e-300))
