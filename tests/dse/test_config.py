"""SearchConfig: validation, seeds per worker, identity."""
from __future__ import annotations

import dataclasses

import pytest

from dse.config import (
    SearchConfig,
    default_study_name,
    resolved_epochs,
    validate,
    worker_index,
    worker_seed,
)
from hw_models import ConfigError


def test_defaults_validate_and_name_the_objectives():
    assert validate(SearchConfig()) == ("accuracy", "latency", "energy")


@pytest.mark.parametrize("change, message", [
    ({"trials": 0}, "--trials"), ({"seed": -1}, "--seed"), ({"worker": -2}, "--worker"),
    ({"study": "a/b"}, "study name"), ({"trials_per_worker": 0}, "--trials-per-worker"),
    ({"heartbeat_interval_s": 200}, "--heartbeat-interval"), ({"probe_seeds": 0}, "--probe"),
    ({"threads": 0}, "--threads"), ({"epochs": 0}, "--epochs"),
    ({"latency_budget_s": -1.0}, "--latency-budget"),
    ({"max_accuracy_drop_pp": float("nan")}, "--max-accuracy-drop"),
    ({"objectives": "speed"}, "unknown objective"),
    ({"ber_quantile": "p95"}, "unknown BER quantile 'p95'")])
def test_bad_settings_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        validate(dataclasses.replace(SearchConfig(), **change))


def test_each_worker_has_its_own_seed_stream(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert worker_seed(SearchConfig(seed=3)) == 3
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    assert worker_index(SearchConfig()) == 5
    assert worker_seed(SearchConfig(seed=3)) == 3 + 5 * 1_000_003
    assert worker_index(SearchConfig(worker=2)) == 2  # --worker wins


def test_identity_keeps_the_stored_key_names(tmp_path):
    preset = tmp_path / "soc.toml"
    preset.write_text("x = 1\n")
    identity = SearchConfig(max_accuracy_drop_pp=0.5).identity("none", hw_path=preset)
    assert identity["max_accuracy_drop"] == 0.5 and identity["dram"] == "none"
    assert identity["epochs"] == resolved_epochs("digits", None) == 30
    assert len(identity["hw_sha256"]) == 64 and identity["dram_sha256"] is None


def test_the_ber_quantile_is_part_of_the_identity():
    worst = SearchConfig().identity("lpddr4-3200")
    assert worst["ber_quantile"] == SearchConfig.ber_quantile == "max"
    median = SearchConfig(ber_quantile="median").identity("lpddr4-3200")
    assert median["ber_quantile"] == "median" and median != worst
    assert {k for k in worst if worst[k] != median[k]} == {"ber_quantile"}


def test_default_study_name_is_a_folder_name():
    assert default_study_name("resnet8", "digits", "diana", "lpddr4-3200") == \
        "resnet8-digits-diana-lpddr4-3200"
    assert default_study_name("pkg.mod:fn", "digits", "/x/my soc.toml", "none") == \
        "pkg.mod_fn-digits-my_soc-none"
