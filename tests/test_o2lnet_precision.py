"""O2Lnet's pass in the stream in bfloat16 or float32 (``assimilation.o2lnet_precision``): the
setting, what ``auto`` picks, and a bfloat16 stream close to the float32 one and repeatable bit for bit."""

import pytest
import torch

from hloba.assim.models import method_models
from hloba.assim.settings import RunSettings, StreamConfig
from hloba.assim.year import run_period, stream_fingerprint, stream_latent_dataset
from hloba.models.autoencoder import AutoencoderConfig
from hloba.models.o2lnet import O2Lnet, O2LnetConfig, inference_pass
from hloba.models.training import native_bfloat16

RUN = RunSettings(device="cpu", progress=False)
CFG = StreamConfig(method="hloba", spinup_days=2, max_rejected_fraction=1.0, inflation_groups=8)


@pytest.fixture(scope="module")
def inputs(stream_factory):
    return stream_factory[0]


def test_the_setting_is_checked_and_auto_follows_the_hardware(inputs):
    with pytest.raises(ValueError, match="assimilation.o2lnet_precision 'half' must be one of auto, float32, bfloat16"):
        StreamConfig(o2lnet_precision="half")
    assert StreamConfig().o2lnet_precision == "auto"
    expected = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                "auto": torch.bfloat16 if native_bfloat16(torch.device("cpu")) else torch.float32}
    for setting, dtype in expected.items():
        assert method_models(CFG.with_(o2lnet_precision=setting), inputs, "cpu").o2lnet_dtype == dtype


def test_bfloat16_asked_for_where_it_is_emulated_is_warned_about(inputs, monkeypatch, caplog):
    import hloba.models.training as training

    monkeypatch.setattr(training, "native_bfloat16", lambda device: False)
    with caplog.at_level("WARNING", logger="hloba.models.training"):
        assert method_models(CFG.with_(o2lnet_precision="auto"), inputs, "cpu").o2lnet_dtype == torch.float32
        assert not caplog.records
        assert method_models(CFG.with_(o2lnet_precision="bfloat16"), inputs, "cpu").o2lnet_dtype == torch.bfloat16
    assert "assimilation.o2lnet_precision: bfloat16 on cpu is emulated" in caplog.text


def test_the_bfloat16_pass_is_autocast_with_the_weights_converted_once():
    torch.manual_seed(0)
    ae = AutoencoderConfig(channels=3, ny=16, nx=16, latent_channels=2, patch=4, width=8, blocks=1)
    net = O2Lnet(O2LnetConfig(autoencoder=ae.to_dict(), width=16, blocks=2)).eval()
    rendered = torch.randn(2, 6, 16, 16) * (torch.rand(2, 6, 16, 16) < 0.2)
    assert inference_pass(net, torch.float32) is net
    estimate = inference_pass(net, torch.bfloat16)
    with torch.no_grad():
        z, logvar = estimate(rendered)
        full = net(rendered)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = net(rendered)
    assert z.dtype == logvar.dtype == torch.float32 and z.shape == full[0].shape
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the network itself is left alone
    for ours, theirs, exact in zip((z, logvar), autocast, full):
        # autocast's heads run in bfloat16 too, ours in float32: both within bfloat16's rounding of float32
        torch.testing.assert_close(ours, theirs, rtol=0.02, atol=0.02)
        assert 0 < (ours - exact).norm() / exact.norm() < 0.02


def _stream(inputs, precision):
    # the autoencoder in float32: O2Lnet's precision alone differs between the streams
    cfg = CFG.with_(o2lnet_precision=precision, autoencoder_precision="float32")
    models = method_models(cfg, inputs, RUN.device)
    return run_period(2002, models, inputs.observations, cfg, 2, RUN), models, cfg


def test_a_bfloat16_pass_repeats_bit_for_bit_and_stays_close_to_float32(inputs):
    full, _, _ = _stream(inputs, "float32")
    half, models, cfg = _stream(inputs, "bfloat16")
    again, _, _ = _stream(inputs, "bfloat16")
    first, stop = full.first, full.stop
    for name in ("z_o", "sigma_o2", "z_a"):
        assert half.fields[name].dtype == full.fields[name].dtype == torch.float32
        torch.testing.assert_close(again.fields[name][:stop], half.fields[name][:stop], rtol=0, atol=0)
    z_full, z_half = full.fields["z_o"][first:stop], half.fields["z_o"][first:stop]
    assert torch.isfinite(z_half).all() and not torch.equal(z_half, z_full)  # the pass did run in bfloat16
    relative = (z_half - z_full).norm() / z_full.norm()
    assert 0 < relative < 0.01, relative  # bfloat16 keeps 8 bits of mantissa (0.27 % here)
    # the cycling analysis moves by less than the estimate does
    z_a_full, z_a_half = full.fields["z_a"][first:stop], half.fields["z_a"][first:stop]
    assert (z_a_half - z_a_full).norm() / z_a_full.norm() < relative
    attrs = stream_latent_dataset(half, 2002, cfg, models, {}).attrs
    assert attrs["o2lnet_precision"] == "bfloat16"


def test_a_checkpoint_resumes_only_under_the_precision_it_was_written_with(inputs):
    # "auto" resolves per machine: a checkpoint of a bfloat16 stream is not continued in float32
    models = method_models(CFG, inputs, "cpu")
    auto = stream_fingerprint(2002, CFG, inputs, models)
    assert stream_fingerprint(2002, CFG, inputs, models) == auto
    models.o2lnet_dtype = torch.float32 if models.o2lnet_dtype == torch.bfloat16 else torch.bfloat16
    assert stream_fingerprint(2002, CFG, inputs, models) != auto
