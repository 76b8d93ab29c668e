"""The decoded increment weighted per channel (assimilation.decoded_increment: weighted): the
least-squares weights and the weighted combination (the tuning that fits them and the stream that
uses them: tests/test_tuning.py)."""

import pytest
import torch

from hloba.assim.settings import StreamConfig
from hloba.assim.update import fit_blend_weights, fit_increment_weights
from hloba.latent import KEPT_QUANTUM, incremental_state, kept_background, quantized_kept, weighted_increment


def test_the_weights_are_the_least_squares_fit_of_the_background_error_clipped_to_0_1():
    g = torch.Generator().manual_seed(0)
    inc = torch.randn(50, 5, 6, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(50, 5, 6, 8, generator=g, dtype=torch.float64)
    noise -= (noise * inc).sum(dim=(0, 2, 3), keepdim=True) / inc.square().sum(dim=(0, 2, 3), keepdim=True) * inc
    err = torch.stack((0.3 * inc[:, 0], 0.8 * inc[:, 1], -inc[:, 2], 2.0 * inc[:, 3], torch.zeros_like(inc[:, 4])),
                      dim=1) + noise
    inc[:, 4] = 0.0
    area = torch.ones(6)
    assert fit_increment_weights(inc, err, area).tolist() == pytest.approx([0.3, 0.8, 0.0, 1.0, 1.0])
    # the area weights weigh the rows: a channel right at one latitude row only and wrong elsewhere
    inc2 = torch.ones(1, 1, 2, 1, dtype=torch.float64)
    err2 = torch.tensor([1.0, 0.0], dtype=torch.float64).reshape(1, 1, 2, 1)
    assert fit_increment_weights(inc2, err2, torch.tensor([3.0, 1.0])).item() == pytest.approx(0.75)


def test_a_weighted_increment_keeps_the_background_at_0_and_the_analysis_at_1():
    x_b, x_a = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    out = weighted_increment(x_b, x_a, torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64))
    assert out.dtype == x_a.dtype
    assert out[:, 0].eq(0).all() and out[:, 1].eq(0.25).all() and out[:, 2].eq(1).all()


def test_an_incremental_state_adds_the_weighted_decoded_increment_to_the_background():
    g = torch.Generator().manual_seed(2)
    x_b = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    d_b, d_a = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    out = incremental_state(x_b, d_b, d_a, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert out.dtype == torch.float64
    assert torch.equal(out[:, 0], x_b[:, 0])  # weight 0: the background itself, not its decoding
    assert torch.allclose(out[:, 1], x_b[:, 1] + 0.5 * (d_a - d_b)[:, 1].double())
    assert torch.allclose(out[:, 2], x_b[:, 2] + (d_a - d_b)[:, 2].double())


def test_the_blend_weights_are_the_joint_least_squares_fit_or_the_best_on_the_edges_of_0_1():
    """weighted_state: blended fits, per channel, the weight h of the autoencoder's change to the
    background and g of the decoded increment together: the joint fit inside [0, 1]^2, else the
    best point of the square's edges (not the joint fit clipped, which can be worse)."""
    g = torch.Generator().manual_seed(3)
    p = torch.randn(40, 4, 6, 8, generator=g, dtype=torch.float64)
    q = 0.6 * p + torch.randn(40, 4, 6, 8, generator=g, dtype=torch.float64)  # correlated regressors
    noise = 0.05 * torch.randn(40, 4, 6, 8, generator=g, dtype=torch.float64)
    true_h, true_g = torch.tensor([0.3, -0.8, 0.9, 0.0]), torch.tensor([0.6, 0.5, 1.6, 0.0])
    y = true_h[None, :, None, None] * p + true_g[None, :, None, None] * q + noise
    y[:, 3] = noise[:, 3]
    area = torch.linspace(0.5, 1.0, 6)
    h, w = fit_blend_weights(p, q, y, area)
    assert h[0].item() == pytest.approx(0.3, abs=0.01) and w[0].item() == pytest.approx(0.6, abs=0.01)
    assert h[3].item() == pytest.approx(0.0, abs=0.01) and w[3].item() == pytest.approx(0.0, abs=0.01)

    def loss(c, hh, gg):
        r = y[:, c] - hh * p[:, c] - gg * q[:, c]
        return float((r.square() * area[None, :, None]).sum())

    for c in (1, 2):  # outside the square: no point of it does better than the fit
        assert 0 <= h[c] <= 1 and 0 <= w[c] <= 1
        grid = torch.linspace(0, 1, 41)
        assert loss(c, h[c], w[c]) <= min(loss(c, a, b) for a in grid for b in grid) + 1e-9
    assert h[1].item() == 0.0  # h -0.8: on the edge h = 0 (g refitted there, not kept at 0.5)
    assert w[1].item() == pytest.approx(float((q[:, 1] * y[:, 1] * area[None, :, None]).sum()
                                              / (q[:, 1].square() * area[None, :, None]).sum()), rel=1e-9)


def test_a_blended_state_keeps_part_of_the_background_the_autoencoder_cannot_represent():
    """weighted_state: blended: x_b + h (D(z_b) - x_b) + g (D(z_a) - D(z_b)) is formed as the archive
    forms it, the weighted decoded increment plus the kept part (1 - h) (x_b - D(z_b))."""
    g = torch.Generator().manual_seed(4)
    x_b = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    d_b, d_a = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    w, h = torch.tensor([0.2, 0.7, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 0.25])
    kept = kept_background(x_b, d_b, h)
    assert kept.dtype == d_b.dtype and kept[:, 0].eq(0).all()  # h = 1: combined
    # on the latent file's int16 grid (KEPT_QUANTUM), so that the file holds it exactly
    assert torch.equal(quantized_kept(kept).to(kept.dtype) * KEPT_QUANTUM, kept)
    out, tol = weighted_increment(d_b, d_a, w) + kept, 0.5 * KEPT_QUANTUM + 1e-6
    assert torch.allclose(out[:, 1:2].double(), incremental_state(x_b, d_b, d_a, w)[:, 1:2], atol=tol)  # h = 0
    assert torch.allclose(out[:, 2].double(), x_b[:, 2] + 0.25 * (d_b - x_b)[:, 2] + (d_a - d_b)[:, 2], atol=tol)
    assert (out[:, 1:] - (x_b + w[None, :, None, None] * (d_a - d_b))[:, 1:]).abs().max() > 0.5  # the blend moves it
    assert quantized_kept(torch.tensor([9.0, -9.0, 1e-5])).tolist() == [32767, -32767, 0]  # clipped at 8 std


def test_a_weighted_increment_needs_the_tuning_streams():
    with pytest.raises(ValueError, match="decoded_increment 'half' is not one of"):
        StreamConfig(decoded_increment="half")
    with pytest.raises(ValueError, match="weighted_state 'both' is not one of"):
        StreamConfig(weighted_state="both")
    with pytest.raises(ValueError, match="tuning_days > 0 or decoded_increment: full"):
        StreamConfig(decoded_increment="weighted", tuning_days=0, background_variance="forecast")


def fake_weighted_passes(monkeypatch, fit, cfg: StreamConfig, whole: list[float]):
    """``hloba.assim.tuning.weighted_passes`` with fake streams, each recording the weights it used
    and whether it kept its backgrounds, and ``fit(g)`` the weights fitted to a stream that used
    ``g``; ``whole``: what the stream that took whole increments counts as having used. Returns the
    weights, the last stream, the records and the models."""
    from types import SimpleNamespace

    from hloba.assim import tuning

    runs = []

    def run_period(year, models, obs, cfg, days, run, keep_backgrounds=False, **_):
        runs.append((models.increment_weights.clone(), keep_backgrounds))
        return SimpleNamespace(used=models.increment_weights.clone())

    monkeypatch.setattr(tuning, "run_period", run_period)
    monkeypatch.setattr(tuning, "increment_weights",
                        lambda models, stream, sl, x_t, blended=False, n_bands=1: (fit(stream.used), None))
    channels = [SimpleNamespace(name=f"c{i}") for i in range(len(whole))]
    models = SimpleNamespace(increment_weights=None, channels=channels)
    used = SimpleNamespace(used=torch.tensor(whole, dtype=torch.float64))
    weights, last = tuning.weighted_passes(2009, models, [], cfg, None, slice(0, 4), None, used)
    return weights, last, runs, models


@pytest.mark.parametrize("refits", [0, 2])
def test_each_refit_fits_the_weights_to_a_stream_that_used_the_fit_before(monkeypatch, refits):
    """assimilation.increment_weight_refits: tune_stream's step 4 runs 1 + refits streams, each with
    the weights fitted to the stream before it, and keeps the last weights with the stream that
    used them; an incremental state keeps the backgrounds where a fit follows."""
    cfg = StreamConfig(decoded_increment="weighted", weighted_state="incremental", increment_weight_refits=refits)
    # a stream that took weights g makes 1 - g / 2 the best fit
    weights, last, runs, models = fake_weighted_passes(monkeypatch, lambda g: 1.0 - 0.5 * g, cfg, [1.0, 0.2])
    expected = [[0.5, 0.9], [0.75, 0.55], [0.625, 0.725]][:refits + 1]
    assert [w.tolist() for w, _ in runs] == [pytest.approx(e) for e in expected]
    assert [keep for _, keep in runs] == [True] * refits + [False]
    assert weights.tolist() == pytest.approx(expected[-1]) and last.used.tolist() == pytest.approx(expected[-1])
    assert models.increment_weights.tolist() == pytest.approx(expected[-1])
    with pytest.raises(ValueError, match="increment_weight_refits -1 must be >= 0"):
        StreamConfig(increment_weight_refits=-1)


def test_a_damped_refit_converges_where_whole_refits_alternate(monkeypatch):
    """assimilation.increment_weight_step: where the fit to a stream that used g is 0.74 - g (the
    default world's humidity: 0 -> 0.74 -> 0), whole refits alternate; half steps move halfway to
    each refit and converge to 0.37, the weight that the stream using it fits again."""
    from hloba.assim import tuning

    for step, expected in ((1.0, [0.0, 0.74, 0.0, 0.74]), (0.5, [0.0, 0.37, 0.37, 0.37])):
        cfg = StreamConfig(decoded_increment="weighted", weighted_state="combined", increment_weight_refits=3,
                           increment_weight_step=step)
        # whole increments count as 0.74 used: their fit is 0
        weights, _, runs, _ = fake_weighted_passes(monkeypatch, lambda g: 0.74 - g, cfg, [0.74])
        assert [w.item() for w, _ in runs] == pytest.approx(expected)
        assert weights.item() == pytest.approx(expected[-1])
    assert tuning.damped_weights(torch.tensor([0.2]), torch.tensor([1.0]), 0.25).item() == pytest.approx(0.4)
    assert StreamConfig(increment_weight_step=1).increment_weight_step == 1.0  # 1 and 1.0 record alike
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match=f"increment_weight_step {bad} must be in \\(0, 1\\]"):
            StreamConfig(increment_weight_step=bad)


def _weighting_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts/increment_weighting_experiment.py"
    spec = importlib.util.spec_from_file_location("increment_weighting_experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_band_weights_of_the_experiment_recover_a_known_filter():
    script = _weighting_script()
    g = torch.Generator().manual_seed(0)
    d = torch.randn(40, 2, 16, 16, generator=g, dtype=torch.float64)
    bands = script.wavenumber_bands(16, 16, 3)
    assert sorted(bands.unique().tolist()) == [0, 1, 2] and int(bands[0, 0]) == 0 and int(bands[8, 8]) == 2
    true = torch.tensor([[0.9, 0.5, 0.1], [1.0, 0.0, 0.3]], dtype=torch.float64)  # channel x band
    e = torch.fft.ifft2(torch.fft.fft2(d) * true[:, bands][None]).real
    e = e + 0.01 * torch.randn(e.shape, generator=g, dtype=torch.float64)
    filtered = script.band_weighted(d, e, bands, slice(0, 20))
    expected = torch.fft.ifft2(torch.fft.fft2(d) * true[:, bands][None]).real
    assert torch.allclose(filtered[20:], expected[20:], atol=0.01)


def test_the_later_increments_of_the_experiment_recover_known_lag_weights():
    script = _weighting_script()
    g = torch.Generator().manual_seed(1)
    inc = torch.randn(30, 2, 8, 8, generator=g, dtype=torch.float64)
    a = torch.tensor([[0.4, 0.1], [0.0, 0.7]], dtype=torch.float64)  # channel x lag (1, 2)
    e = torch.stack([a[:, 0, None, None] * inc[k + 1] + a[:, 1, None, None] * inc[k + 2] for k in range(28)])
    out = script.later_increments(inc, e, [1, 2], slice(0, 14))
    assert out.shape == (28, 2, 8, 8)
    assert torch.allclose(out, e, atol=1e-10)
