"""Autoencoder and O2Lnet: shapes on odd grids, periodic padding, checkpoints, training, diagnostics."""

import numpy as np
import pytest
import torch

from hloba.channels import Channel
from hloba.grid import Grid
from hloba.models.autoencoder import Autoencoder, AutoencoderConfig, reconstruction_loss
from hloba.models.checkpoint import CheckpointError, check_matches_data, load_checkpoint, save_checkpoint
from hloba.models.diagnostics import latent_decorrelation
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, gaussian_nll, render_observations
from hloba.models.autoencoder import load_autoencoder
from hloba.models.training import TrainingConfig, fit, learning_rate_factor, resolve_precision, training_environment

TINY = dict(latent_channels=4, patch=4, width=16, blocks=1)


@pytest.mark.parametrize(("ny", "nx"), [(11, 13), (16, 16), (17, 32)])
@pytest.mark.parametrize("periodic", [False, True])
def test_autoencoder_shapes_round_trip_on_any_grid(ny, nx, periodic):
    cfg = AutoencoderConfig(channels=3, ny=ny, nx=nx, periodic_lat=periodic, periodic_lon=periodic, **TINY)
    model = Autoencoder(cfg)
    x = torch.randn(2, 3, ny, nx)
    z = model.encode(x)
    assert z.shape == (2, cfg.n_latent)
    assert cfg.latent_shape == (4, -(-ny // 4), -(-nx // 4))
    assert model.decode(z).shape == x.shape


def test_periodic_padding_makes_the_autoencoder_shift_equivariant():
    cfg = AutoencoderConfig(channels=2, ny=16, nx=16, periodic_lat=True, periodic_lon=True, **TINY)
    torch.manual_seed(0)
    model = Autoencoder(cfg).eval()
    x = torch.randn(1, 2, 16, 16)
    shifted = torch.roll(x, shifts=4, dims=-1)  # one latent cell (factor 4)
    with torch.no_grad():
        out, out_shifted = model(x), model(shifted)
    torch.testing.assert_close(torch.roll(out, 4, dims=-1), out_shifted, atol=1e-6, rtol=0)
    # a bounded domain does not wrap: the same shift changes the result near the edges
    bounded = Autoencoder(AutoencoderConfig(channels=2, ny=16, nx=16, **TINY)).eval()
    bounded.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert (torch.roll(bounded(x), 4, dims=-1) - bounded(shifted)).abs().max() > 1e-5


def test_too_small_grid_names_the_minimum():
    with pytest.raises(ValueError, match="at least 8 points"):
        AutoencoderConfig(channels=1, ny=5, nx=20, patch=4)


def smooth_fields(n, ny=12, nx=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 2 * np.pi, ny)[:, None]
    x = torch.linspace(0, 2 * np.pi, nx)[None, :]
    a = torch.randn(n, 4, generator=g)
    f1 = a[:, 0, None, None] * torch.sin(x + y) + a[:, 1, None, None] * torch.cos(2 * x)
    f2 = a[:, 2, None, None] * torch.sin(y) + a[:, 3, None, None] * torch.cos(x - y)
    return torch.stack([f1, f2], dim=1)


def test_training_reduces_the_loss_and_is_deterministic():
    x = smooth_fields(128)
    x_val = smooth_fields(32, seed=1)

    def train():
        torch.manual_seed(0)
        model = Autoencoder(AutoencoderConfig(channels=2, ny=12, nx=12, **TINY))
        with torch.no_grad():
            before = float(reconstruction_loss(x_val, model(x_val)))
        cfg = TrainingConfig(epochs=30, batch_size=16, samples_per_epoch=128, learning_rate=3e-3, device="cpu",
                             patience=30)
        history = fit(model, list(model.parameters()), lambda idx, g: reconstruction_loss(x[idx], model(x[idx])),
                      lambda: float(reconstruction_loss(x_val, model(x_val))), len(x), cfg, torch.device("cpu"),
                      "test", progress=False)
        return model, before, history

    model, before, history = train()
    assert history[-1]["validation_loss"] < 0.5 * before
    _, _, again = train()
    assert [h["validation_loss"] for h in history] == [h["validation_loss"] for h in again]


def test_bfloat16_steps_train_float32_weights_about_as_well():
    """``training.precision: bfloat16`` runs the steps' products in bfloat16 (autocast): the weights,
    the losses and the validation stay float32, and the network learns about as well."""
    x, x_val = smooth_fields(128), smooth_fields(32, seed=1)
    results = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = Autoencoder(AutoencoderConfig(channels=2, ny=12, nx=12, **TINY))
        cfg = TrainingConfig(epochs=30, batch_size=16, samples_per_epoch=128, learning_rate=3e-3, device="cpu",
                             patience=30, precision=precision)
        losses = []

        def loss(idx, g):
            out = reconstruction_loss(x[idx], model(x[idx]))
            losses.append(out.dtype)
            return out

        history = fit(model, list(model.parameters()), loss, lambda: float(reconstruction_loss(x_val, model(x_val))),
                      len(x), cfg, torch.device("cpu"), "test", progress=False)
        assert {p.dtype for p in model.parameters()} == {torch.float32} and set(losses) == {torch.float32}
        results[precision] = [h["validation_loss"] for h in history]
    f32, bf16 = results["float32"], results["bfloat16"]
    assert f32 != bf16  # the bfloat16 steps ran in bfloat16
    assert bf16[-1] < 0.5 * bf16[0] and 0.8 < bf16[-1] / f32[-1] < 1.25
    # under autocast the networks still hand back the caller's dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.encode(x_val).dtype == torch.float32 and model(x_val).dtype == torch.float32


def test_a_time_limit_that_stops_training_early_is_warned_about(caplog):
    """``max_minutes`` guards against a runaway job: a fit it stops before its epochs (here at once)
    keeps the best epoch so far and warns with the epochs done; one that finishes does not warn."""
    x = smooth_fields(32)
    model = Autoencoder(AutoencoderConfig(channels=2, ny=12, nx=12, **TINY))

    def run(max_minutes, epochs):
        cfg = TrainingConfig(epochs=epochs, batch_size=16, samples_per_epoch=32, device="cpu", max_minutes=max_minutes)
        caplog.clear()
        with caplog.at_level("WARNING", logger="hloba.models.training"):
            return fit(model, list(model.parameters()), lambda idx, g: reconstruction_loss(x[idx], model(x[idx])),
                       lambda: float(reconstruction_loss(x, model(x))), 32, cfg, torch.device("cpu"), "ae",
                       progress=False)

    assert len(run(0.0, 3)) == 1
    assert "ae: stopping at the time limit of 0.0 min (max_minutes) after 1 of 3 epochs" in caplog.text
    assert len(run(0.0, 1)) == 1 and not caplog.records  # the last epoch: nothing was cut short
    assert len(run(60.0, 2)) == 2 and not caplog.records


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine():
    """``warmup_epochs``: the rate rises from 1/warmup of its value to all of it over the warmup's
    steps, then falls by a cosine to 5 % at the last step; without warmup the cosine alone (the
    schedule every network had before)."""
    import math

    factors = [learning_rate_factor(s, 100, 10) for s in range(100)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.525) and factors[99] == pytest.approx(0.05, abs=5e-4)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    for s in (0, 1, 37, 99, 100, 150):  # no warmup: the former formula, bit for bit
        assert learning_rate_factor(s, 100, 0) == 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100))
    with pytest.raises(ValueError, match="warmup_epochs 3 must be >= 0 and less than epochs"):
        TrainingConfig(epochs=3, warmup_epochs=3)
    # fit applies it: after one warmup epoch the rate is the full learning rate, the cosine's start
    x = smooth_fields(32)
    model = Autoencoder(AutoencoderConfig(channels=2, ny=12, nx=12, **TINY))
    cfg = TrainingConfig(epochs=3, batch_size=16, samples_per_epoch=32, learning_rate=1e-3, warmup_epochs=1,
                         device="cpu")
    history = fit(model, list(model.parameters()), lambda idx, g: reconstruction_loss(x[idx], model(x[idx])),
                  lambda: float(reconstruction_loss(x, model(x))), 32, cfg, torch.device("cpu"), "ae", progress=False)
    rates = [h["learning_rate"] for h in history]
    assert rates[0] == pytest.approx(1e-3) and rates[1] == pytest.approx(1e-3 * learning_rate_factor(4, 6, 2))


def test_weight_average_follows_its_decay_and_swaps_back():
    """``average_decay``: an exponential average whose first updates do not weigh the initial
    weights (decay (1 + t) / (10 + t) until that is above the decay); :meth:`swapped` lends it to the
    parameters and gives them back."""
    from hloba.models.training import WeightAverage

    p = torch.nn.Parameter(torch.tensor([0.0, 10.0]))
    average = WeightAverage([p], 0.5)
    expected = torch.tensor([0.0, 10.0])
    for t, value in enumerate((1.0, 2.0, 4.0)):
        with torch.no_grad():
            p.fill_(value)
        average.update()
        decay = min(0.5, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * value
    assert average.average[0] == pytest.approx(expected) and expected[0] == pytest.approx(3.45)  # 0.9, then 1.8, then 3.45
    with average.swapped():
        assert torch.equal(p.detach(), average.average[0])
    assert torch.equal(p.detach(), torch.tensor([4.0, 4.0]))
    with pytest.raises(ValueError, match="average_decay 1.0 must be in"):
        TrainingConfig(average_decay=1.0)
    # fit validates the average and keeps it: the kept weights give the best recorded validation
    x = smooth_fields(32)
    kept = {}
    for decay in (0.0, 0.9):
        torch.manual_seed(0)
        model = Autoencoder(AutoencoderConfig(channels=2, ny=12, nx=12, **TINY))
        cfg = TrainingConfig(epochs=3, batch_size=8, samples_per_epoch=32, learning_rate=1e-3, device="cpu",
                             average_decay=decay)
        history = fit(model, list(model.parameters()), lambda idx, g: reconstruction_loss(x[idx], model(x[idx])),
                      lambda: float(reconstruction_loss(x, model(x))), 32, cfg, torch.device("cpu"), "ae",
                      progress=False)
        with torch.no_grad():
            assert float(reconstruction_loss(x, model(x))) == pytest.approx(min(h["validation_loss"] for h in history))
        kept[decay] = history
    assert kept[0.9][0]["validation_loss"] != kept[0.0][0]["validation_loss"]
    assert [h["train_loss"] for h in kept[0.9]] == [h["train_loss"] for h in kept[0.0]]  # the same steps


def test_training_precision_auto_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    for amx, avx512_bf16 in [(False, False), (True, False), (False, True), (True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        native = amx or avx512_bf16  # either unit multiplies bfloat16 (AMX tiles; AVX-512 dot products)
        assert resolve_precision("auto", cpu) == (torch.bfloat16 if native else torch.float32)
        assert resolve_precision("bfloat16", cpu) == torch.bfloat16
        assert resolve_precision("float32", cpu) == torch.float32
        assert training_environment(cpu, "auto")["precision"] == ("bfloat16" if native else "float32")
    # a CUDA GPU multiplies bfloat16 natively, but the default networks' steps were slower in it
    # there (benchmarks/gpu_check.sh on an H200): auto stays float32, bfloat16 is not warned about
    import hloba.models.training as training

    monkeypatch.setattr(training, "native_bfloat16", lambda device: True)
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda) == torch.float32 and resolve_precision("bfloat16", cuda) == torch.bfloat16
    assert resolve_precision("auto", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="'half' must be one of auto, float32, bfloat16"):
        TrainingConfig(precision="half")


def save_tiny(path, cfg=None, kind="autoencoder"):
    cfg = cfg or AutoencoderConfig(channels=2, ny=12, nx=12, **TINY)
    model = Autoencoder(cfg)
    channels = [Channel("geopotential", 250.0), Channel("temperature")]
    grid = Grid(tuple(np.linspace(30, 60, 12)), tuple(np.linspace(0, 44, 12)), longitude_period=48.0)
    normalizer = {"anomaly_std": torch.ones(2, dtype=torch.float64), "coefficients": torch.zeros(3, 2, 12, 12, dtype=torch.float64), "n_harmonics": 1}
    save_checkpoint(path, kind, cfg.to_dict(), model.state_dict(), channels, grid, normalizer, {"note": "test"})
    return model, channels, grid


def test_checkpoint_rebuilds_the_same_module_from_the_file_alone(tmp_path):
    model, channels, grid = save_tiny(tmp_path / "ae.pt")
    rebuilt, payload = load_autoencoder(tmp_path / "ae.pt")
    x = torch.randn(3, 2, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x), rtol=0, atol=0)
    assert payload["channels"]["names"] == ["geopotential_250", "temperature"]
    assert payload["grid"]["longitude_period"] == 48.0
    check_matches_data(payload, channels, grid)


def test_bad_checkpoints_fail_with_a_clear_message(tmp_path):
    save_tiny(tmp_path / "ae.pt")
    data = (tmp_path / "ae.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "truncated.pt", "autoencoder")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an hloba checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", "autoencoder")
    with pytest.raises(CheckpointError, match="expected 'o2lnet'"):
        load_checkpoint(tmp_path / "ae.pt", "o2lnet")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt", "autoencoder")
    payload = load_checkpoint(tmp_path / "ae.pt", "autoencoder")
    with pytest.raises(CheckpointError, match="channels"):
        check_matches_data(payload, [Channel("temperature")], Grid(tuple(np.linspace(30, 60, 12)), tuple(np.linspace(0, 44, 12))))
    with pytest.raises(CheckpointError, match="12 x 12 grid"):
        check_matches_data(payload, [Channel("geopotential", 250.0), Channel("temperature")],
                           Grid(tuple(np.linspace(30, 60, 10)), tuple(np.linspace(0, 44, 12))))


def test_render_observations_means_and_masks():
    sample = torch.tensor([0, 0, 1, 1])
    channel = torch.tensor([1, 1, 0, 1])
    row = torch.tensor([2, 2, 0, 3])
    col = torch.tensor([1, 1, 4, 0])
    value = torch.tensor([1.0, 3.0, -2.0, 5.0])
    out = render_observations(sample, channel, row, col, value, 2, 2, 4, 5)
    assert out.shape == (2, 4, 4, 5)
    assert out[0, 1, 2, 1] == 2.0 and out[0, 3, 2, 1] == 1.0  # mean of two, mask set
    assert out[1, 0, 0, 4] == -2.0 and out[1, 1, 3, 0] == 5.0
    assert out[:, 2:].sum() == 3  # three observed cells


def test_render_observations_matches_a_cell_by_cell_mean():
    g = torch.Generator().manual_seed(3)
    batch, n_channels, ny, nx, n = 3, 4, 5, 6, 400  # many observations per cell
    sample, channel = torch.randint(0, batch, (n,), generator=g), torch.randint(0, n_channels, (n,), generator=g)
    row, col = torch.randint(0, ny, (n,), generator=g), torch.randint(0, nx, (n,), generator=g)
    value = torch.randn(n, generator=g)
    out = render_observations(sample, channel, row, col, value, batch, n_channels, ny, nx)
    expected = torch.zeros(batch, 2 * n_channels, ny, nx)
    for key in set(zip(sample.tolist(), channel.tolist(), row.tolist(), col.tolist())):
        s, c, r, q = key
        hit = (sample == s) & (channel == c) & (row == r) & (col == q)
        expected[s, c, r, q], expected[s, n_channels + c, r, q] = value[hit].mean(), 1.0
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert 0 < int(expected[:, n_channels:].sum()) < batch * n_channels * ny * nx  # empty cells too


def test_o2lnet_outputs_live_in_the_autoencoder_latent():
    ae_cfg = AutoencoderConfig(channels=3, ny=11, nx=13, **TINY)
    net = O2Lnet(O2LnetConfig(autoencoder=ae_cfg.to_dict(), width=8, blocks=2))
    z, logvar = net(torch.randn(2, 6, 11, 13))
    assert z.shape == logvar.shape == (2, ae_cfg.n_latent)


def test_a_windowed_o2lnet_reads_each_slot_into_channels_of_its_own():
    import pandas as pd

    from hloba.obs.gridded import GriddedObservations, batch_observations, window_observations

    # three cycles: cycle 0 has one observation of channel 1, cycle 1 two of channel 0, cycle 2 none
    obs = GriddedObservations(
        pd.date_range("2001-01-01", periods=3, freq="6h"), torch.tensor([0, 1, 3, 3]), torch.tensor([1, 0, 0]),
        torch.tensor([0, 1, 2]), torch.tensor([0, 3, 4]), torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0, 0, 0]),
        ["radiosonde"])
    # one slot of offset 0 is the single-cycle batch
    single = batch_observations(obs, torch.tensor([0, 1]))
    for a, b in zip(window_observations(obs, torch.tensor([0, 1]), (0,), 2), single):
        assert torch.equal(a, b)
    # window (-1, 0) at cycles 0 and 1: slot 0 is the previous cycle (none before cycle 0)
    sample, ch, row, col, val = window_observations(obs, torch.tensor([0, 1]), (-1, 0), 2)
    got = sorted(zip(sample.tolist(), ch.tolist(), val.tolist()))
    assert got == [(0, 3, 0.5), (1, 1, 0.5), (1, 2, -1.0), (1, 2, 2.0)]
    rendered = render_observations(sample, ch, row, col, val, 2, 4, 3, 5)
    assert rendered.shape == (2, 8, 3, 5) and rendered[0, 4:6].sum() == 0  # sample 0 has no earlier cycle
    # cycles 0 and 1 from two runs of the world (a chain boundary between them): no window spans it
    from dataclasses import replace

    two_runs = replace(obs, runs=torch.tensor([0, 1, 1]))
    sample, ch, row, col, val = window_observations(two_runs, torch.tensor([0, 1, 2]), (-1, 0, 1), 2)
    got = sorted(zip(sample.tolist(), ch.tolist(), val.tolist()))
    assert got == [(0, 3, 0.5), (1, 2, -1.0), (1, 2, 2.0), (2, 0, -1.0), (2, 0, 2.0)]
    # without runs sample 0 would read cycle 1 at slot +1 and sample 1 cycle 0 at slot -1
    assert len(window_observations(obs, torch.tensor([0, 1, 2]), (-1, 0, 1), 2)[0]) == 8
    ae_cfg = AutoencoderConfig(channels=2, ny=11, nx=13, **TINY)
    net = O2Lnet(O2LnetConfig(autoencoder=ae_cfg.to_dict(), width=8, blocks=2, slots=(-1, 0)))
    assert net(torch.randn(1, 8, 11, 13))[0].shape == (1, ae_cfg.n_latent)
    with pytest.raises(ValueError, match="distinct"):
        O2LnetConfig(autoencoder=ae_cfg.to_dict(), slots=(0, 0))


def test_a_batch_gathers_and_thins_each_cycle_as_a_cycle_by_cycle_draw_would():
    import pandas as pd

    from hloba.obs.gridded import GriddedObservations, batch_observations

    g = torch.Generator().manual_seed(2)
    counts = torch.tensor([3, 0, 5, 1, 4])  # a cycle without observations too
    offsets = torch.cat((torch.zeros(1, dtype=torch.long), counts.cumsum(0)))
    n = int(offsets[-1])
    obs = GriddedObservations(pd.date_range("2001-01-01", periods=5, freq="6h"), offsets,
                              torch.randint(0, 3, (n,), generator=g), torch.randint(0, 4, (n,), generator=g),
                              torch.randint(0, 4, (n,), generator=g), torch.randn(n, generator=g),
                              torch.tensor([0, 1, -1] * 5)[:n], ["radiosonde", "aircraft"])
    cycles = torch.tensor([4, 1, 2, 2, 0])
    keep_prob = torch.rand(len(cycles), 2, generator=g)
    # the former form: cycle by cycle, one draw per observation of a cycle that has any
    draws = torch.Generator().manual_seed(7)
    expected = []
    for b, k in enumerate(cycles.tolist()):
        s = obs.cycle(k)
        keep = torch.rand(s.stop - s.start, generator=draws) < keep_prob[b][obs.network[s].clamp(min=0)] if (
            s.stop > s.start) else torch.zeros(0, dtype=torch.bool)
        rows = torch.arange(s.start, s.stop)[keep]
        expected += [(b, int(obs.channel[r]), int(obs.row[r]), int(obs.col[r]), float(obs.value[r])) for r in rows]
    got = batch_observations(obs, cycles, keep_prob, torch.Generator().manual_seed(7))
    assert list(zip(*(x.tolist() for x in got))) == expected and 0 < len(expected) < 17
    whole = batch_observations(obs, cycles)
    assert whole[0].tolist() == [0, 0, 0, 0, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4]
    assert torch.equal(whole[4], obs.value[torch.tensor([9, 10, 11, 12, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 0, 1, 2])])


def test_thinning_by_station_keeps_or_drops_a_station_in_the_whole_window():
    """``o2lnet.thin_by: station``: each network's grid cell is in every slot and channel of a
    sample's window or in none (as a withheld station is), in the share the draw asks for;
    ``value`` thins each value on its own, so a station is almost never gone from a whole window."""
    import pandas as pd

    from hloba.models.settings import O2LnetTraining
    from hloba.obs.gridded import GriddedObservations, window_observations

    ny, nx, n_cycles = 6, 7, 4
    rows, cols = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    # every cycle: both networks report two channels at every cell (a station per cell and network);
    # each value is its network's number, so that what is kept tells its network
    row, col = rows.flatten().repeat(4), cols.flatten().repeat(4)
    network = torch.arange(2).repeat_interleave(2 * ny * nx)
    channel = torch.arange(2).repeat_interleave(ny * nx).repeat(2)
    n = len(row)
    obs = GriddedObservations(pd.date_range("2001-01-01", periods=n_cycles, freq="6h"), torch.arange(n_cycles + 1) * n,
                              channel.repeat(n_cycles), row.repeat(n_cycles), col.repeat(n_cycles),
                              network.float().repeat(n_cycles), network.repeat(n_cycles), ["radiosonde", "surface"])
    share = torch.tensor([[0.5, 1.0], [0.0, 0.8]])  # per sample and network
    cycles, slots = torch.tensor([1, 2]), (-1, 0, 1)

    def per_station(kept):  # values kept per sample, network and cell
        sample, _, r, c, value = kept
        counts = torch.zeros(2, 2, ny, nx, dtype=torch.long)
        counts.index_put_((sample, value.long(), r, c), torch.ones_like(sample), accumulate=True)
        return counts

    g = torch.Generator().manual_seed(0)
    cells = torch.rand(2, 2, ny, nx, generator=g) < share[:, :, None, None]
    seen = per_station(window_observations(obs, cycles, slots, 2, keep_cells=cells))
    assert set(seen.unique().tolist()) == {0, 6} and torch.equal(seen == 6, cells)  # 3 slots x 2 channels
    assert seen[1, 0].sum() == 0 and (seen[0, 1] == 6).all()  # share 0: the network gone; 1: whole
    assert 0.3 < cells[0, 0].float().mean() < 0.7 and 0.6 < cells[1, 1].float().mean() < 0.95
    # thinned value by value at the same share, nearly every station stays in the window somewhere
    by_value = per_station(window_observations(obs, cycles, slots, 2, share, g))
    assert (by_value[0, 0] > 0).float().mean() > 0.9 and (by_value[0, 0] < 6).any()
    assert O2LnetTraining().thin_by == "station"
    with pytest.raises(ValueError, match="o2lnet.thin_by='cell': use one of"):
        O2LnetTraining(thin_by="cell")


def test_gaussian_nll_is_minimised_by_the_true_variance():
    g = torch.Generator().manual_seed(0)
    err = 0.7 * torch.randn(20000, generator=g)
    levels = torch.linspace(-3, 1, 41)
    losses = [float(gaussian_nll(err, torch.zeros_like(err), torch.full_like(err, float(lv)))) for lv in levels]
    best = float(levels[int(np.argmin(losses))])
    assert best == pytest.approx(np.log(0.49), abs=0.1)


def test_decorrelation_diagnostic_separates_independent_from_correlated():
    g = torch.Generator().manual_seed(0)
    independent = torch.randn(2000, 50, generator=g)
    d = latent_decorrelation(independent)
    assert d["off_diagonal_energy_fraction"] == pytest.approx(d["sampling_floor"], rel=0.15)
    common = torch.randn(2000, 1, generator=g)
    correlated = independent + 2.0 * common
    c = latent_decorrelation(correlated)
    assert c["off_diagonal_energy_fraction"] > 0.9
    assert c["max_abs_offdiagonal_correlation"] > 0.7


def test_decoder_channel_weights_name_channels_or_variables_and_keep_mean_one():
    from hloba.models.train_o2lnet import decoder_channel_weights

    channels = [Channel("geopotential", 250), Channel("geopotential", 750), Channel("temperature", 500),
                Channel("specific_humidity")]
    assert decoder_channel_weights({}, channels).tolist() == [1.0, 1.0, 1.0, 1.0]
    w = decoder_channel_weights({"specific_humidity": 4.0}, channels)
    assert w.tolist() == pytest.approx([4 / 7, 4 / 7, 4 / 7, 16 / 7])  # 1, 1, 1, 4 over their mean 7/4
    w = decoder_channel_weights({"geopotential": 3.0, "temperature_500": 2.0}, channels)  # a variable: both levels
    assert w.tolist() == pytest.approx([3 / 2.25, 3 / 2.25, 2 / 2.25, 1 / 2.25])
    with pytest.raises(ValueError, match="'humidity'.*specific_humidity"):
        decoder_channel_weights({"humidity": 2.0}, channels)
    with pytest.raises(ValueError, match="must be > 0"):
        decoder_channel_weights({"temperature": 0.0}, channels)
