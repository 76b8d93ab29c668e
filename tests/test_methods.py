"""The analysis methods behind one protocol, on stream inputs built in-process (no Snakemake)."""

import numpy as np
import pandas as pd
import pytest
import torch

from hloba.assim.catalog import METHODS, NAMES, MethodTraits
from hloba.assim.methods import REGISTRY, Method
from hloba.assim.models import StreamError, method_models
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.stream import QC_NOT_ASSIMILATED, QC_USED, run_stream
from hloba.assim.year import run_period, stream_latent_dataset
from hloba.io import write_netcdf
from hloba.latent import open_latent

RUN = RunSettings(device="cpu", progress=False)
DAYS = 3  # after 2 days of spin-up (8 cycles, before the observations' year)


@pytest.fixture(scope="module")
def factory(stream_factory):
    return stream_factory


def _settings(method: str, **changes) -> StreamConfig:
    return StreamConfig(**{"method": method, "spinup_days": 2, "max_rejected_fraction": 1.0, "inflation_groups": 8,
                           **changes})


@pytest.fixture(scope="module")
def runs(factory):
    inputs, _ = factory
    out = {}
    for name in ("hloba", "free", "l3dvar", "l4dvar"):
        cfg = _settings(name, window_hours=12)
        out[name] = run_period(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, DAYS, RUN,
                               keep_analyses=True)
    return out


def test_every_method_gives_finite_fields_and_its_own_feedback(runs):
    for name, r in runs.items():
        cycles = slice(1, r.stop)  # the cold start's first cycle has no background variance (inf)
        assert r.stop == r.first + 4 * DAYS and r.analyses.shape[0] == 4 * DAYS
        for field in ("z_b", "z_a", "sigma_a2"):
            assert torch.isfinite(r.fields[field][cycles]).all(), (name, field)
        observed = r.diagnostic("n_obs")[cycles] > 0
        # observations of 2002 only: none in the spin-up but for its last cycle (Dec 31 18 UTC + 3 h)
        assert observed[r.first:].all() and not observed[: r.first - 1].any()
        qc = r.qc.numpy()[: int(r.diagnostic("n_obs")[: r.stop].sum())]  # the rows of the cycles run
        if REGISTRY[name].assimilates:
            assert (qc == QC_USED).mean() > 0.8 and (r.diagnostic("n_used")[r.first:r.stop] > 0).all()
        else:
            assert set(np.unique(qc)) <= {QC_NOT_ASSIMILATED, 1} and (r.diagnostic("n_used")[: r.stop] == 0).all()


def test_what_each_method_changes(runs):
    free, hloba, l3, l4 = (runs[k] for k in ("free", "hloba", "l3dvar", "l4dvar"))
    sl = slice(free.first, free.stop)
    torch.testing.assert_close(free.fields["z_a"][sl], free.fields["z_b"][sl])  # no analysis
    assert (hloba.fields["z_a"][sl] - hloba.fields["z_b"][sl]).abs().max() > 1e-3
    # HLOBA blends O2Lnet's estimate (finite where observed); the variational methods have none
    assert torch.isfinite(hloba.fields["sigma_o2"][sl]).all() and torch.isinf(l3.fields["sigma_o2"][sl]).all()
    assert (l3.diagnostic("iterations")[free.first:free.stop] > 1).all()
    # latent 4D-Var: one minimisation per 12-hour window, the window's later cycle is its forecast
    it = l4.diagnostic("iterations")[: l4.stop]
    starts = np.arange(l4.stop) % 2 == 0
    assert (it[starts & (np.arange(l4.stop) >= l4.first)] > 1).all() and (it[~starts] == 0).all()
    later = ~starts & (np.arange(l4.stop) >= l4.first)
    torch.testing.assert_close(l4.fields["z_a"][: l4.stop][later], l4.fields["z_b"][: l4.stop][later])
    # the members each method forecasts: the lagged ensemble for HLOBA only
    assert hloba.diagnostic("members")[: hloba.stop].max() == 3 and free.diagnostic("members")[: free.stop].max() == 1


def test_hloba_with_static_variance_alone_forecasts_no_lagged_members(factory, monkeypatch):
    """With the hybrid weight b = 0 (assimilation.background_variance: cycling) the lagged members
    weigh nothing: HLOBA forecasts the background alone, with the analyses of a stream that
    forecasts and encodes the members anyway (to float32 rounding: a batch of one forecasts and
    encodes in other sums than a batch of four)."""
    inputs, _ = factory
    cfg = _settings("hloba", window_hours=12)
    models = method_models(cfg, inputs, RUN.device)
    models.use_static_variance(models.sigma_clim2.clone())
    alone = run_period(2002, models, inputs.observations, cfg, 1, RUN)
    assert alone.diagnostic("members")[: alone.stop].max() == 1
    monkeypatch.setattr(REGISTRY["hloba"], "members", property(lambda self: self.models.members))
    models = method_models(cfg, inputs, RUN.device)
    models.use_static_variance(models.sigma_clim2.clone())
    forced = run_period(2002, models, inputs.observations, cfg, 1, RUN)
    assert forced.diagnostic("members")[: forced.stop].max() == 3
    for name in ("z_a", "z_b", "sigma_a2", "sigma_b2"):
        torch.testing.assert_close(alone.fields[name][: alone.stop], forced.fields[name][: alone.stop], rtol=1e-3,
                                   atol=1e-5)


def test_the_registry_holds_the_catalogs_methods_with_their_traits():
    """The workflow plans with hloba.assim.catalog (no torch); the classes the streams run carry the
    same traits, taken from it."""
    assert tuple(REGISTRY) == NAMES
    for name, cls in REGISTRY.items():
        traits = METHODS[name]
        assert (cls.tuned, cls.needs_static_covariance, cls.own_settings) == (
            traits.tuned, traits.needs_static_covariance, traits.own_settings), name
    assert REGISTRY["hloba"].tuned and REGISTRY["oi"].needs_static_covariance and not REGISTRY["l4dvar"].tuned
    assert "update" in REGISTRY["hloba"].own_settings and not REGISTRY["oi"].own_settings


def test_a_new_method_is_one_class_and_its_registry_and_catalog_entries(factory, monkeypatch):
    """The loop names no method: a method registered from outside runs with its own state."""
    inputs, _ = factory

    class Relax(Method):
        name = "relax"

        def analyse(self, c):
            c.lap("o2lnet")
            self.count = getattr(self, "count", 0) + 1
            sb2 = self.static_background_variance()
            return self.report(c, sb2, sb2.clone(), z_a=0.5 * c.z_b)

        def state(self):
            return {**super().state(), "count": torch.tensor(getattr(self, "count", 0))}

    monkeypatch.setitem(REGISTRY, "relax", Relax)
    monkeypatch.setitem(METHODS, "relax", MethodTraits())  # untuned, no static covariance, no own settings
    cfg = _settings("relax")
    models = method_models(cfg, inputs, RUN.device)
    r = run_period(2002, models, inputs.observations, cfg, 1, RUN)
    torch.testing.assert_close(r.fields["z_a"][: r.stop], 0.5 * r.fields["z_b"][: r.stop])
    assert (r.qc.numpy()[: int(r.diagnostic("n_obs")[: r.stop].sum())] != QC_NOT_ASSIMILATED).all()


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(factory, tmp_path, monkeypatch):
    """Every method's state (HLOBA's inflation, the lagged members, l4dvar's window) survives a
    checkpoint: a stream killed after its checkpoint and rerun gives the same outputs."""
    inputs, _ = factory
    for method in ("hloba", "l4dvar"):
        cfg = _settings(method, window_hours=12)
        run = RunSettings(checkpoint_every=6, device="cpu", progress=False)
        models = method_models(cfg, inputs, RUN.device)
        whole = run_period(2002, models, inputs.observations, cfg, DAYS, run)
        path = tmp_path / f"{method}.pt"
        from hloba.timeaxis import cycle_times

        times, first = cycle_times(2002, models.interval, cfg.spinup_days, models.phase)
        stop = first + 4 * DAYS
        step = type(models.forecast).step

        def dying(self, x, t, n=1):  # the job dies forecasting from cycle 14, after the checkpoint at 12
            if pd.Timestamp(t[0]) == times[14]:
                raise KeyboardInterrupt
            return step(self, x, t, n)

        with monkeypatch.context() as mp:
            mp.setattr(type(models.forecast), "step", dying)
            with pytest.raises(KeyboardInterrupt):
                run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, run,
                           resume_path=path, fingerprint_value="same", max_cycles=stop)
        assert torch.load(path, weights_only=True)["cycle"] == 12
        resumed = run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, run,
                             resume_path=path, fingerprint_value="same", max_cycles=stop)
        assert resumed.n_cycles_run == stop - 12
        for name in ("z_a", "z_b", "sigma_a2"):
            torch.testing.assert_close(resumed.fields[name][:stop], whole.fields[name][:stop], rtol=0, atol=0)
        torch.testing.assert_close(resumed.analysis, whole.analysis, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("method", ["hloba", "l4dvar"])
def test_a_stream_stopped_early_reads_only_what_it_uses(factory, method):
    """A stream with ``max_cycles`` reads the observations up to its last window's end: its
    analyses equal those of a longer stream's first cycles, and it holds no later observation."""
    inputs, _ = factory
    cfg = _settings(method, window_hours=12)  # l4dvar: windows of 2 cycles; 9 cycles end inside one
    short, longer = (run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, RUN,
                                max_cycles=n) for n in (9, 17))
    for name in ("z_a", "sigma_a2"):
        torch.testing.assert_close(short.fields[name][:9], longer.fields[name][:9], rtol=0, atol=0)
    last = short.times[9 if method == "l4dvar" else 8]  # the window of cycles 8-9 is fitted at cycle 8
    interval = short.times[1] - short.times[0]
    assert pd.DatetimeIndex(short.observations["time"]).max() <= last + interval / 2
    assert len(short.observations) < len(longer.observations)


def test_the_latent_file_holds_what_the_stream_computed(runs, factory, tmp_path):
    """The stream's latent file (``stream_latent_dataset``, as ``assimilate_year`` writes it) holds
    the cycles' fields as computed, the spin-up's apart; its reader refuses another file. The
    whole year's files: tests/test_cli.py (the session's 2001 stream, written by ``hloba assimilate``)."""
    inputs, _ = factory
    cfg = _settings("hloba", window_hours=12)
    r = runs["hloba"]
    write_netcdf(stream_latent_dataset(r, 2002, cfg, method_models(cfg, inputs, RUN.device), {}), tmp_path / "latent.nc")
    ds = open_latent(tmp_path / "latent.nc", need=("z_a", "sigma_a2_update", "z_a_spinup", "rotation"))
    assert ds.sizes["time"] == len(r.times) - r.first and ds.sizes["spinup_time"] == r.first == 8
    assert ds.attrs["method"] == "hloba" and ds.attrs["spinup_cycles"] == 8
    for name in ("z_a", "z_b", "sigma_a2_update"):
        np.testing.assert_array_equal(ds[name].values[: r.stop - r.first], r.fields[name][r.first:r.stop].numpy())
    np.testing.assert_array_equal(ds["z_a_spinup"].values, r.fields["z_a"][: r.first].numpy())
    pd.DataFrame({"time": r.times}).to_parquet(tmp_path / "feedback.parquet")
    with pytest.raises(ValueError, match=r"latent file .*feedback.parquet cannot be read"):
        open_latent(tmp_path / "feedback.parquet")


def test_a_checkpoint_from_other_inputs_or_unreadable_is_ignored(factory, tmp_path, caplog):
    inputs, _ = factory
    cfg = _settings("free")
    models = method_models(cfg, inputs, RUN.device)
    path = tmp_path / "free.pt"
    torch.save({"format": 2, "fingerprint": "something else", "cycle": 5}, path)
    with caplog.at_level("WARNING"):
        r = run_stream(2002, models, inputs.observations, cfg, RUN, resume_path=path, fingerprint_value="mine",
                       max_cycles=12)
    assert "from other inputs or settings" in caplog.text and r.n_cycles_run == 12
    path.write_bytes(b"half a checkpoint")
    with caplog.at_level("WARNING"):
        r = run_stream(2002, models, inputs.observations, cfg, RUN, resume_path=path, fingerprint_value="mine",
                       max_cycles=12)
    assert "unreadable" in caplog.text and r.n_cycles_run == 12


def test_non_finite_forecast_stops_with_the_cycle_time_and_keeps_the_checkpoint(factory, tmp_path, monkeypatch):
    inputs, _ = factory
    cfg = _settings("hloba")
    models = method_models(cfg, inputs, RUN.device)
    step = type(models.forecast).step

    def nan_step(self, x, t, n=1):
        out = step(self, x, t, n)
        return out * float("nan") if pd.Timestamp(t[0]) == pd.Timestamp("2002-01-01 06:00") else out

    monkeypatch.setattr(type(models.forecast), "step", nan_step)
    path = tmp_path / "hloba.pt"
    run = RunSettings(checkpoint_every=4, device="cpu", progress=False)
    with pytest.raises(StreamError, match=r"non-finite values in the forecast from 2002-01-01 06:00:00 \(cycle 9\); "
                                          r"last checkpoint .*hloba.pt kept"):
        run_stream(2002, models, inputs.observations, cfg, run, resume_path=path, fingerprint_value="x",
                   max_cycles=20)
    assert torch.load(path, weights_only=True)["cycle"] == 8


def test_cold_start_from_a_missing_file_names_it(factory):
    inputs, _ = factory
    cfg = _settings("free", cold_start="nowhere.nc")
    with pytest.raises(StreamError, match="cold_start 'nowhere.nc': no such file"):
        run_stream(2002, method_models(cfg, inputs, RUN.device), inputs.observations, cfg, RUN, max_cycles=2)


def test_a_window_in_hours_is_counted_in_the_datas_steps():
    """Latent 4D-Var's ``assimilation.window_hours`` on 6-hourly and on daily data (issue #17: a window
    of 4 cycles was four days on daily files); shorter than a step or between steps is an error."""
    from hloba.timeaxis import window_cycles

    assert window_cycles(24, pd.Timedelta(hours=6)) == 4
    assert window_cycles(24, pd.Timedelta(days=1)) == 1
    assert window_cycles(48, pd.Timedelta(days=1)) == 2
    for bad in (12, 36):
        with pytest.raises(ValueError, match=rf"assimilation.window_hours {bad} is not a whole number .* 24-hour steps"):
            window_cycles(bad, pd.Timedelta(days=1))
