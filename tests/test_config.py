"""Config validation: bad config fails with a one-line message naming the key."""

import copy

import pytest
import yaml

from hloba.config import ConfigError, check_config, expand_years, load_config, year_sets


@pytest.fixture(scope="module")
def schema(repo):
    return yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())


@pytest.fixture()
def config(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_default_and_test_configs_are_valid(schema, config, repo):
    assert check_config(config, schema) == []
    assert check_config(yaml.safe_load((repo / "config/test.yaml").read_text()), schema) == []


@pytest.mark.parametrize("example", ["global_6hourly", "regional_daily", "paper_hloba"])
def test_each_example_is_valid_over_the_defaults(schema, repo, example):
    assert check_config(load_config(repo / "config.yaml", repo / f"config/examples/{example}.yaml"), schema) == []


def test_default_config_splits_years(config):
    sets = year_sets(config)
    assert len(sets.training) == 8 and len(sets.validation) == 1
    assert len(sets.calibration) == 1 and len(sets.reanalysis) == 2
    assert not set(sets.training) & set(sets.reanalysis)


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda c: c["world"].update(sede=1), "world.sede", "not known"),
        (lambda c: c["world"]["qg"].update(nx="abc"), "world.qg.nx", "not of type 'integer'"),
        (lambda c: c["world"]["qg"].update(nx=4), "world.qg.nx", "less than the minimum"),
        (lambda c: c["years"].update(validation=[]), "years.validation", "non-empty"),
        (lambda c: c["years"].update(training={"start": 2007, "end": 2000}), "years.training", "precedes"),
        (lambda c: c["world"]["qg"].update(dt_minutes=7), "world.qg.dt_minutes", "whole time steps"),
        (lambda c: c["years"].pop("calibration"), "years", "'calibration' is a required property"),
        (lambda c: c.update(wrold={}), "wrold", "not known"),
        (lambda c: c["uncertainty"].update(draw_background="yes"), "uncertainty.draw_background", "is not one of"),
    ],
)
def test_bad_config_names_the_key(schema, config, mutate, key, fragment):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError) as info:
        check_config(bad, schema)
    message = str(info.value)
    assert f"'{key}'" in message
    assert fragment in message
    assert "\n" not in message


def test_training_overlapping_reanalysis_is_a_warning(schema, config):
    config["years"]["reanalysis"] = [2007, 2010]
    warnings = check_config(config, schema)
    assert len(warnings) == 1 and "[2007]" in warnings[0] and "optimistic" in warnings[0]


def test_expand_years():
    assert expand_years({"start": 2001, "end": 2003}) == [2001, 2002, 2003]
    assert expand_years([2005, 2001]) == [2001, 2005]


def test_the_years_streams_share_the_cores():
    from hloba.config import stream_threads

    assert stream_threads(2, 2) == 1  # the default: two reanalysis years at once on two cores
    assert stream_threads(1, 2) == 2  # one year (the tiny config, a year rerun alone): both cores
    assert stream_threads(2, 8) == 2 and stream_threads(3, 2) == 1 and stream_threads(1, 1) == 1
    assert stream_threads(2, None) == 2  # a cluster executor: each job has its own node


def test_the_schema_admits_every_compared_name_and_every_stream_setting(schema):
    """A variant or a setting the code knows and the schema does not is refused at the config check."""
    from dataclasses import fields

    from hloba.assim.settings import RUN_KEYS, StreamConfig
    from hloba.verify.settings import COMPARABLE

    props = schema["properties"]
    assert set(props["comparison"]["properties"]["methods"]["items"]["enum"]) == set(COMPARABLE)
    settings = {f.name for f in fields(StreamConfig)} - {"withhold_fraction", "withhold_seed"}
    assert settings | set(RUN_KEYS) <= set(props["assimilation"]["properties"])


def test_every_network_section_takes_the_training_settings_the_rules_pass(schema):
    """TrainingConfig's fields split into the ``training`` section's (every network's) and those rule
    train_* passes from a network's own section (``NETWORK_TRAINING_KEYS``, read by
    workflow/rules/common.smk); the schema admits each where it is read, so none is refused or
    silently dropped."""
    from dataclasses import fields

    from hloba.models.settings import NETWORK_TRAINING_KEYS, SHARED_TRAINING_KEYS, TrainingConfig

    assert set(schema["properties"]["training"]["properties"]) == set(SHARED_TRAINING_KEYS)
    keys = set(NETWORK_TRAINING_KEYS)
    assert {"epochs", "patience", "max_minutes", "warmup_epochs", "average_decay"} <= keys
    assert keys | set(SHARED_TRAINING_KEYS) == {f.name for f in fields(TrainingConfig)}
    for network in ("autoencoder", "o2lnet", "emulator"):
        assert keys <= set(schema["properties"][network]["properties"]), network
