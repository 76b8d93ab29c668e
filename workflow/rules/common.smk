# Validation and small input functions shared by all rules.
import sys
from pathlib import Path

import yaml

# Make the package importable when the workflow runs from a source checkout without an install.
sys.path.insert(0, str(Path(workflow.basedir)))

from hloba.config import ConfigError, check_config, year_sets

with open(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml") as _f:
    _SCHEMA = yaml.safe_load(_f)
try:
    CONFIG_WARNINGS = check_config(config, _SCHEMA)
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None

YEARS = year_sets(config)
ALL_YEARS = YEARS.all
ENV = "../../envs/hloba.yaml"


wildcard_constraints:
    year=r"\d{4}",


def reference_files(years):
    return [f"results/reference/{year}.nc" for year in years]
