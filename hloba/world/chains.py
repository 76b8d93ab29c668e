"""The requested years of the built-in world split into chains: independent trajectories.

A chain is one continuous run from its own spin-up (:func:`hloba.world.simulate.simulate_years`
with its ``chain`` index); the workflow runs each chain as its own job (rules ``make_world_{k}``),
so on two cores two chains take about the time of one. A chain boundary never separates two years
of one group of ``together`` (the years one stream reads: its spin-up's year and its own), so
every stream cycles through one continuous trajectory; between other years (training years) the
weather jumps from one realisation of the same climate to another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def blocked_boundaries(years: Sequence[int], together: Iterable[Iterable[int]]) -> set[int]:
    """Indices ``i`` into sorted ``years`` at which no chain may start (``years[i - 1]`` and
    ``years[i]`` both lie within the span of one group of ``together``)."""
    blocked: set[int] = set()
    for group in together:
        inside = [int(y) for y in group if int(y) in years]
        if len(inside) > 1:
            lo, hi = min(inside), max(inside)
            blocked |= {i for i in range(1, len(years)) if lo < years[i] <= hi}
    return blocked


def split_years(
    years: Iterable[int], together: Iterable[Iterable[int]] = (), max_chains: int = 1,
) -> list[tuple[int, ...]]:
    """Split ``years`` into at most ``max_chains`` chains of consecutive years (fewer only when
    ``together`` leaves fewer boundaries), the longest chain (first to last year, gaps included:
    what its run simulates) as short as possible; ties go to the earliest boundaries."""
    years = sorted({int(y) for y in years})
    if not years:
        raise ValueError("no years to simulate: give at least one year")
    if int(max_chains) < 1:
        raise ValueError(f"world.max_chains={max_chains} must be at least 1")
    blocked = blocked_boundaries(years, together)
    allowed = [i for i in range(1, len(years)) if i not in blocked]
    n = min(int(max_chains), len(allowed) + 1)
    starts = [0, *allowed]  # where a chain may start

    def span(a: int, b: int) -> int:  # years[a:b] as one chain
        return years[b - 1] - years[a] + 1

    # best[j][s]: (longest span, cuts) of years[starts[s]:] in j chains
    ends = len(years)
    best: dict[tuple[int, int], tuple[int, tuple[int, ...]]] = {}
    for s in range(len(starts)):
        best[1, s] = (span(starts[s], ends), ())
    for j in range(2, n + 1):
        for s in range(len(starts)):
            options = [
                (max(span(starts[s], starts[t]), best[j - 1, t][0]), (starts[t], *best[j - 1, t][1]))
                for t in range(s + 1, len(starts)) if (j - 1, t) in best
            ]
            if options:
                best[j, s] = min(options)
    cuts = (0, *best[n, 0][1], ends)
    return [tuple(years[a:b]) for a, b in zip(cuts, cuts[1:])]
