"""The archive's std network (hloba.archive.std_model): it learns a variance that its inputs
carry, respects the grid's periodicity, and survives a save and load."""

import numpy as np
import pytest
import torch

from hloba.archive.settings import UncertaintySettings
from hloba.archive.std_model import (
    StdEnsemble, StdModel, StdNet, calibration_offset, fit_std_model, fit_std_net, load_std_model, save_std_model,
    std_inputs, validation_times, weighted_nll,
)
from hloba.channels import Channel
from hloba.grid import Grid


def synthetic(n=60, ny=12, nx=12, seed=0):
    """Errors whose std is exp(x / 2) of a smooth input field x, in 2 channels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, ny, nx))
    x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2)) / np.sqrt(3)  # some spatial structure
    noise = rng.normal(size=(n, 1, ny, nx))
    inputs = np.concatenate([x, noise], axis=1).astype(np.float32)  # one informative, one useless input
    std = np.exp(0.5 * np.concatenate([x, -x], axis=1))
    err = std * rng.normal(size=std.shape)
    return inputs, err**2, std


def test_the_network_learns_the_variance_its_inputs_carry():
    inputs, err2, std = synthetic()
    net, report = fit_std_net(inputs, err2, np.ones(12), epochs=40, hidden=8, layers=2, seed=1)
    with torch.no_grad():
        pred = np.exp(0.5 * net(torch.as_tensor(inputs)).numpy())
    for c in range(2):
        r = np.corrcoef(np.log(pred[:, c]).ravel(), np.log(std[:, c]).ravel())[0, 1]
        assert r > 0.9, (c, r)
    # the size as well as the shape: predicted over true rms std within 15 %
    ratio = np.sqrt((pred**2).mean(axis=(0, 2, 3)) / (std**2).mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)
    assert report["validation_times"] == 12 and report["fit_times"] == 48
    assert report["history"][report["best_epoch"]]["val_nll"] == min(h["val_nll"] for h in report["history"])


@pytest.mark.parametrize("dtype, ema", [(torch.bfloat16, 0.0), (torch.float32, 0.9), (torch.bfloat16, 0.9)])
def test_bfloat16_steps_and_averaged_weights_learn_the_variance_too(dtype, ema):
    inputs, err2, std = synthetic()
    net, _ = fit_std_net(inputs, err2, np.ones(12), epochs=40, hidden=8, layers=2, seed=1, dtype=dtype, ema=ema)
    assert next(net.parameters()).dtype == torch.float32  # autocast: the weights stay float32
    with torch.no_grad():
        pred = np.exp(0.5 * net(torch.as_tensor(inputs)).numpy())
    for c in range(2):
        assert np.corrcoef(np.log(pred[:, c]).ravel(), np.log(std[:, c]).ravel())[0, 1] > 0.9


def test_averaged_weights_are_the_moving_average_of_the_steps():
    inputs, err2, _ = synthetic(n=10)
    # one epoch of one batch: the average moves from the initial weights by (1 - ema) of the step
    first, _ = fit_std_net(inputs, err2, np.ones(12), epochs=1, hidden=2, layers=1, batch=100, seed=3, ema=0.0)
    averaged, _ = fit_std_net(inputs, err2, np.ones(12), epochs=1, hidden=2, layers=1, batch=100, seed=3, ema=0.75)
    torch.manual_seed(3)
    start = StdNet(2, 2, 2, 1)  # the fit's initial network: its seed, the fitted times' mean log error as bias
    fitted = ~validation_times(10, 0.2).numpy()
    with torch.no_grad():
        start.convs[-1].bias.copy_(torch.log(torch.as_tensor(err2[fitted], dtype=torch.float32).mean(dim=(0, 2, 3))))
    for p0, p1, pa in zip(start.parameters(), first.parameters(), averaged.parameters()):
        torch.testing.assert_close(pa, 0.75 * p0 + 0.25 * p1)
    with pytest.raises(ValueError, match="uncertainty.network_ema is 1.0"):
        fit_std_net(inputs, err2, np.ones(12), epochs=1, ema=1.0)


def test_an_ensemble_averages_its_members_log_variances_and_is_calibrated(tmp_path):
    inputs, err2, _ = synthetic(n=40)
    area = np.linspace(0.5, 1.5, 12)
    model, report = fit_std_model(inputs, err2, area, np.array([2.0, 3.0]), (1, 3, 3), members=3, epochs=3,
                                  hidden=4, layers=2, seed=5)
    assert isinstance(model.net, StdEnsemble) and len(report["members"]) == 3
    members = model.net.members
    # other seeds: other weights
    assert not torch.equal(members[0].convs[0].weight, members[1].convs[0].weight)
    x = torch.as_tensor(model.standardize(inputs))
    with torch.no_grad():
        each = torch.stack([m(x) for m in members]).double()
    np.testing.assert_allclose(model.log_variance(inputs), each.mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)
    # the NLL is convex in the log variance: the mean's is at most the members' mean NLL, on new times
    new, new_err2, _ = synthetic(n=20, seed=9)
    xn = torch.as_tensor(model.standardize(new))
    w = torch.ones(1, 1, 12, 1)
    e2 = torch.as_tensor(new_err2, dtype=torch.float32)
    with torch.no_grad():
        members_nll = [float(weighted_nll(m(xn), e2, w)) for m in members]
        assert float(weighted_nll(model.net(xn), e2, w)) <= np.mean(members_nll) + 1e-6
    var = model.predict(inputs).astype(np.float64) ** 2 / np.array([4.0, 9.0])[None, :, None, None]
    wa = area[None, None, :, None]
    np.testing.assert_allclose((var * wa).sum(axis=(0, 2, 3)) / (err2 * wa).sum(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    channels = [Channel("a"), Channel("b")]
    grid = Grid(tuple(np.linspace(40, 50, 12)), tuple(np.linspace(0, 10, 12)))
    normalizer = {"anomaly_std": torch.tensor([2.0, 3.0]), "coefficients": torch.zeros(1, 2, 12, 12),
                  "n_harmonics": 0}
    save_std_model(tmp_path / "e.pt", model, channels, grid, normalizer, {})
    loaded, payload = load_std_model(tmp_path / "e.pt")
    assert payload["config"]["members"] == 3 and isinstance(loaded.net, StdEnsemble)
    np.testing.assert_array_equal(loaded.predict(inputs), model.predict(inputs))


def test_periodic_padding_commutes_with_a_shift_and_edges_do_not_wrap_otherwise():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 10, 14)
    periodic = StdNet(3, 2, hidden=4, layers=3, periodic=(True, True)).eval()
    with torch.no_grad():
        shifted = periodic(torch.roll(x, (3, 5), dims=(2, 3)))
        np.testing.assert_allclose(shifted.numpy(), torch.roll(periodic(x), (3, 5), dims=(2, 3)).numpy(), atol=1e-5)
        regional = StdNet(3, 2, hidden=4, layers=3, periodic=(False, False)).eval()
        regional.load_state_dict(periodic.state_dict())
        far_edge = x.clone()
        far_edge[..., -1] += 10.0  # change the eastern column only
        # without wrapping, the western columns cannot see it (3 layers: 3 columns of reach)
        np.testing.assert_array_equal(regional(far_edge)[..., :5].numpy(), regional(x)[..., :5].numpy())
        assert not np.allclose(periodic(far_edge)[..., :1].numpy(), periodic(x)[..., :1].numpy())


def test_inputs_have_the_documented_channels():
    t, c, ny, nx = 3, 2, 8, 8
    field = np.ones((t, c, ny, nx))
    sigma = np.full((t, 4 * 2 * 2), 2.0)
    x = std_inputs(field, 2 * field, 3 * field, 0.5 * field, sigma, 4 * sigma, (4, 2, 2))
    assert x.shape == (t, 4 * c + 2 * 4, ny, nx) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 6:8], np.log(0.25), rtol=1e-6)  # log Monte-Carlo variance
    np.testing.assert_allclose(x[:, 8:12], np.log(2.0), rtol=1e-6)  # log O2Lnet variance, upsampled
    np.testing.assert_allclose(x[:, 12:], np.log(8.0), rtol=1e-6)


def test_the_fitted_model_is_calibrated_over_its_calibration_times_even_when_stopped_early():
    inputs, err2, _ = synthetic(n=30)
    # the errors of the last fifth (the validation times) are 4 times smaller: the epoch chosen there
    # can leave the whole period's variance off; the offset puts its size right
    err2 = err2.copy()
    err2[24:] /= 4.0
    area = np.linspace(0.5, 1.5, 12)
    model, report = fit_std_model(inputs, err2, area, np.array([1.0, 1.0]), (1, 3, 3), epochs=2, hidden=4, layers=2)
    assert isinstance(model.net, StdNet) and len(report["members"]) == 1
    var = model.predict(inputs).astype(np.float64) ** 2
    w = area[None, None, :, None]
    # spread/RMSE over the calibration times (area-weighted) is 1 in each channel
    np.testing.assert_allclose((var * w).sum(axis=(0, 2, 3)) / (err2 * w).sum(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    assert len(report["log_offset"]) == 2
    # a constant log variance of 0 gets log(weighted mean e^2)
    const = calibration_offset(np.zeros_like(err2), err2, area)
    np.testing.assert_allclose(np.exp(const), (err2 * w).sum(axis=(0, 2, 3)) / (w.sum() * 30 * 12), rtol=1e-10)


def test_a_saved_model_predicts_the_same(tmp_path):
    inputs, err2, _ = synthetic(n=20)
    center, scale = StdModel.centring(inputs)
    net, _ = fit_std_net((inputs - center[None, :, None, None]) / scale[None, :, None, None], err2, np.ones(12),
                         epochs=2, hidden=4, layers=2)
    model = StdModel(net, center, scale, np.array([2.0, 3.0]), (1, 3, 3), log_offset=np.array([0.3, -0.2]))
    channels = [Channel("a"), Channel("b")]
    grid = Grid(tuple(np.linspace(40, 50, 12)), tuple(np.linspace(0, 10, 12)))
    normalizer = {"anomaly_std": torch.tensor([2.0, 3.0]), "coefficients": torch.zeros(1, 2, 12, 12),
                  "n_harmonics": 0}
    save_std_model(tmp_path / "m.pt", model, channels, grid, normalizer, {"year": 2009})
    loaded, payload = load_std_model(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.predict(inputs), model.predict(inputs))
    assert loaded.log_offset.ravel().tolist() == pytest.approx([0.3, -0.2])
    assert loaded.latent_shape == (1, 3, 3) and payload["meta"]["year"] == 2009
    assert "members" not in payload["config"] and isinstance(loaded.net, StdNet)  # one network stays one


def test_unknown_uncertainty_model_is_named():
    with pytest.raises(ValueError, match="uncertainty.model is 'ensemble'"):
        UncertaintySettings(model="ensemble")
    with pytest.raises(ValueError, match="samples >= 2"):
        UncertaintySettings(samples=1)
    assert UncertaintySettings(samples=1, calibrate=False).model == "network"
    with pytest.raises(ValueError, match="uncertainty.network_members is 0"):
        UncertaintySettings(network_members=0)
    with pytest.raises(ValueError, match="uncertainty.network_ema is 1"):
        UncertaintySettings(network_ema=1.0)
    with pytest.raises(ValueError, match="uncertainty.network_precision 'half'"):
        UncertaintySettings(network_precision="half")
    network = UncertaintySettings(network_members=2, network_precision="float32").calibration()["network"]
    assert network["members"] == 2 and network["precision"] == "float32"


def test_the_background_is_drawn_where_the_draws_alone_give_the_std():
    """draw_background auto: on for model factor and for calibrate false (a channel of weight 0
    would otherwise get a std of zero), off under the std network, which reads the background
    variance itself; true and false are taken as given, and the decode params name it only when on
    (archives decoded before it existed stay up to date)."""
    drawn = {"samples": 16, "seed": 0, "draw_background": True}
    assert UncertaintySettings().sampling() == {"samples": 16, "seed": 0}
    assert UncertaintySettings(model="factor").sampling() == drawn
    assert UncertaintySettings(calibrate=False).sampling() == drawn
    assert UncertaintySettings(draw_background=True).sampling() == drawn
    assert not UncertaintySettings(model="factor", draw_background=False).draws_background
    with pytest.raises(ValueError, match="uncertainty.draw_background is 'yes': use auto, true or false"):
        UncertaintySettings(draw_background="yes")


def test_a_model_fitted_for_another_autoencoder_is_refused(tmp_path):
    from hloba.archive.year import model_std

    inputs, err2, _ = synthetic(n=10)
    center, scale = StdModel.centring(inputs)
    net, _ = fit_std_net(inputs, err2, np.ones(12), epochs=1, hidden=2, layers=1)
    grid = Grid(tuple(np.linspace(40, 50, 12)), tuple(np.linspace(0, 10, 12)))
    normalizer = {"anomaly_std": torch.tensor([2.0, 3.0]), "coefficients": torch.zeros(1, 2, 12, 12),
                  "n_harmonics": 0}
    save_std_model(tmp_path / "m.pt", StdModel(net, center, scale, np.array([2.0, 3.0]), (1, 3, 3)),
                   [Channel("a"), Channel("b")], grid, normalizer, {})
    other = {"normalizer": {**normalizer, "anomaly_std": torch.tensor([2.0, 4.0])}}
    with pytest.raises(ValueError, match="m.pt was fitted for another autoencoder.*rerun calibrate_uncertainty"):
        model_std(tmp_path / "m.pt", {}, None, other, [Channel("a"), Channel("b")])
    with pytest.raises(ValueError, match="fitted for another autoencoder"):
        model_std(tmp_path / "m.pt", {}, None, {"normalizer": normalizer}, [Channel("a"), Channel("c")])
