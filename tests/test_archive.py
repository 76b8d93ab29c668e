"""The reanalysis archive: CF metadata, equality with the in-cycle analysis, dask, reproducibility."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hloba.archive.year import decode_year
from hloba.models.checkpoint import load_checkpoint
from hloba.verify.archive import in_cycle_difference, uncertainty_scores


@pytest.fixture(scope="module")
def archive(tiny_models, tiny_stream, tmp_path_factory):
    out = tmp_path_factory.mktemp("archive") / "2002.nc"
    decode_year(tiny_stream["latent"], tiny_models / "results/models/autoencoder.pt", out, samples=8, seed=1,
                time_chunk=200, workers=0, progress=False)
    return out


def test_cf_metadata_and_provenance(archive):
    with xr.open_dataset(archive) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        for key in ("hloba_version", "config_sha256", "autoencoder_sha256", "o2lnet_sha256", "stream_start",
                    "spinup_days", "uncertainty_samples"):
            assert key in ds.attrs, key
        assert ds.attrs["stream_start"] == "2001-12-22 00:00:00"
        expected = {"geopotential": ("m2 s-2", "geopotential"), "temperature": ("K", "air_temperature"),
                    "u_component_of_wind": ("m s-1", "eastward_wind"), "specific_humidity": ("kg kg-1", "specific_humidity")}
        for name, (units, standard) in expected.items():
            assert ds[name].attrs["units"] == units and ds[name].attrs["standard_name"] == standard
            assert ds[name].attrs["ancillary_variables"] == f"{name}_std"
            std = ds[f"{name}_std"]
            assert std.attrs["units"] == units and std.attrs["standard_name"] == f"{standard} standard_error"
            assert std.dims == ds[name].dims and (std.values >= 0).all()
        assert ds["geopotential"].dims == ("time", "level", "latitude", "longitude")
        assert ds["level"].attrs["units"] == "hPa" and ds["latitude"].attrs["units"] == "degrees_north"
        assert ds.sizes["time"] == 365 * 4
        enc = ds["temperature"].encoding
        assert enc["zlib"] and enc["chunksizes"][0] <= 124


def test_archive_analysis_equals_the_in_cycle_analysis(tiny_models, tiny_stream, archive):
    payload = load_checkpoint(tiny_models / "results/models/autoencoder.pt", "autoencoder")
    diff = in_cycle_difference(archive, tiny_stream["feedback"], payload["normalizer"]["anomaly_std"].numpy())
    assert diff <= 1e-5


def test_uncertainty_follows_the_error(tiny_models, archive):
    scores = uncertainty_scores(archive, tiny_models / "results/reference/2002.nc")
    assert scores["spread_over_rmse"].between(0.4, 1.6).all(), scores
    assert (scores["corr_std_abs_error"] >= 0.3).all(), scores
    assert (scores["corr_monthly_std_error"] >= 0.7).all(), scores


def test_dask_workers_give_the_same_archive_and_load_the_decoder_once_each(tiny_models, tiny_stream, archive, tmp_path):
    from distributed import Client, LocalCluster

    from hloba.archive.decode import decode_latent, decoder_loads
    from hloba.runtime import file_sha256

    ae = tiny_models / "results/models/autoencoder.pt"
    with xr.open_dataset(tiny_stream["latent"]) as latent:
        latent = latent.load()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        # each worker's own count (a lambda here would carry this process's counter to the worker by value)
        before = client.run(decoder_loads)
        mean, std = decode_latent(latent, ae, file_sha256(ae), 8, 1, 200, client, progress=False)
        loads = client.run(decoder_loads)
    assert sorted(loads[w] - before[w] for w in loads) == [1, 1]  # 8 tasks, one decoder load per worker process
    # the archive was decoded in this process (one thread per chunk) with the same chunks and seed:
    # the same bits, analysis and Monte-Carlo std alike
    with xr.open_dataset(archive) as ds:
        np.testing.assert_array_equal(ds["temperature"].values, mean[:, 6])
        np.testing.assert_array_equal(ds["temperature_std"].values, std[:, 6])
        np.testing.assert_array_equal(ds["geopotential_std"].values, std[:, :2])


def test_written_twice_is_identical_and_years_open_as_one_archive(tiny_models, tiny_stream, archive, tmp_path):
    ae = tiny_models / "results/models/autoencoder.pt"
    again = tmp_path / "2002.nc"
    decode_year(tiny_stream["latent"], ae, again, samples=8, seed=1, time_chunk=200, workers=0, progress=False)
    assert again.read_bytes() == archive.read_bytes()
    # a second year: the same analyses a year later
    with xr.open_dataset(tiny_stream["latent"]) as latent:
        shifted = latent.load().assign_coords(time=latent.time + pd.Timedelta(days=365))
    shifted.to_netcdf(tmp_path / "latent2003.nc")
    decode_year(tmp_path / "latent2003.nc", ae, tmp_path / "2003.nc", samples=2, seed=1, time_chunk=200, workers=0,
                progress=False)
    with xr.open_mfdataset(str(tmp_path / "*.nc"), combine="by_coords", join="outer") as ds:
        assert ds.sizes["time"] == 2 * 365 * 4
        assert pd.DatetimeIndex(ds.time.values).year.unique().tolist() == [2002, 2003]
        assert "temperature_std" in ds


def test_stale_partial_files_are_cleaned_and_never_reach_the_final_path(tmp_path):
    from hloba.io import atomic_path

    stale = tmp_path / ".2002.nc.abc.part"
    stale.write_bytes(b"half")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "2002.nc") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not (tmp_path / "2002.nc").exists() and not list(tmp_path.glob(".*.part"))
