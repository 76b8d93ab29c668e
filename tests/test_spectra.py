"""Errors split by scale (hloba.verify.spectra): the bands' squares add up to the total."""

import numpy as np
import pytest

from hloba.verify.spectra import band_index, band_labels, band_rmse, total_wavenumber


def test_a_wave_lands_in_its_band_and_the_bands_add_up_to_the_total():
    ny, nx = 32, 48
    y, x = np.meshgrid(np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
    wave3 = 2.0 * np.cos(2 * np.pi * 3 * x)  # total wavenumber 3: RMS 2 / sqrt(2)
    wave10 = 0.5 * np.sin(2 * np.pi * (6 * y + 8 * x))  # total wavenumber 10: RMS 0.5 / sqrt(2)
    field = np.stack([wave3 + wave10 + 0.25, wave3 + wave10 + 0.25])  # two "times", a mean of 0.25
    bands = band_rmse(field, [2, 4, 8, 16])
    assert bands == pytest.approx([0.25, 2 / np.sqrt(2), 0.0, 0.5 / np.sqrt(2), 0.0], abs=1e-12)
    noise = np.random.default_rng(0).normal(size=(5, ny, nx))
    assert np.sqrt((band_rmse(noise, [1.5, 3, 12]) ** 2).sum()) == pytest.approx(np.sqrt((noise ** 2).mean()))
    assert band_labels([2, 4, 8, 16]) == ["k<2", "2-4", "4-8", "8-16", "k>=16"]


def test_band_edges_must_increase():
    k = total_wavenumber(8, 8)
    assert k[0, 0] == 0 and k[0, 3] == 3 and k[4, 3] == 5 and k[-1, 0] == 1
    assert band_index(np.array([0.0, 1.99, 2.0, 7.0, 40.0]), [2, 4, 8]).tolist() == [0, 0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"band edges \[4.0, 2.0\] must be increasing"):
        band_rmse(np.zeros((8, 8)), [4, 2])


def test_error_spectrum_splits_each_compared_run_of_the_tiny_pipeline(repo, tiny_pipeline):
    """scripts/error_spectrum.py on the tiny pipeline's comparison: every (channel, method) row's
    bands add up to its total, and the total is the run's RMSE against the reference."""
    import importlib.util

    import xarray as xr

    spec = importlib.util.spec_from_file_location("error_spectrum", repo / "scripts/error_spectrum.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = tiny_pipeline / "results"
    table = script.method_bands(results, ["hloba", "l4dvar"], [2, 4, 8])
    assert list(table.columns) == ["k<2", "2-4", "4-8", "k>=8", "total"]
    assert len(table) == 2 * 8 and (table["total"] > 0).all()
    np.testing.assert_allclose(np.sqrt((table.drop(columns="total") ** 2).sum(axis=1)), table["total"], rtol=1e-9)
    with xr.open_dataset(results / "comparison/runs/hloba.nc") as run:
        analysis = run.analysis.sel(channel="temperature").load()
    with xr.open_dataset(results / "reference/2002.nc") as ref:
        truth = ref.temperature.sel(time=analysis.time).values
    assert table.loc[("temperature", "hloba"), "total"] == pytest.approx(np.sqrt(((analysis.values - truth) ** 2).mean()))
