"""The built-in world's years split into independent runs (chains), and each chain's run."""

import itertools
import random

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hloba.config import stream_years
from hloba.forecast.emulator import rollout_starts
from hloba.states import trajectory_runs
from hloba.world.chains import blocked_boundaries, split_years
from hloba.world.qg import QGParams
from hloba.world.simulate import WorldConfig, simulate_years

DEFAULT_YEARS = range(2000, 2012)


def default_groups(spinup_days=30.0):
    """The default config's streams: calibration 2009, reanalysis 2010-2011 (comparison 2011)."""
    return [stream_years(y, spinup_days, DEFAULT_YEARS) for y in (2009, 2010, 2011)]


def test_default_years_split_into_two_equal_runs_that_keep_each_stream_whole():
    assert default_groups() == [[2008, 2009], [2009, 2010], [2010, 2011]]
    chains = split_years(DEFAULT_YEARS, default_groups(), max_chains=2)
    assert chains == [tuple(range(2000, 2006)), tuple(range(2006, 2012))]
    three = split_years(DEFAULT_YEARS, default_groups(), max_chains=3)
    assert three == [tuple(range(2000, 2004)), tuple(range(2004, 2008)), tuple(range(2008, 2012))]
    assert split_years(DEFAULT_YEARS, default_groups(), max_chains=1) == [tuple(DEFAULT_YEARS)]


def test_streams_leave_fewer_runs_than_asked():
    # the tiny config: training 2001, everything else 2002, whose spin-up reads 2001
    assert split_years([2001, 2002], [[2001, 2002]], max_chains=2) == [(2001, 2002)]
    # only one boundary is free (before 2003): two runs although four were asked
    groups = [[2000, 2001, 2002], [2003, 2004]]
    assert blocked_boundaries([2000, 2001, 2002, 2003, 2004], groups) == {1, 2, 4}
    assert split_years(range(2000, 2005), groups, max_chains=4) == [(2000, 2001, 2002), (2003, 2004)]
    # a group reaching outside the years blocks nothing there
    assert blocked_boundaries([2000, 2001], [[1999, 2000]]) == set()


def test_a_gap_between_years_is_the_boundary():
    # each run simulates from its first to its last year: the gap 2002-2009 falls between runs
    assert split_years([2000, 2001, 2010, 2011], (), max_chains=2) == [(2000, 2001), (2010, 2011)]


def test_the_longest_run_is_the_shortest_possible():
    rng = random.Random(0)
    for _ in range(200):
        years = sorted(rng.sample(range(1990, 2010), rng.randint(1, 9)))
        groups = [sorted(rng.sample(years, min(len(years), 2))) for _ in range(rng.randint(0, 3))]
        n = rng.randint(1, 4)
        chains = split_years(years, groups, n)
        assert [y for c in chains for y in c] == years
        blocked = blocked_boundaries(years, groups)
        starts = [years.index(c[0]) for c in chains[1:]]
        assert not blocked & set(starts)
        allowed = [i for i in range(1, len(years)) if i not in blocked]
        assert len(chains) == min(n, len(allowed) + 1)
        best = min(
            max(years[b - 1] - years[a] + 1 for a, b in zip((0, *cut), (*cut, len(years))))
            for cut in itertools.combinations(allowed, len(chains) - 1)
        )
        assert max(c[-1] - c[0] + 1 for c in chains) == best


def test_bad_split_requests_name_the_setting():
    with pytest.raises(ValueError, match="max_chains=0"):
        split_years([2000], (), max_chains=0)
    with pytest.raises(ValueError, match="no years"):
        split_years([], (), max_chains=2)
    with pytest.raises(ValueError, match="max_chains=0"):
        WorldConfig(max_chains=0)


def test_each_chain_is_its_own_reproducible_run():
    config = WorldConfig(qg=QGParams(nx=16, ny=16, dt_minutes=360.0), spinup_days=20.0, seed=5,
                         output_interval_hours=12.0, max_chains=2)

    def run(years, chain):
        return {y: ds for y, ds in simulate_years(config, years, chain=chain, progress=False)}

    first = run([2001], 0)
    again = run([2001, 2002], 1)
    other = run([2001], 1)
    # chain 1 starts from its own noise (independent weather: |v0 - v1| near sqrt(2) |v|, v has
    # no mean), and reruns give the same bits
    v0, v1 = first[2001].v_component_of_wind.values, again[2001].v_component_of_wind.values
    assert np.abs(v0 - v1).mean() > 1.2 * np.abs(v0).mean()
    np.testing.assert_array_equal(again[2001].geopotential.values, other[2001].geopotential.values)
    assert first[2001].attrs["world_chain"] == 0 and again[2002].attrs["world_chain"] == 1
    # one continuous run within a chain: Dec 31 12 UTC to Jan 1 00 UTC is a 12-hour change
    v = {k: ds.v_component_of_wind for k, ds in (("0", first[2001]), ("1", again[2001]), ("next", again[2002]))}
    step = np.abs(v["next"][0].values - v["1"][-1].values).mean()
    jump = np.abs(v["next"][0].values - v["0"][-1].values).mean()
    assert step < 0.5 * jump
    with pytest.raises(ValueError, match="chain -1"):
        run([2001], -1)


def test_training_pairs_never_join_two_runs(tmp_path):
    """The emulator's rollouts: consecutive cycles of one run only (not across a chain boundary
    on Jan 1, nor across a gap between years)."""
    paths = []
    for year, chain in ((2005, 0), (2006, 1), (2008, 1)):
        times = pd.date_range(f"{year}-12-30", periods=8, freq="6h") if year == 2005 else \
            pd.date_range(f"{year}-01-01", periods=4, freq="6h")
        ds = xr.Dataset({"x": ("time", np.zeros(len(times)))}, {"time": times},
                        attrs={} if year == 2008 else {"world_chain": chain})
        paths.append(tmp_path / f"{year}.nc")
        ds.to_netcdf(paths[-1])
    runs = trajectory_runs(paths)
    np.testing.assert_array_equal(runs, [0] * 8 + [1] * 4 + [0] * 4)  # no attribute: run 0
    times = pd.DatetimeIndex(np.concatenate([xr.open_dataset(p).time.values for p in paths]))
    step = pd.Timedelta(hours=6)
    # 2005's 8 times give 6 two-step rollouts; the two that reach 2006 (run 1) are refused
    np.testing.assert_array_equal(rollout_starts(times, runs, 2, step), [0, 1, 2, 3, 4, 5, 8, 9, 12, 13])
    # one run throughout: the rollouts across Jan 1 2006 count, the gap to 2008 still does not
    one = np.zeros(len(times), int)
    np.testing.assert_array_equal(rollout_starts(times, one, 2, step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13])
    assert len(rollout_starts(times[:2], runs[:2], 2, step)) == 0
