"""Forecast models: one conformance test for every implementation, config plumbing, mismatches,
and the hybrid-weight calibration."""

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from hloba.ensemble.calibration import LaggedForecasts, calibrate, nnls_two
from hloba.forecast import ForecastModelError, build_forecast_model, check_forecast_model
from hloba.forecast.emulator import EmulatorConfig, EmulatorForecast, EmulatorNet
from hloba.forecast.qg import QGForecast, world_channels
from hloba.normalization import Normalizer
from hloba.testing import tiny_world_config

SIX_HOURS = pd.Timedelta(hours=6)


@pytest.fixture(scope="module")
def world(tiny_world):
    """The session's tiny world (2002; :func:`hloba.testing.tiny_world_years`) and its configuration."""
    config, ds = tiny_world_config(seed=3), tiny_world[2002]
    from hloba.channels import list_channels, stack_channels

    channels = list_channels(ds)
    x = torch.from_numpy(stack_channels(ds, channels).astype(np.float64))
    return config, channels, x, pd.DatetimeIndex(ds.time.values)


def tiny_normalizer(x, channels):
    std = x.std(dim=(0, 2, 3))
    coef = torch.zeros(3, len(channels), *x.shape[-2:], dtype=torch.float64)
    coef[0] = x.mean(0)
    return Normalizer(std, coef, 1)


def make_models(world, tmp_path):
    config, channels, x, times = world
    models = {"qg": QGForecast(config.qg, SIX_HOURS, {"drag_timescale_days": 2.5})}
    net = EmulatorNet(EmulatorConfig(channels=len(channels), ny=16, nx=16, width=8, blocks=1,
                                     periodic_lat=True, periodic_lon=True))
    torch.nn.init.normal_(net.decoder.head.weight, std=0.01)
    models["emulator"] = EmulatorForecast(net, tiny_normalizer(x, channels), channels)

    class Damped(torch.nn.Module):
        def forward(self, x):
            return 0.9 * x + 0.1 * x.mean(dim=(-2, -1), keepdim=True)

    path = tmp_path / "model.pt"
    torch.jit.script(Damped()).save(str(path))
    models["torchscript"] = build_forecast_model({"model": "torchscript", "path": str(path)}, channels, SIX_HOURS)
    (tmp_path / "usermodel_fc.py").write_text(textwrap.dedent("""
        import torch

        def step(x, times, n):
            for _ in range(n):
                x = x + 0.01 * torch.roll(x, 1, dims=-1) - 0.01 * x
            return x
    """))
    sys.path.insert(0, str(tmp_path))
    models["python"] = build_forecast_model({"model": "python", "callable": "usermodel_fc:step"}, channels, SIX_HOURS)
    return models


@pytest.mark.parametrize("kind", ["qg", "emulator", "torchscript", "python"])
def test_conformance(world, tmp_path, kind):
    config, channels, x, times = world
    model = make_models(world, tmp_path)[kind]
    check_forecast_model(model, channels, x[:2], times[:2])
    batch, t = x[10:13], times[10:13]
    with torch.no_grad():
        together = model.step(batch, t, 2)
        apart = torch.cat([model.step(batch[i:i + 1], t[i:i + 1], 2) for i in range(3)])
        again = model.step(batch, t, 2)
    assert together.shape == batch.shape and together.dtype == batch.dtype
    torch.testing.assert_close(together, apart, rtol=1e-6, atol=1e-6 * float(batch.abs().max()))  # batch independence
    torch.testing.assert_close(together, again, rtol=0, atol=0)  # determinism
    assert not torch.equal(together, batch)  # it does something
    two_single = model.step(model.step(batch, t, 1), t + SIX_HOURS, 1)
    torch.testing.assert_close(together, two_single, rtol=1e-6, atol=1e-6 * float(batch.abs().max()))
    if torch.cuda.is_available():
        on_gpu = model.step(batch.cuda(), t, 2).cpu()
        torch.testing.assert_close(on_gpu, together, rtol=1e-4, atol=1e-4 * float(batch.abs().max()))


def test_unperturbed_qg_forecast_reproduces_the_reference(world):
    config, channels, x, times = world
    model = QGForecast(config.qg, SIX_HOURS)
    out = model.step(x[100:104], times[100:104], 4)
    err = (out - x[104:108]).pow(2).mean(dim=(0, 2, 3)).sqrt()
    change = (x[100:104] - x[104:108]).pow(2).mean(dim=(0, 2, 3)).sqrt()
    assert (err < 0.02 * change).all()  # only the float32 rounding of the stored states differs
    imperfect = QGForecast(config.qg, SIX_HOURS, {"drag_timescale_days": 3.0, "shear_m_s": 6.0})
    err_imperfect = (imperfect.step(x[100:104], times[100:104], 4) - x[104:108]).pow(2).mean(dim=(0, 2, 3)).sqrt()
    assert (err_imperfect > 3 * err).any()
    # a different mean shear is a bias in the mean wind, not a ramp in the eddies: no Gibbs
    # ringing at the wrap-around of the domain
    u250 = imperfect.step(x[100:101], times[100:101], 1)[0, 2] - x[101, 2]
    rows = u250.mean(dim=1)
    assert float(rows.max() - rows.min()) < 1.0
    assert float(u250.mean()) == pytest.approx(-1.0 * (1 + 0.15 * np.cos(2 * np.pi * (times[101].day_of_year - 15) / 365.2425)), abs=0.2)


def test_qg_forecast_is_differentiable(world):
    config, channels, x, times = world
    model = QGForecast(config.qg, SIX_HOURS)
    x0 = x[:1].clone().requires_grad_(True)
    model.step(x0, times[:1], 2)[:, 0].pow(2).mean().backward()
    assert torch.isfinite(x0.grad).all() and x0.grad.abs().sum() > 0


def test_mismatched_models_fail_before_cycling(world, tmp_path):
    config, channels, x, times = world
    (tmp_path / "badmodel_fc.py").write_text("def step(x, times, n):\n    return x[:, :3]\n")
    sys.path.insert(0, str(tmp_path))
    bad_shape = build_forecast_model({"model": "python", "callable": "badmodel_fc:step"}, channels, SIX_HOURS)
    with pytest.raises(ForecastModelError, match=r"returned \(2, 3, 16, 16\)"):
        check_forecast_model(bad_shape, channels, x[:2], times[:2])
    wrong = build_forecast_model({"model": "python", "callable": "badmodel_fc:step",
                                  "channels": ["geopotential_250", "vorticity"]}, channels, SIX_HOURS)
    with pytest.raises(ForecastModelError, match="missing .*temperature"):
        check_forecast_model(wrong, channels, x[:2], times[:2])
    with pytest.raises(ForecastModelError, match="no 'nothing'"):
        build_forecast_model({"model": "python", "callable": "badmodel_fc:nothing"}, channels, SIX_HOURS)
    with pytest.raises(ForecastModelError, match="does not exist"):
        build_forecast_model({"model": "torchscript", "path": str(tmp_path / "none.pt")}, channels, SIX_HOURS)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ForecastModelError, match="not a TorchScript module"):
        build_forecast_model({"model": "torchscript", "path": str(tmp_path / "junk.pt")}, channels, SIX_HOURS)
    assert [c.name for c in world_channels(config.qg)] == [c.name for c in channels]


@pytest.mark.parametrize(("a", "b"), [(0.7, 1.8), (1.2, 0.0), (0.0, 2.5)])
def test_nnls_recovers_known_hybrid_weights(a, b):
    rng = np.random.default_rng(0)
    clim = rng.uniform(0.5, 2.0, 400)[None, :].repeat(500, 0)
    s2 = rng.gamma(2.0, 0.5, (500, 400))
    e2 = (a * clim + b * s2) * rng.standard_normal((500, 400)) ** 2
    fa, fb = nnls_two(clim, s2, e2)
    assert fa == pytest.approx(a, abs=0.03)
    assert fb == pytest.approx(b, abs=0.03)


def test_nnls_clamps_negative_weights():
    x1 = np.array([1.0, 2.0, 3.0, 4.0])
    x2 = np.array([1.0, 1.0, 1.0, 1.0])
    fa, fb = nnls_two(x1, x2, 5.0 - x1)  # unconstrained fit: a = -1, b = 5
    assert fa == 0.0 and fb == pytest.approx(2.5)


def test_calibration_of_synthetic_lagged_members():
    g = torch.Generator().manual_seed(0)
    t, k, n = 800, 4, 6
    spread = torch.rand(t, 1, generator=g) * 2 + 0.5  # flow-dependent error size
    truth = torch.randn(t, n, generator=g)
    members = truth[:, None] + spread[:, None] * torch.randn(t, k, n, generator=g)
    cal = calibrate(LaggedForecasts(pd.date_range("2003", periods=t, freq="6h"), truth, members))
    assert cal["corr_s2_e2"] > 0.2 and cal["hybrid_b"] > 0.5
    np.testing.assert_allclose(cal["sigma_clim2"].numpy(), (spread**2).mean().item(), rtol=0.15)
    v = cal["rotation"].double()
    torch.testing.assert_close(v.T @ v, torch.eye(n, dtype=torch.float64), atol=1e-5, rtol=0)


def test_shrinkage_is_small_with_plenty_of_samples_and_large_with_few():
    from hloba.ensemble.calibration import shrunk_covariance

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(20, 20, generator=g)
    many = torch.randn(5000, 20, generator=g) @ mix
    cov, lam = shrunk_covariance(many)
    assert lam < 0.02
    torch.testing.assert_close(cov, many.double().T @ many.double() / 5000, rtol=0.05, atol=0.05 * float(cov.abs().max()))
    _, lam_few = shrunk_covariance(torch.randn(15, 20, generator=g) @ mix)
    assert lam_few > 5 * lam
    _, lam_white = shrunk_covariance(torch.randn(200, 20, generator=g))
    assert lam_white > 0.5  # independent elements: the off-diagonal correlations are all noise


def test_local_calibration_rotation_mixes_only_cells_of_one_block():
    """ensemble.rotation_cells: the rotation is orthogonal, zero between elements of different
    squares of latent cells (every channel of a cell in its square), its modes sorted by variance."""
    from hloba.ensemble.calibration import cell_blocks

    blocks = cell_blocks((2, 4, 4), 2)
    assert blocks.tolist()[:8] == [0, 0, 1, 1, 0, 0, 1, 1] and blocks.tolist()[16:24] == blocks.tolist()[:8]
    ragged = cell_blocks((2, 5, 5), 2)  # squares of 2 x 2 cells, 1 x 2, 2 x 1 and 1 x 1 at the edges
    assert torch.bincount(ragged).tolist() == [8, 8, 4, 8, 8, 4, 4, 4, 2]
    with pytest.raises(ValueError, match="rotation_cells = 0"):
        cell_blocks((2, 4, 4), 0)
    g = torch.Generator().manual_seed(1)
    t, k, n = 600, 3, 32
    truth = torch.randn(t, n, generator=g)
    members = truth[:, None] + torch.randn(t, k, n, generator=g) @ torch.randn(n, n, generator=g) * 0.2
    cal = calibrate(LaggedForecasts(pd.date_range("2003", periods=t, freq="6h"), truth, members), blocks)
    v = cal["rotation"].double()
    torch.testing.assert_close(v.T @ v, torch.eye(n, dtype=torch.float64), atol=1e-5, rtol=0)
    across = blocks[:, None] != blocks[None, :]
    assert float((v.abs() @ v.abs().T)[across].abs().max()) == 0.0  # no mode touches two blocks
    lam = cal["sigma_clim2_rotated"]
    assert cal["rotation_block"].tolist() == blocks.tolist()
    dense = calibrate(LaggedForecasts(pd.date_range("2003", periods=t, freq="6h"), truth, members))
    # a local rotation decorrelates less than the global one, but still far below no rotation
    after, full = cal["decorrelation_after_rotation"], dense["decorrelation_after_rotation"]
    before = cal["decorrelation_before"]["off_diagonal_energy_fraction"]
    assert full["off_diagonal_energy_fraction"] < after["off_diagonal_energy_fraction"] < before
    assert float(lam[0]) >= float(lam[-1])
    # the calibration file records the blocks, and the stream's update space applies them block by block
    from hloba.assim.cycle import UpdateSpace
    from hloba.channels import Channel
    from hloba.ensemble.generate import calibration_dataset

    err, times = np.ones((2, 1)), pd.date_range("2003", periods=t, freq="6h")
    ds = calibration_dataset(cal, err, err, pd.Timedelta(hours=6), [Channel("temperature")], times, {"model": "qg"}, k)
    assert ds["rotation_block"].values.tolist() == blocks.tolist()
    assert "rotation_block" not in calibration_dataset(dense, err, err, pd.Timedelta(hours=6),
                                                       [Channel("temperature")], times, {"model": "qg"}, k)
    space = UpdateSpace(torch.as_tensor(ds["rotation"].values), torch.as_tensor(ds["rotation_block"].values))
    assert space.local is not None
    torch.testing.assert_close(space.forward(truth[:3]), truth[:3] @ torch.as_tensor(ds["rotation"].values))
