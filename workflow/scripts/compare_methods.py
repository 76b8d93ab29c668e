"""Adapter for rule compare_methods: scorecard, cost table and figure."""

from _common import setup

log = setup(snakemake)  # noqa: F821

from hloba.verify.compare import compare_methods  # noqa: E402

sm = snakemake  # noqa: F821
compare_methods(list(sm.input.runs), list(sm.input.reference), sm.input.normalization, sm.output.scorecard,
                sm.output.cost, sm.output.figure)
