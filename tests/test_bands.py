"""Octave bands of a field's scales (hloba.bands) and the decoded increment weighted per band."""

import math

import numpy as np
import pytest
import torch

from hloba.assim.settings import StreamConfig
from hloba.assim.update import fit_blend_weights, fit_by_band, fit_increment_weights
from hloba.bands import band_edges, band_index, band_parts, band_weighted
from hloba.latent import (KEPT_QUANTUM, WEIGHTS, decoded_analysis, incremental_state, kept_background, latent_dataset,
                          weighted_increment)


def cosine_mode(n: int, ky: int, kx: int) -> torch.Tensor:
    """A mode of the cosine transform: ``2 n / k`` grid lengths along each axis where ``k > 0``."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    return torch.cos(math.pi * ky * i / n)[:, None] * torch.cos(math.pi * kx * i / n)[None, :]


def test_the_octave_edges_halve_from_the_longest_to_four_grid_lengths():
    assert band_edges(1) == ()
    assert band_edges(2) == (4.0,)
    assert band_edges(5) == (32.0, 16.0, 8.0, 4.0)
    with pytest.raises(ValueError, match="at least one band"):
        band_edges(0)
    index = band_index(64, 64, 5)
    assert index.shape == (64, 64) and int(index[0, 0]) == 0 and int(index.max()) == 4
    assert [int((index == b).sum()) for b in range(5)] == [17, 41, 158, 619, 3261]


@pytest.mark.parametrize(("k", "band"), [(1, 0), (3, 0), (5, 1), (7, 1), (9, 2), (15, 2), (17, 3), (31, 3), (33, 4),
                                         (63, 4)])
def test_a_wave_lies_in_the_band_of_its_wavelength(k, band):
    """On 64 x 64 points the cosine mode ``k`` has a wavelength of ``128 / k`` grid lengths: 64-25.6
    in band 0 (longer than 32), 25.6-18.3 in band 1, 14.2-8.5 in band 2, 7.5-4.1 in band 3, shorter in
    band 4; along one axis or both (``k`` along y and x: ``128 / (k sqrt 2)``, one band further
    where that crosses an edge)."""
    x = cosine_mode(64, 0, k)[None, None]
    parts = band_parts(x, 5)
    assert float((parts[band] - x).abs().max()) < 1e-10
    assert float(parts.abs().sum(dim=(1, 2, 3, 4))[[b for b in range(5) if b != band]].max()) < 1e-9
    both = cosine_mode(64, k, k)[None, None]
    expected = int((band_index(64, 64, 5)[k, k]))  # sqrt(2) k: the band of the mode's own frequency
    assert float((band_parts(both, 5)[expected] - both).abs().max()) < 1e-10


def test_the_bands_add_up_to_the_field_on_any_grid():
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 64, 64), (1, 2, 11, 13), (1, 1, 33, 20)):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        parts = band_parts(x, 5)
        assert parts.shape == (5, *shape)
        assert float((parts.sum(0) - x).abs().max()) < 1e-12
        # the parts are orthogonal: the field's energy is the sum of theirs
        assert float(parts.square().sum()) == pytest.approx(float(x.square().sum()), rel=1e-12)
        assert float((parts[0] * parts[1:]).sum()) == pytest.approx(0.0, abs=1e-9)


def reflected_band_weighted(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The definition: ``x`` continued by reflection across both edges, each Fourier mode of that
    scaled by the weight of its wavelength's band, cropped back (an FFT of four times the points)."""
    ny, nx = x.shape[-2:]
    edges = band_edges(w.shape[-1])
    fy = torch.fft.fftfreq(2 * ny, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(2 * nx, dtype=torch.float64)[None, :]
    f = (fy.square() + fx.square()).sqrt()
    index = sum((f * e > 1.0 + 1e-9).long() for e in edges)
    r = torch.cat((x, x.flip(-2)), dim=-2)
    spectrum = torch.fft.rfft2(torch.cat((r, r.flip(-1)), dim=-1)) * w[:, index]
    return torch.fft.irfft2(spectrum, s=(2 * ny, 2 * nx))[..., :ny, :nx]


def test_the_cosine_transform_weighs_the_reflected_fields_fourier_modes():
    g = torch.Generator().manual_seed(3)
    for shape in ((2, 8, 64, 64), (1, 3, 11, 13), (1, 2, 33, 20)):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        w = torch.rand(shape[1], 5, generator=g, dtype=torch.float64)
        assert float((band_weighted(x, w) - reflected_band_weighted(x, w)).abs().max()) < 1e-12
        assert float((band_weighted(x.float(), w) - reflected_band_weighted(x, w)).abs().max()) < 1e-5


def test_band_weights_scale_each_band_of_each_channel():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 32, 32, generator=g, dtype=torch.float64)
    w = torch.rand(4, 5, generator=g, dtype=torch.float64)
    expected = (w.T[:, None, :, None, None] * band_parts(x, 5)).sum(0)
    assert float((band_weighted(x, w) - expected).abs().max()) < 1e-12
    # equal weights in every band are one weight per channel, as a (C,) weight applies it
    same = w[:, :1].expand(4, 5)
    assert float((band_weighted(x, same) - band_weighted(x, w[:, 0])).abs().max()) < 1e-12
    assert torch.equal(band_weighted(x, w[:, 0]), x * w[:, 0][None, :, None, None])
    assert band_weighted(x.float(), w).dtype == torch.float32


def test_the_fit_by_band_recovers_known_weights_per_band():
    """A truth made of the background plus a known share of each band of the increment (and of the
    autoencoder's change): the fit per band returns the shares, one band the plain fit."""
    g = torch.Generator().manual_seed(2)
    inc = torch.randn(20, 3, 32, 32, generator=g, dtype=torch.float64)
    proj = torch.randn(20, 3, 32, 32, generator=g, dtype=torch.float64)
    share = torch.tensor([[1.0, 0.7, 0.4, 0.1], [0.5, 0.5, 0.5, 0.5], [0.0, 0.2, 0.9, 0.3]], dtype=torch.float64)
    h = torch.tensor([[0.9, 0.6, 0.2, 0.0], [0.3, 0.3, 0.3, 0.3], [1.0, 0.0, 0.5, 0.8]], dtype=torch.float64)
    area = torch.linspace(0.8, 1.2, 32, dtype=torch.float64)
    error = band_weighted(inc, share)
    fitted = fit_by_band(fit_increment_weights, (inc, error), area, 4)
    assert fitted.shape == (3, 4)
    np.testing.assert_allclose(fitted, share, atol=1e-6)
    h_fit, g_fit = fit_by_band(fit_blend_weights, (proj, inc, error + band_weighted(proj, h)), area, 4)
    np.testing.assert_allclose(g_fit, share, atol=1e-6)
    np.testing.assert_allclose(h_fit, h, atol=1e-6)
    one = fit_by_band(fit_increment_weights, (inc, error), area, 1)
    assert torch.equal(one, fit_increment_weights(inc, error, area))


def test_a_state_weighted_per_band_is_what_the_latent_file_decodes_to():
    """incremental_state, kept_background and weighted_increment take (C, B) weights; the latent
    file stores them as (channel, band) and decodes its analysis with them."""
    g = torch.Generator().manual_seed(3)
    x_b, d_b, d_a = (torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(3))
    w = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2], [0.0, 1.0, 0.3]], dtype=torch.float64)
    state = incremental_state(x_b, d_b, d_a, w)
    assert float((state - x_b - band_weighted(d_a - d_b, w)).abs().max()) < 1e-12
    row = w[1:2].expand(3, 3)  # equal per band: the per-channel form
    assert float((incremental_state(x_b, d_b, d_a, row) - incremental_state(x_b, d_b, d_a, w[1, :1].expand(3))
                  ).abs().max()) < 1e-12
    kept = kept_background(x_b.float(), d_b.float(), w)
    expected = band_weighted((x_b - d_b).float(), 1 - w)
    assert float((kept - expected).abs().max()) <= KEPT_QUANTUM / 2 + 1e-6
    latent = latent_dataset({"z_a": np.zeros((2, 4)), "z_b": np.zeros((2, 4))}, ["2001-01-01", "2001-01-01T06"],
                            increment_weights={c: w[i].tolist() for i, c in enumerate("abc")})
    assert latent[WEIGHTS].dims == ("channel", "band") and latent[WEIGHTS].shape == (3, 3)
    analysis = decoded_analysis(d_a, d_b, latent[WEIGHTS].values)
    assert float((analysis - weighted_increment(d_b, d_a, w)).abs().max()) < 1e-12


@pytest.mark.parametrize("bad", [0, 9, 2.5, True, "5"])
def test_the_number_of_bands_is_a_whole_number_from_1_to_8(bad):
    with pytest.raises(ValueError, match="increment_bands"):
        StreamConfig(increment_bands=bad)
    assert StreamConfig(increment_bands=5).increment_bands == 5
