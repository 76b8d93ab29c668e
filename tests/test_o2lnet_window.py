"""O2Lnet over a window of cycles (``o2lnet.window_hours``): slots from hours, the observations a
stream hands it (its own earlier decisions), and a windowed stream that resumes exactly."""

from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from hloba.assim.methods import Cycle, build_method
from hloba.assim.models import method_models
from hloba.assim.resume import StreamState
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.stream import QC_FIRST_GUESS, QC_USED, QC_WITHHELD, run_stream
from hloba.assim.year import run_period
from hloba.models.train_o2lnet import window_architecture
from hloba.obs.operator import InterpolationWeights
from hloba.testing import untrained_checkpoints

RUN = RunSettings(device="cpu", progress=False)
SIX_HOURLY = pd.date_range("2002-01-01", periods=8, freq="6h")


def test_window_hours_become_slots_that_end_at_the_analysis_time():
    assert window_architecture({"width": 16, "window_hours": 24}, SIX_HOURLY) == {"width": 16,
                                                                                  "slots": (-3, -2, -1, 0)}
    assert window_architecture({"width": 16, "window_hours": 6}, SIX_HOURLY)["slots"] == (0,)
    assert window_architecture({"width": 16, "window_hours": None}, SIX_HOURLY) == {"width": 16}
    assert window_architecture({"blocks": 2}, SIX_HOURLY) == {"blocks": 2}
    daily = pd.date_range("2002-01-01 12:00", periods=4, freq="D")
    assert window_architecture({"window_hours": 48}, daily)["slots"] == (-1, 0)
    for bad in (5, 9, 12):  # shorter than a daily step, not whole steps
        with pytest.raises(ValueError, match=f"o2lnet.window_hours {bad} .* 24-hour steps"):
            window_architecture({"window_hours": bad}, daily)


def test_a_window_lead_moves_the_window_past_the_analysis_time():
    lead = {"window_hours": 24, "window_lead_hours": 6}
    assert window_architecture(lead, SIX_HOURLY) == {"slots": (-2, -1, 0, 1)}
    assert window_architecture({**lead, "window_lead_hours": 18}, SIX_HOURLY)["slots"] == (0, 1, 2, 3)
    assert window_architecture({**lead, "window_lead_hours": 0}, SIX_HOURLY)["slots"] == (-3, -2, -1, 0)
    with pytest.raises(ValueError, match="window_lead_hours 24 must be shorter than o2lnet.window_hours 24"):
        window_architecture({**lead, "window_lead_hours": 24}, SIX_HOURLY)
    with pytest.raises(ValueError, match="o2lnet.window_lead_hours 3 is not a whole number"):
        window_architecture({**lead, "window_lead_hours": 3}, SIX_HOURLY)
    with pytest.raises(ValueError, match="window_lead_hours 6 needs o2lnet.window_hours .* window_lead_hours: 0"):
        window_architecture({"window_lead_hours": 6}, SIX_HOURLY)


def _cycle(k: int, qc: torch.Tensor) -> Cycle:
    """Three cycles of 3, 2 and 3 observations; cycle ``k``'s own rows all pass the check."""
    offsets = [0, 3, 5, 8]
    obs = SimpleNamespace(
        channel=torch.tensor([0, 1, 2, 0, 2, 1, 1, 0]), row=torch.arange(8), col=torch.arange(8) + 10,
        value_std=torch.arange(8, dtype=torch.float32) / 10, cycle=lambda j: slice(offsets[j], offsets[j + 1]),
    )
    s = obs.cycle(k)
    return Cycle(k, SIX_HOURLY, torch.zeros(1, 4), None, obs, s, torch.ones(s.stop - s.start, dtype=torch.bool),
                 None, None, None, False, lambda _: None, qc)


def test_the_window_reads_the_observations_the_stream_used_at_earlier_cycles():
    qc = torch.tensor([QC_USED, QC_FIRST_GUESS, QC_USED, QC_WITHHELD, QC_USED, 2, 2, 2], dtype=torch.int8)
    c = _cycle(2, qc)
    s, used = c.used(1)
    assert s == slice(3, 5) and used.tolist() == [False, True]
    with pytest.raises(ValueError, match="cycle 2 knows the decisions of earlier cycles only, not of cycle 3"):
        c.used(3)
    method = SimpleNamespace(models=SimpleNamespace(channels=[0, 1, 2]), slots=(-3, -2, -1, 0), _used={}, lead=0)
    from hloba.assim.methods.hloba import Hloba

    channel, row, col, value = Hloba.window_observations(method, c)
    # slot 0 (cycle -1) is before the stream: nothing; slot 1 = cycle 0: rows 0 and 2 used, channels + 3;
    # slot 2 = cycle 1: row 4, channels + 6; slot 3 = this cycle: rows 5-7, channels + 9
    assert row.tolist() == [0, 2, 4, 5, 6, 7]
    assert channel.tolist() == [3, 5, 8, 10, 10, 9]
    assert col.tolist() == [10, 12, 14, 15, 16, 17]
    torch.testing.assert_close(value, torch.tensor([0.0, 0.2, 0.4, 0.5, 0.6, 0.7]))
    # each cycle's used rows are gathered once and kept while a later window reads them: a kept
    # entry is what the next cycle's window reads (here altered, to show it is not gathered again)
    assert sorted(method._used) == [0, 1, 2]
    method._used[1] = tuple(x[:0] for x in method._used[1])
    method._used[-4] = method._used[0]  # before the window of cycle 2 (cycles -1..2): dropped
    assert Hloba.window_observations(method, c)[1].tolist() == [0, 2, 5, 6, 7]  # no cycle-1 rows now
    assert sorted(method._used) == [0, 1, 2]


@pytest.fixture(scope="module")
def windowed(stream_factory, tmp_path_factory):
    inputs, paths = stream_factory
    out = tmp_path_factory.mktemp("windowed_o2lnet")
    _, o2lnet = untrained_checkpoints(paths["reference"], paths["normalization"], out, slots=(-2, -1, 0))
    return inputs, replace(inputs, o2lnet=str(o2lnet)), paths


def test_a_windowed_stream_resumes_exactly_and_differs_from_one_cycle(windowed, tmp_path, monkeypatch):
    single, inputs, _ = windowed
    cfg = StreamConfig(method="hloba", spinup_days=2, max_rejected_fraction=1.0, inflation_groups=8)
    run = RunSettings(checkpoint_every=6, device="cpu", progress=False)
    models = method_models(cfg, inputs, RUN.device)
    assert models.o2lnet.cfg.slots == (-2, -1, 0)
    whole = run_period(2002, models, inputs.observations, cfg, 3, run)
    stop = whole.stop
    for field in ("z_o", "z_a", "sigma_a2"):
        assert torch.isfinite(whole.fields[field][1:stop]).all(), field
    one = run_period(2002, method_models(cfg, single, RUN.device), single.observations, cfg, 3, run)
    assert not torch.equal(one.fields["z_o"][whole.first:stop], whole.fields["z_o"][whole.first:stop])

    # cycles 12-13 of the resumed stream read the observations used before the death
    _dies_at_cycle_14_and_resumes(inputs, cfg, run, whole, tmp_path / "hloba.pt", monkeypatch)


def _dies_at_cycle_14_and_resumes(inputs, cfg, run, whole, path, monkeypatch, forecasts_before: int = 0,
                                  prepare=lambda models: models) -> None:
    """The stream's job dies forecasting from cycle 14 (after its checkpoint at 12; after
    ``forecasts_before`` other forecasts from that time), and the rerun equals ``whole`` (both
    with the models as ``prepare`` sets them)."""
    models = prepare(method_models(cfg, inputs, RUN.device))
    step, death, stop, calls = type(models.forecast).step, whole.times[14], whole.stop, []

    def dying(self, x, t, n=1):
        if pd.Timestamp(t[0]) == death:
            calls.append(t)
            if len(calls) > forecasts_before:
                raise KeyboardInterrupt
        return step(self, x, t, n)

    with monkeypatch.context() as mp:
        mp.setattr(type(models.forecast), "step", dying)
        with pytest.raises(KeyboardInterrupt):
            run_stream(2002, models, inputs.observations, cfg, run, resume_path=path, fingerprint_value="same",
                       max_cycles=stop)
    resumed = run_stream(2002, prepare(method_models(cfg, inputs, RUN.device)), inputs.observations, cfg, run,
                         resume_path=path, fingerprint_value="same", max_cycles=stop)
    assert resumed.n_cycles_run == stop - 12
    for name in ("z_o", "z_a", "sigma_a2"):
        torch.testing.assert_close(resumed.fields[name][:stop], whole.fields[name][:stop], rtol=0, atol=0)


def _later_cycle(k: int, cold_first: bool = False) -> tuple[Cycle, list]:
    """Four cycles of 1, 1, 3 and 2 observations on a 4 x 4 grid of 3 channels; a forecast model
    that adds 1 per step and records the times it steps from."""
    from hloba.assim.methods.hloba import Hloba

    offsets = [0, 1, 2, 5, 7]
    rows, cols = torch.tensor([0, 1, 2, 3, 1, 2, 0]), torch.tensor([0, 1, 2, 3, 3, 0, 1])
    channel = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    zero = torch.zeros(7, dtype=torch.float64)
    obs = SimpleNamespace(
        channel=channel, row=rows, col=cols, value_std=torch.arange(7, dtype=torch.float32),
        # cycle 2 (forecast 1): 1.0 passes, 5.0 fails (|5 - 1| > 3 sqrt(0.25 + 0.75)), 1.2 is withheld;
        # cycle 3 (forecast 2): 2.0 and -0.9 (|-0.9 - 2| = 2.9) pass
        value=torch.tensor([0.0, 0.0, 1.0, 5.0, 1.2, 2.0, -0.9], dtype=torch.float64),
        r2=torch.full((7,), 0.25, dtype=torch.float64),
        withheld=torch.tensor([False, False, False, False, True, False, False]),
        weights=InterpolationWeights(channel, rows, rows, cols, cols, zero, zero),
        cycle=lambda j: slice(offsets[j], offsets[j + 1]),
    )
    stepped = []

    def step(x, t, n):
        stepped.append(pd.Timestamp(t[0]))
        return x + n

    times = SIX_HOURLY[:4]
    method = SimpleNamespace(models=SimpleNamespace(channels=[0, 1, 2], forecast=SimpleNamespace(step=step)),
                             lead=2, cfg=SimpleNamespace(qc_threshold=3.0, lead_guess="forecast"))
    method.lead_state = lambda c, k, x, guess: Hloba.lead_state(method, c, k, x, guess)
    s = obs.cycle(k)
    c = Cycle(k, times, torch.zeros(1, 4), torch.zeros(1, 3, 4, 4, dtype=torch.float64), obs, s,
              torch.ones(s.stop - s.start, dtype=torch.bool), None, None, torch.full((3,), 0.75, dtype=torch.float64),
              cold_first, lambda _: None, None)
    return c, method, stepped


def test_a_window_with_a_lead_checks_the_later_observations_against_the_background_forecast():
    from hloba.assim.methods.hloba import Hloba

    c, method, stepped = _later_cycle(1)
    later = Hloba.later_observations(method, c)
    assert sorted(later) == [2, 3] and stepped == list(SIX_HOURLY[1:3])  # M(x_b), then M^2(x_b)
    assert later[2][1].tolist() == [2] and later[3][1].tolist() == [2, 0]  # grid rows; the gross error, the withheld out
    torch.testing.assert_close(later[3][3], torch.tensor([5.0, 6.0]))
    c, method, _ = _later_cycle(1, cold_first=True)  # nothing to check against: only the withheld row is out
    assert Hloba.later_observations(method, c)[2][1].tolist() == [2, 3]
    c, method, stepped = _later_cycle(3)  # the last cycle: no later cycle, no forecast
    assert Hloba.later_observations(method, c) == {} and stepped == []


def test_the_lead_takes_the_streams_forecast_of_the_background_where_there_is_one():
    from hloba.assim.methods.hloba import Hloba

    c, method, stepped = _later_cycle(1)
    expected = Hloba.later_observations(method, c)
    c, method, stepped = _later_cycle(1)
    c.x_b_next = c.x_b + 1  # M(x_b), as the stream forecast it for the next cycle's lagged members
    later = Hloba.later_observations(method, c)
    assert stepped == [SIX_HOURLY[2]]  # only M^2(x_b), from the stream's M(x_b)
    assert sorted(later) == sorted(expected)
    for k in later:
        for got, want in zip(later[k], expected[k]):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    c, method, _ = _later_cycle(1)
    c.x_b_next = c.x_b + 3  # another forecast: other decisions (the gross error of cycle 2 passes)
    assert Hloba.later_observations(method, c)[2][1].tolist() == [2, 3]


def test_the_lead_without_a_forecast_holds_the_background_or_carries_it_on_from_the_previous_analysis():
    from hloba.assim.methods.hloba import Hloba

    c, method, stepped = _later_cycle(1)
    c.x_prev = c.x_b - 2  # the background rose by 2 since the previous analysis
    method.cfg.lead_guess = "persistence"  # guesses 0 and 0: as the forecast's 1 and 2 decide here
    later = Hloba.later_observations(method, c)
    assert later[2][1].tolist() == [2] and later[3][1].tolist() == [2, 0] and stepped == []
    method.cfg.lead_guess = "extrapolated"  # guesses 2 and 4: the gross error 5.0 passes, -0.9 fails
    later = Hloba.later_observations(method, c)
    assert later[2][1].tolist() == [2, 3] and later[3][1].tolist() == [2] and stepped == []
    c.x_prev = None  # the first cycle: nothing to extrapolate from, the background held
    assert Hloba.later_observations(method, c)[3][1].tolist() == [2, 0]
    with pytest.raises(ValueError, match="assimilation.lead_guess 'model' is not one of"):
        StreamConfig(lead_guess="model")


def test_time_extrapolation_carries_the_background_on_along_its_last_change():
    from hloba.assim.update import time_extrapolation

    x_b, x_prev = torch.tensor([[1.0, 4.0]]), torch.tensor([[0.0, 5.0]])
    assert time_extrapolation(x_b, x_prev, 1).tolist() == [[2.0, 3.0]]
    assert time_extrapolation(x_b, x_prev, 2).tolist() == [[3.0, 2.0]]
    assert time_extrapolation(x_b, None, 2) is x_b


@pytest.fixture(scope="module")
def smoother(windowed, tmp_path_factory):
    single, _, paths = windowed
    _, o2lnet = untrained_checkpoints(paths["reference"], paths["normalization"],
                                      tmp_path_factory.mktemp("smoother_o2lnet"), slots=(-1, 0, 1))
    return replace(single, o2lnet=str(o2lnet))


def test_a_smoother_stream_reads_the_next_cycle_and_resumes_exactly(smoother, tmp_path, monkeypatch):
    from hloba.assim.methods.hloba import Hloba

    cfg = StreamConfig(method="hloba", spinup_days=2, max_rejected_fraction=1.0, inflation_groups=8)
    run = RunSettings(checkpoint_every=6, device="cpu", progress=False)
    models = method_models(cfg, smoother, RUN.device)
    assert Hloba.reads_later_observations(models) and build_method("hloba", models, cfg).lead == 1
    whole = run_period(2002, models, smoother.observations, cfg, 3, run)
    stop = whole.stop
    for field in ("z_o", "z_a", "sigma_a2"):
        assert torch.isfinite(whole.fields[field][1:stop]).all(), field
    # a stream stopped earlier reads the observations of the cycle after its last: the same analyses
    short = run_stream(2002, method_models(cfg, smoother, RUN.device), smoother.observations, cfg, run,
                       max_cycles=stop - 4)
    torch.testing.assert_close(short.fields["z_a"][:stop - 4], whole.fields["z_a"][:stop - 4], rtol=0, atol=0)
    # the next cycle's observations matter: without them (no later rows) the estimate changes
    with monkeypatch.context() as mp:
        mp.setattr(Hloba, "later_observations", lambda self, c: {})
        blind = run_stream(2002, method_models(cfg, smoother, RUN.device), smoother.observations, cfg, run,
                           max_cycles=stop)
    assert not torch.equal(blind.fields["z_o"][1:stop], whole.fields["z_o"][1:stop])

    # the first forecast from cycle 14 is the lead forecast inside its analysis, the second the stream's
    _dies_at_cycle_14_and_resumes(smoother, cfg, run, whole, tmp_path / "hloba.pt", monkeypatch, forecasts_before=1)


def test_an_extrapolating_lead_runs_no_forecast_and_resumes_from_the_checkpointed_analysis(smoother, tmp_path,
                                                                                           monkeypatch):
    cfg = StreamConfig(method="hloba", spinup_days=2, max_rejected_fraction=1.0, inflation_groups=8,
                       lead_guess="extrapolated")
    run = RunSettings(checkpoint_every=6, device="cpu", progress=False)

    def unlagged(models):
        models.hybrid_b = 0.0  # no lagged members: the forecast lead runs forecasts of its own
        return models

    def counted(c: StreamConfig):
        """The stream and the forecasts it ran."""
        models, calls = unlagged(method_models(c, smoother, RUN.device)), []
        step = type(models.forecast).step
        with monkeypatch.context() as mp:
            mp.setattr(type(models.forecast), "step", lambda self, x, t, n=1: calls.append(t) or step(self, x, t, n))
            return run_period(2002, models, smoother.observations, c, 3, run, keep_analyses=True), len(calls)

    whole, n_extrapolated = counted(cfg)
    forecast, n_forecast = counted(cfg.with_(lead_guess="forecast"))
    # the stream's forecast from each analysis (and the start's check of the model), no other; the
    # forecast lead adds one from each background whose next cycle has observations
    assert n_extrapolated == whole.stop + 1 and n_forecast > n_extrapolated
    assert not torch.equal(forecast.fields["z_o"][:whole.stop], whole.fields["z_o"][:whole.stop])
    # the checkpoint at cycle 12 carries the analysis of cycle 11 that cycle 12 extrapolates from
    _dies_at_cycle_14_and_resumes(smoother, cfg, run, whole, tmp_path / "hloba.pt", monkeypatch, prepare=unlagged)
    state = StreamState.load(tmp_path / "hloba.pt", "same", "cpu")  # the resumed run's, at cycle 18
    assert state.cycle == 18
    torch.testing.assert_close(state.previous[0].float(), whole.analyses[17 - whole.first], rtol=0, atol=0)
