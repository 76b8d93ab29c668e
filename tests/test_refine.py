"""O2Lnet refined through HLOBA's update (o2lnet.refine, rule refine_o2lnet): the recorded cycles,
the differentiable analysis against the stream's own, the fine-tuning and its settings."""

import contextlib
from dataclasses import replace

import pytest
import torch
from conftest import tiny_inputs, tiny_settings

from hloba.assim.methods.hloba import o2lnet_slots
from hloba.assim.models import method_models
from hloba.assim.refine import (
    UpdateAnalysis, analysis_scores, cycle_recorder, record_stream, refine_o2lnet, refine_o2lnet_file,
)
from hloba.assim.settings import RefineSettings, RunSettings, check_refine
from hloba.assim.tuning import tune_stream_file
from hloba.assim.year import run_period
from hloba.config import stream_years

YEAR = 2002  # the tiny configuration's calibration year
DAYS = 8


@pytest.fixture(scope="module")
def tuned(tiny_models, tmp_path_factory):
    """The tiny stream's models with a tuning of config.yaml's analysis (cycling variance, blended
    weights per band, without the smoother: the refinement learns from the filter's cycles), its
    settings and its inputs."""
    cfg, run = tiny_settings(tiny_models, background_variance="cycling", decoded_increment="weighted",
                             tuning_days=DAYS, smoother_hours=None)
    assert cfg.weighted_state == "blended" and cfg.update == "posterior"  # config.yaml's analysis
    inputs = tiny_inputs(tiny_models, stream_years(YEAR, cfg.spinup_days, [2001, 2002]), tuning=False)
    path = tmp_path_factory.mktemp("refine") / "tuning.nc"
    tune_stream_file(YEAR, inputs, [tiny_models / f"results/reference/{YEAR}.nc"], path, cfg, run)
    inputs = replace(inputs, tuning=str(path))
    return method_models(cfg, inputs, "cpu"), cfg, inputs


def test_the_update_analysis_is_the_streams_analysis(tuned):
    models, cfg, inputs = tuned
    records = []
    result = run_period(YEAR, models, inputs.observations, cfg, DAYS, RunSettings(progress=False),
                        keep_analyses=True, recorder=cycle_recorder(records, models.normalizer))
    year_cycles = result.times[result.first:result.stop]
    kept = [r for r in records if r.time.year == YEAR]
    assert len(kept) == len(year_cycles) == 4 * DAYS  # every cycle of the year had observations
    index = {t: i for i, t in enumerate(result.times)}
    rows = torch.as_tensor([index[r.time] for r in kept])
    blend = UpdateAnalysis(models, len(o2lnet_slots(models)))
    z_o, so2 = result.fields["z_o"][rows].float(), result.fields["sigma_o2"][rows].float()
    stream = models.normalizer.standardize(result.analyses.double(), year_cycles).float()
    with torch.no_grad():
        x_a = blend.analysis(kept, z_o, so2)
        # with the estimate equal to the background the analysis keeps h of the autoencoder's change
        x_0 = blend.analysis(kept, torch.cat([r.z_b for r in kept]), so2)
    x_b = torch.cat([r.x_b for r in kept])
    # the same to the autoencoder's bfloat16 rounding (on AMX) and the float32 update
    assert (x_a - stream).abs().mean() < 3e-4 and (x_a - stream).abs().max() < 1e-2, float((x_a - stream).abs().mean())
    assert (x_a - x_b).abs().mean() > 50 * (x_a - stream).abs().mean()  # an analysis, not the background
    assert (x_0 - stream).abs().mean() > 10 * (x_a - stream).abs().mean()


def test_refining_fits_the_recorded_analyses_and_keeps_the_network_when_it_does_not(tuned, tiny_models):
    models, cfg, inputs = tuned
    records = record_stream(YEAR, models, inputs.observations, cfg, DAYS, [tiny_models / f"results/reference/{YEAR}.nc"])
    assert all(r.x_t is not None and r.z_t.shape == r.z_b.shape[1:] for r in records)
    blend = UpdateAnalysis(models, len(o2lnet_slots(models)))
    # refine.min_keep: the windows thinned by grid cell, whole cells kept or dropped
    full = blend.render(records[:4])
    thin = blend.render(records[:4], 0.5, torch.Generator().manual_seed(0))
    half = full.shape[1] // 2  # the masks
    seen, kept = full[:, half:] > 0, thin[:, half:] > 0
    assert kept.sum() < 0.9 * seen.sum() and not (kept & ~seen).any()
    assert torch.equal(thin[:, :half][kept], full[:, :half][kept])  # a kept cell keeps its value
    assert torch.equal(blend.render(records[:4], 1.0, torch.Generator().manual_seed(0)), full)
    net, amp = models.o2lnet, contextlib.nullcontext()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rmse0, corr0 = analysis_scores(net, blend, records, amp)
    settings = RefineSettings(enabled=True, years=(YEAR,), epochs=3, batch_size=8, learning_rate=1e-3)
    state, report = refine_o2lnet(net, blend, records, records, settings, amp)
    assert report["kept_epoch"] >= 1 and len(report["epochs"]) == 3
    assert report["analysis_rmse_before"] == pytest.approx(list(rmse0), rel=1e-6)
    assert sum(report["analysis_rmse_after"]) < 0.97 * sum(report["analysis_rmse_before"])
    assert any(not torch.equal(state[k], before[k]) for k in before)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # a copy was refined
    # a step that ruins the network: no epoch beats it, and it comes back unchanged
    state, report = refine_o2lnet(net, blend, records, records, replace(settings, epochs=1, learning_rate=50.0), amp)
    assert report["kept_epoch"] == 0 and report["analysis_rmse_after"] == report["analysis_rmse_before"]
    assert all(torch.equal(state[k], before[k]) for k in before)


def test_refine_settings_and_what_they_need(tiny_models):
    cfg, _ = tiny_settings(tiny_models, decoded_increment="weighted")
    assert RefineSettings.from_dict(None).enabled is False
    settings = RefineSettings.from_dict({"enabled": True, "years": [2001], "epochs": 2})
    assert settings.years == (2001,) and settings.to_dict()["years"] == [2001]
    check_refine(settings, cfg, [2001, 2002])
    check_refine(replace(settings, years=(1999,), enabled=False), cfg.with_(decoded_increment="full"), [2001])
    with pytest.raises(ValueError, match="o2lnet.refine.years is empty"):
        RefineSettings(enabled=True)
    with pytest.raises(ValueError, match="o2lnet.refine.epochs=0 must be > 0"):
        RefineSettings(epochs=0)
    with pytest.raises(ValueError, match="nll_weight=-1"):
        RefineSettings(nll_weight=-1)
    with pytest.raises(ValueError, match=r"min_keep=0 must be in \(0, 1\]"):
        RefineSettings(min_keep=0)
    with pytest.raises(ValueError, match=r"years \[1999\] are not among"):
        check_refine(replace(settings, years=(1999, 2001)), cfg, [2001, 2002])
    with pytest.raises(ValueError, match="decoded_increment: weighted, weighted_state: blended"):
        check_refine(settings, cfg.with_(decoded_increment="full"), [2001, 2002])
    with pytest.raises(ValueError, match="update: posterior"):
        check_refine(settings, cfg.with_(update="likelihood"), [2001, 2002])


def test_scripts_give_the_unrefined_variant_the_trained_network_and_its_tuning(tuned, tmp_path):
    from hloba.verify.settings import variant_inputs

    _, cfg, inputs = tuned
    results = tmp_path / "results"
    assert variant_inputs(results, "hloba_unrefined", inputs, cfg) == inputs  # refinement off: HLOBA itself
    (results / "models").mkdir(parents=True)
    (results / "models" / "o2lnet_base.pt").write_bytes(b"")
    unrefined = variant_inputs(results, "hloba_unrefined", inputs, cfg)
    assert unrefined.o2lnet == str(results / "models" / "o2lnet_base.pt")
    assert unrefined.tuning == str(results / "ensemble" / "stream_tuning_base.nc")
    assert variant_inputs(results, "hloba", inputs, cfg) == inputs
    other = variant_inputs(results, "hloba_norotation", inputs, cfg)  # a tuned setting changed: its own tuning
    assert other.tuning == str(results / "comparison" / "tuning" / "hloba_norotation.nc") and other.o2lnet == inputs.o2lnet


def test_a_second_round_starts_from_the_first_rounds_network_and_keeps_its_report(tuned, tiny_models, tmp_path):
    _, cfg, inputs = tuned
    settings = RefineSettings(enabled=True, years=(YEAR,), days=DAYS, epochs=1, batch_size=8, learning_rate=1e-3)
    references = [tiny_models / f"results/reference/{YEAR}.nc"]
    run = RunSettings(progress=False)
    first = refine_o2lnet_file(settings, YEAR, inputs, references, tmp_path / "r1.pt", tmp_path / "r1.json", cfg, run)
    # round 2 reads round 1's network (its tuning kept here: the test is about the files)
    second = refine_o2lnet_file(settings, YEAR, replace(inputs, o2lnet=str(tmp_path / "r1.pt")), references,
                                tmp_path / "r2.pt", tmp_path / "r2.json", cfg, run, round_index=2)
    assert first["round"] == 1 and second["round"] == 2 and first["kept_epoch"] == 1
    # round 2 records the streams again, with round 1's network: other backgrounds, another "before"
    assert second["analysis_rmse_before"] != pytest.approx(first["analysis_rmse_before"], rel=1e-3)
    meta = torch.load(tmp_path / "r2.pt", map_location="cpu", weights_only=True)["meta"]
    assert meta["refine"]["round"] == 2 and [r["round"] for r in meta["refine_history"]] == [1]
    assert "refine_history" not in torch.load(tmp_path / "r1.pt", map_location="cpu", weights_only=True)["meta"]
    with pytest.raises(ValueError, match="the refinement round 0 must be 1 or more"):
        refine_o2lnet_file(settings, YEAR, inputs, references, tmp_path / "r0.pt", tmp_path / "r0.json", cfg, run,
                           round_index=0)
    assert not (tmp_path / "r0.pt").exists()
