"""O2Lnet over a window of cycles (``o2lnet.window_hours``): slots from hours, the observations a
stream hands it (its own earlier decisions), and a windowed stream that resumes exactly."""

from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from hloba.assim.methods import Cycle, MethodError, build_method
from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.stream import QC_FIRST_GUESS, QC_USED, QC_WITHHELD, run_stream
from hloba.assim.year import run_period
from hloba.models.train_o2lnet import window_architecture
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
    method = SimpleNamespace(models=SimpleNamespace(channels=[0, 1, 2]), slots=(-3, -2, -1, 0), _used={})
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
def windowed(tmp_path_factory):
    from hloba.testing import tiny_stream_inputs

    inputs, paths = tiny_stream_inputs(tmp_path_factory.mktemp("windowed"))
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

    step = type(models.forecast).step
    death = whole.times[14]

    def dying(self, x, t, n=1):  # the job dies forecasting from cycle 14, after the checkpoint at 12
        if pd.Timestamp(t[0]) == death:
            raise KeyboardInterrupt
        return step(self, x, t, n)

    path = tmp_path / "hloba.pt"
    with monkeypatch.context() as mp:
        mp.setattr(type(models.forecast), "step", dying)
        with pytest.raises(KeyboardInterrupt):
            run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, run,
                       resume_path=path, fingerprint_value="same", max_cycles=stop)
    resumed = run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, run,
                         resume_path=path, fingerprint_value="same", max_cycles=stop)
    assert resumed.n_cycles_run == stop - 12
    for name in ("z_o", "z_a", "sigma_a2"):  # cycles 12-13 read the observations used before the death
        torch.testing.assert_close(resumed.fields[name][:stop], whole.fields[name][:stop], rtol=0, atol=0)


def test_a_window_with_later_cycles_is_refused_before_the_first_cycle(windowed, tmp_path):
    _, _, paths = windowed
    _, o2lnet = untrained_checkpoints(paths["reference"], paths["normalization"], tmp_path, slots=(0, 1))
    single, _, _ = windowed
    cfg = StreamConfig(method="hloba", spinup_days=2)
    with pytest.raises(MethodError, match=r"later cycles \(slots \(0, 1\)\).*o2lnet.window_hours"):
        build_method("hloba", method_models(cfg, replace(single, o2lnet=str(o2lnet)), "cpu"), cfg)
