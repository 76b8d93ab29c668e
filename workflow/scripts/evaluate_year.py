"""Adapter for rule evaluate_year."""

from _common import forecast_spec, setup

log = setup(snakemake)  # noqa: F821

from hloba.verify.evaluate import evaluate_year  # noqa: E402

sm = snakemake  # noqa: F821
evaluate_year(sm.input.reanalysis, sm.input.reference, sm.input.feedback, sm.input.normalization, sm.output.scores,
              sm.output.observations, sm.output.forecast, forecast=forecast_spec(sm),
              reference_name=sm.params.reference_role, withheld_path=sm.output.withheld,
              withheld_figure=sm.output.withheld_figure, reliability_path=sm.output.reliability,
              reliability_figure=sm.output.reliability_figure, **sm.params.evaluation)
