"""The seam between yearly streams (DESIGN section 3): the spin-up converges to the previous archive."""

import numpy as np
import pandas as pd


def test_a_streams_spin_up_converges_to_the_previous_years_archive(tiny_models, tiny_stream, tiny_stream_2001,
                                                                   tmp_path):
    from hloba.archive.year import decode_year
    from hloba.verify.seams import seam_report

    r = tiny_models / "results"
    archive = tmp_path / "reanalysis_2001.nc"
    decode_year(tiny_stream_2001["latent"], r / "models/autoencoder.pt", archive, samples=2, workers=1,
                progress=False)
    table = seam_report([(tiny_stream["latent"], archive)], r / "models/autoencoder.pt", r / "prep/normalization.nc",
                        tmp_path / "seams.csv", tmp_path / "seams.png")
    assert (tmp_path / "seams.png").stat().st_size > 10_000
    assert set(table["year"]) == {2002} and table["channel"].nunique() == 8
    days = sorted(table["days_before_start"].unique())
    assert days[0] == 0.25 and days[-1] == 10.0 and len(days) == 40  # 10 days of 6-hourly spin-up
    by_day = table.groupby("days_before_start")["rms_difference_normalised"].mean()
    # the cold start (climatology, then O2Lnet's estimate) is far from the archive (tiny world: 0.51
    # anomaly std, mean over channels); within a day the two streams agree to 0.02-0.06: both analyses
    # are nearly O2Lnet's estimate from the same observations there (the tuned background variance is
    # ten times O2Lnet's). The archive's last cycle (0.25 days before the start: 0.29) is a filter
    # analysis: the 2001 stream has no 2002 observations for O2Lnet's 6-hour lead
    assert by_day[10.0] > 0.4 and by_day[by_day.index < 10].max() < 0.7 * by_day[10.0], by_day
    first_day, last_day = by_day[by_day.index > 9].mean(), by_day[by_day.index <= 1].mean()
    assert last_day < first_day
    assert np.isfinite(table["rms_difference"]).all()
    assert pd.read_csv(tmp_path / "seams.csv").shape == table.shape
