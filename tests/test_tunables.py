"""Choosing a baseline's tunables on the calibration year (scripts/sweep_b_scale.py), and a change's
effect on the scores of two pipeline runs (scripts/score_changes.py)."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from hloba.verify.tunables import choose_setting


def _script(repo, name: str):
    """A module of ``scripts/`` loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, repo / f"scripts/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(rows):
    return pd.DataFrame(rows, columns=["label", "mean_rmse", "cost"]).set_index("label")


def test_the_cheapest_setting_within_the_tolerance_of_the_best():
    table = _table([("cap 50", 0.400, 50.0), ("cap 25", 0.403, 25.0), ("cap 10", 0.450, 10.0)])
    assert choose_setting(table, 0.0, cost="cost") == "cap 50"
    assert choose_setting(table, 0.005, cost="cost") == "cap 50"  # cap 25 is 0.75 % worse
    assert choose_setting(table, 0.01, cost="cost") == "cap 25"
    assert choose_setting(table, 0.2, cost="cost") == "cap 10"
    # equal skill: the cheaper one, whatever the order of the rows
    tie = _table([("a", 0.4, 30.0), ("b", 0.4, 20.0)])
    assert choose_setting(tie, 0.0, cost="cost") == "b"


def test_a_sweep_table_without_its_columns_or_rows_is_an_error():
    with pytest.raises(ValueError, match="no column 'analysis_ms_per_cycle'"):
        choose_setting(_table([("a", 0.4, 1.0)]))
    with pytest.raises(ValueError, match="ran nothing"):
        choose_setting(_table([]), cost="cost")
    with pytest.raises(ValueError, match="tolerance=-0.1"):
        choose_setting(_table([("a", 0.4, 1.0)]), -0.1, cost="cost")


def test_the_sweep_writes_each_setting_and_its_choice(tiny_models, repo, tmp_path, capsys, monkeypatch):
    """Two iteration caps of latent 3D-Var on the tiny world's calibration year: one row each, the
    cap binds (cost evaluations follow it), the RMSEs differ, and exactly the cheaper of two
    settings within the tolerance, or else the better, is chosen."""
    from conftest import one_torch_thread

    sweep = _script(repo, "sweep_b_scale")
    monkeypatch.chdir(tiny_models)
    out = tmp_path / "choice.csv"
    with one_torch_thread():
        sweep.main(["--method", "l3dvar", "--caps", "2,8", "--days", "1", "--spinup", "1", "--threads", "1",
                    "--configfile", "config.yaml", "config/test.yaml", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "2002 is the comparison's year" in printed  # the tiny config calibrates on its reanalysis year
    table = pd.read_csv(out, index_col=0)
    assert list(table.index) == ["l3dvar var_b_scale=100 var_max_iterations=2",
                                 "l3dvar var_b_scale=100 var_max_iterations=8"]
    evaluations = table["cost_evaluations_per_analysis"].to_numpy()
    assert evaluations[0] <= 3 < evaluations[1] <= 10
    assert abs(table["mean_rmse"].iloc[0] / table["mean_rmse"].iloc[1] - 1) > 1e-3
    assert (table["year"] == 2002).all() and table["chosen"].sum() == 1
    expected = choose_setting(table, 0.005, cost="cost_evaluations_per_analysis")
    assert table.loc[expected, "chosen"]


def test_oi_has_no_iteration_cap(repo):
    sweep = _script(repo, "sweep_b_scale")
    with pytest.raises(SystemExit, match="oi has no iteration cap"):
        sweep.settings_grid("oi", "3,10", "10,20", None)
    grid = sweep.settings_grid("l4dvar", "30,100", "10,25", None)
    assert [change for _, change in grid] == [
        {"var_b_scale": 30.0, "var_max_iterations": 10}, {"var_b_scale": 30.0, "var_max_iterations": 25},
        {"var_b_scale": 100.0, "var_max_iterations": 10}, {"var_b_scale": 100.0, "var_max_iterations": 25}]


def _results(root, rmse_scale: float, std: float):
    """A results folder with a scorecard, one evaluated year and the anomaly std (two channels)."""
    import xarray as xr

    (root / "comparison").mkdir(parents=True)
    (root / "evaluation/2011").mkdir(parents=True)
    (root / "prep").mkdir()
    pd.DataFrame({"method": ["hloba", "hloba", "l4dvar", "l4dvar"], "channel": ["t", "q", "t", "q"],
                  "rmse_normalised": rmse_scale * np.array([0.2, 0.4, 0.1, 0.3])}).to_csv(
        root / "comparison/scorecard.csv", index=False)
    pd.DataFrame({"period": ["year", "year", "01"], "channel": ["t", "q", "t"], "rmse": [2.0, 4.0, 9.0],
                  "crps": [1.0, 2.0, 9.0], "spread_skill": [0.9, 1.1, 3.0]}).to_csv(
        root / "evaluation/2011/scores.csv", index=False)
    xr.Dataset({"anomaly_std": ("channel", [std, 2 * std])}, coords={"channel": ["t", "q"]}).to_netcdf(
        root / "prep/normalization.nc")
    return root


def test_score_changes_compares_each_run_in_its_own_anomaly_std(repo, tmp_path):
    changes = _script(repo, "score_changes")
    before, after = _results(tmp_path / "a", 1.0, 10.0), _results(tmp_path / "b", 1.1, 20.0)
    card = changes.scorecard_changes(before, after)
    np.testing.assert_allclose(card["ratio"].to_numpy(), 1.1)
    assert card.loc[("l4dvar", "q"), "before"] == pytest.approx(0.3)
    means = changes.channel_means(card)
    np.testing.assert_allclose(means.loc[["hloba", "l4dvar"], "before"], [0.3, 0.2])
    np.testing.assert_allclose(means["ratio"], 1.1)
    # the summary row's ratio is that of the channel means, not the mean of the channels' ratios
    uneven = pd.DataFrame({"before": [0.1, 0.3], "after": [0.2, 0.3]},
                          index=pd.MultiIndex.from_tuples([("m", "t"), ("m", "q")], names=["method", "channel"]))
    assert changes.channel_means(uneven).loc["m", "ratio"] == pytest.approx(1.25)
    archive = changes.archive_changes(before, after, 2011)
    # the same raw scores over an anomaly std twice as large: half the normalised RMSE and CRPS
    np.testing.assert_allclose(archive[("before", "rmse")].to_numpy(), [0.2, 0.2])
    np.testing.assert_allclose(archive[("ratio", "rmse")].to_numpy(), 0.5)
    np.testing.assert_allclose(archive[("ratio", "crps")].to_numpy(), 0.5)
    np.testing.assert_allclose(archive[("after", "spread_skill")].to_numpy(), [0.9, 1.1])


def test_score_changes_reads_the_withheld_fit_of_a_run_that_withheld(repo, tmp_path):
    changes = _script(repo, "score_changes")
    run = _results(tmp_path / "a", 1.0, 10.0)
    (run / "feedback").mkdir()
    assert changes.withheld_fit(run, 2011) is None  # no feedback file
    times = pd.to_datetime(["2011-01-01 00:00", "2011-01-01 06:00", "2011-01-02 00:00", "2011-01-02 06:00"] * 2)
    value = np.zeros(8)
    # withheld rows (qc 3): background 2 and -2 off, analysis 1 and -1 off; assimilated rows (qc 0), far off, ignored
    feedback = pd.DataFrame({"time": times, "variable": "t", "value": value,
                             "background": [2.0, -2.0, 2.0, -2.0, 9.0, 9.0, 9.0, 9.0],
                             "analysis": [1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0], "qc": [3] * 4 + [0] * 4})
    feedback.assign(qc=0).to_parquet(run / "feedback/2011.parquet")
    assert changes.withheld_fit(run, 2011) is None  # nothing withheld
    feedback.to_parquet(run / "feedback/2011.parquet")
    fit = changes.withheld_fit(run, 2011)
    assert list(fit.index) == ["t"] and fit.loc["t", "n"] == 4 and fit.loc["t", "n_blocks"] == 2
    assert fit.loc["t", "oma_over_omb"] == pytest.approx(0.5)
