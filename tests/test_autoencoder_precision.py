"""The autoencoder's passes without gradients in bfloat16 or float32 (``assimilation.autoencoder_precision``):
the setting, the network left alone, gradients in float32, the latent file's record of it, and the
archive decoding a stream's latent record to the states the stream cycled from."""

import numpy as np
import pytest
import torch

from hloba.archive.decode import decode_latent
from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.year import run_period, stream_fingerprint, stream_latent_dataset
from hloba.latent import AUTOENCODER_PRECISION, LatentFileError, latent_precision
from hloba.models.autoencoder import Autoencoder, AutoencoderConfig
from hloba.models.training import native_bfloat16

RUN = RunSettings(device="cpu", progress=False)
CFG = StreamConfig(method="hloba", spinup_days=2, max_rejected_fraction=1.0, inflation_groups=8)
NATIVE = native_bfloat16(torch.device("cpu"))


@pytest.fixture(scope="module")
def inputs(stream_factory):
    return stream_factory[0]


def small_autoencoder() -> Autoencoder:
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(channels=3, ny=16, nx=16, latent_channels=2, patch=4, width=16, blocks=1,
                                       periodic_lon=True)).eval()
    for p in ae.parameters():  # the residual blocks start as the identity: make them do something
        p.data += 0.05 * torch.randn_like(p)
    return ae


def test_the_setting_is_checked_and_auto_follows_the_hardware(inputs):
    with pytest.raises(ValueError, match="assimilation.autoencoder_precision 'half' must be one of auto"):
        StreamConfig(autoencoder_precision="half")
    assert StreamConfig().autoencoder_precision == "auto"
    expected = {"float32": "float32", "bfloat16": "bfloat16", "auto": "bfloat16" if NATIVE else "float32"}
    for setting, name in expected.items():
        models = method_models(CFG.with_(autoencoder_precision=setting), inputs, "cpu")
        assert models.autoencoder_precision == name
        assert models.autoencoder.inference_dtype == getattr(torch, name)


def test_bfloat16_passes_leave_the_network_and_its_gradients_in_float32():
    ae = small_autoencoder()
    keys = set(ae.state_dict())
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        z32, x32 = ae.encode(x), ae.decode(torch.randn(4, ae.cfg.n_latent, generator=torch.Generator().manual_seed(1)))
    assert ae.set_inference_precision(torch.bfloat16) is ae and ae.inference_dtype == torch.bfloat16
    assert set(ae.state_dict()) == keys and all(p.dtype == torch.float32 for p in ae.parameters())
    with torch.no_grad():
        z16, x16 = ae.encode(x), ae.decode(torch.randn(4, ae.cfg.n_latent, generator=torch.Generator().manual_seed(1)))
    for low, full in ((z16, z32), (x16, x32)):
        assert low.dtype == torch.float32 and low.shape == full.shape and low.is_contiguous()
        assert 0 < float((low - full).norm() / full.norm()) < 0.02  # bfloat16's 8 bits of mantissa
    # with gradients (training, latent 3D/4D-Var) the passes are the float32 network's, to the bit
    z = torch.randn(2, ae.cfg.n_latent, requires_grad=True)
    out = ae.decode(z)
    out.square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    ae.set_inference_precision(torch.float32)
    assert ae.inference_dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(ae.decode(z.detach()), out.detach()) and torch.equal(ae.encode(x), z32)


@pytest.mark.skipif(not NATIVE, reason="bfloat16 is emulated on this CPU: no claim on its bits")
def test_a_samples_bfloat16_pass_has_the_same_bits_in_any_batch_and_thread_count():
    ae = small_autoencoder().set_inference_precision(torch.bfloat16)
    z = torch.randn(6, ae.cfg.n_latent, generator=torch.Generator().manual_seed(2))
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    threads = torch.get_num_threads()
    with torch.no_grad():
        batch_d, batch_e = ae.decode(z), ae.encode(x)
        try:
            torch.set_num_threads(1)
            for i in range(6):
                assert torch.equal(ae.decode(z[i:i + 1]), batch_d[i:i + 1])
                assert torch.equal(ae.encode(x[i:i + 1]), batch_e[i:i + 1])
        finally:
            torch.set_num_threads(threads)


def test_the_latent_file_says_how_to_decode_it():
    import xarray as xr

    assert latent_precision(xr.Dataset()) == torch.float32  # files written before it was recorded
    assert latent_precision(xr.Dataset(attrs={AUTOENCODER_PRECISION: "bfloat16"})) == torch.bfloat16
    with pytest.raises(LatentFileError, match="autoencoder_precision='float16' is neither"):
        latent_precision(xr.Dataset(attrs={AUTOENCODER_PRECISION: "float16"}))


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_the_archive_decodes_the_states_the_stream_cycled_from(inputs, precision):
    """A stream with the autoencoder in ``precision``: its latent file records it, and the archive's
    decoding of the file gives the stream's own analyses; decoded in the other precision it does not."""
    cfg = CFG.with_(autoencoder_precision=precision, decoded_increment="full")
    models = method_models(cfg, inputs, RUN.device)
    result = run_period(2002, models, inputs.observations, cfg, 2, RUN, keep_analyses=True)
    latent = stream_latent_dataset(result, 2002, cfg, models, {})
    assert latent.attrs[AUTOENCODER_PRECISION] == precision
    first, stop = result.first, result.stop
    latent = latent.isel(time=slice(0, stop - first))
    times = result.times[first:stop]
    norm = models.normalizer
    cycled = norm.standardize(result.analyses.double(), times)
    mean, _ = decode_latent(latent, inputs.autoencoder, "", 0, 0, 3, progress=False)
    archive = norm.standardize(torch.as_tensor(mean), times)
    exact = NATIVE or precision == "float32"
    assert float((archive - cycled).abs().max()) < (1e-4 if exact else 2e-2)
    other = "float32" if precision == "bfloat16" else "bfloat16"
    mean_other, _ = decode_latent(latent.assign_attrs({AUTOENCODER_PRECISION: other}), inputs.autoencoder, "", 0, 0,
                                  3, progress=False)
    apart = float((norm.standardize(torch.as_tensor(mean_other), times) - cycled).abs().max())
    assert 1e-4 < apart < 0.1
    assert np.isfinite(mean).all()
    # "auto" resolves per machine: a checkpoint of this stream is not resumed under the other precision
    before = stream_fingerprint(2002, cfg, inputs, models)
    models.autoencoder.set_inference_precision(getattr(torch, other))
    assert stream_fingerprint(2002, cfg, inputs, models) != before
