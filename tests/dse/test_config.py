"""SearchConfig: its parts, validation, seeds per worker, identity and probe settings."""
from __future__ import annotations

import dataclasses

import pytest

from dse.config import (
    PARTS,
    SearchConfig,
    default_settings,
    default_study_name,
    resolved_epochs,
)
from hw_models import ConfigError

# what studies store: a study made by an earlier dse resumes only while these stay the same
# (or are keys it adopts when resumed: dse.results.ledger.ADOPTED_KEYS, e.g. data_sha256)
IDENTITY_KEYS = {
    "network", "dataset", "hw", "vendor", "ber_quantile", "partitions", "objectives",
    "max_accuracy_drop", "latency_budget", "energy_budget", "checkpoint", "probe_steps",
    "finetune_seeds", "error_seeds", "drop_rule", "interval_level", "error_model",
    "accuracy_estimator", "dram", "epochs", "hw_sha256", "dram_sha256", "checkpoint_sha256",
    "data_sha256", "ber_model_sha256"}
PROBE_SETTINGS_KEYS = {
    "network", "dataset", "checkpoint", "epochs", "probe_steps", "finetune_seeds",
    "error_seeds", "error_model", "seed", "data_dir", "interval_level", "accuracy_estimator"}


def test_defaults_validate_and_name_the_objectives():
    assert SearchConfig().validate() == ("accuracy", "latency", "energy")


@pytest.mark.parametrize("change, message", [
    ({"trials": 0}, "--trials"), ({"seed": -1}, "--seed"), ({"worker": -2}, "--worker"),
    ({"study": "a/b"}, "study name"), ({"trials_per_worker": 0}, "--trials-per-worker"),
    ({"heartbeat_interval_s": 200}, "--heartbeat-interval"), ({"probe_seeds": 0}, "--probe"),
    ({"threads": 0}, "--threads"), ({"epochs": 0}, "--epochs"),
    ({"latency_budget_s": -1.0}, "--latency-budget"),
    ({"max_accuracy_drop_pp": float("nan")}, "--max-accuracy-drop"),
    ({"objectives": "speed"}, "unknown objective"),
    ({"ber_quantile": "p95"}, "unknown BER quantile 'p95'"),
    ({"confirm_steps": 0}, "--confirm-steps must be >= 1"),
    ({"finetune_epochs": 0.0}, "--finetune-epochs must be > 0"),
    ({"interval_level": 1.5}, "must be in \\(0, 1\\)"),
    ({"drop_rule": "median"}, "--drop-rule must be one of mean, upper"),
    ({"storage": " "}, "--storage is empty")])
def test_bad_settings_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig().replace(**change).validate()


def test_flat_settings_go_to_their_part_and_back():
    config = SearchConfig.from_options(network="resnet20", vendor="A", probe_steps=7,
                                       confirm=False, study="s", trials=9)
    assert (config.workload.network, config.hardware.vendor, config.accuracy.probe_steps,
            config.confirmation.confirm, config.cluster.study, config.search.trials) == (
        "resnet20", "A", 7, False, "s", 9)
    assert SearchConfig.from_options(**config.flat()) == config
    assert config.replace(probe_steps=8).accuracy.probe_steps == 8
    with pytest.raises(TypeError, match="no setting sampler"):
        SearchConfig.from_options(sampler="tpe")  # an engine's own: in engine_settings


def test_every_default_is_defined_once():
    """The command line's defaults are the parts' defaults; no name is in two parts."""
    defaults = default_settings()
    assert len(defaults) == sum(len(dataclasses.fields(part)) for part in PARTS.values())
    assert defaults["probe_steps"] == 20 and defaults["interval_level"] == 0.95
    assert defaults["max_accuracy_drop_pp"] == 1.0 and defaults["engine"] == "optuna"


def test_each_worker_has_its_own_seed_stream(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert SearchConfig.from_options(seed=3).worker_seed() == 3
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    assert SearchConfig().cluster.index() == 5
    assert SearchConfig.from_options(seed=3).worker_seed() == 3 + 5 * 1_000_003
    assert SearchConfig.from_options(worker=2).cluster.index() == 2  # --worker wins


def test_identity_keeps_the_stored_key_names():
    identity = SearchConfig.from_options(max_accuracy_drop_pp=0.5).identity(
        "none", hw_sha256="h" * 64)
    assert set(identity) == IDENTITY_KEYS
    assert identity["max_accuracy_drop"] == 0.5 and identity["dram"] == "none"
    assert identity["epochs"] == resolved_epochs("digits", None) == 30
    assert identity["hw_sha256"] == "h" * 64 and identity["dram_sha256"] is None


def test_probe_settings_keep_their_stored_key_names():
    settings = SearchConfig.from_options(seed=4, data_dir="d").probe_settings()
    assert set(settings) == PROBE_SETTINGS_KEYS
    assert (settings["seed"], settings["data_dir"], settings["probe_steps"]) == (4, "d", 20)


def test_the_ber_quantile_is_part_of_the_identity():
    worst = SearchConfig().identity("lpddr4-3200")
    assert worst["ber_quantile"] == default_settings()["ber_quantile"] == "max"
    median = SearchConfig.from_options(ber_quantile="median").identity("lpddr4-3200")
    assert median["ber_quantile"] == "median" and median != worst
    assert {k for k in worst if worst[k] != median[k]} == {"ber_quantile"}


def test_settings_outside_the_identity_do_not_change_it():
    base = SearchConfig().identity("lpddr4-3200")
    for change in ({"trials": 7}, {"seed": 3}, {"threads": 1}, {"confirm": False},
                   {"study": "x"}, {"device": "cpu"}, {"data_dir": "elsewhere"}):
        assert SearchConfig().replace(**change).identity("lpddr4-3200") == base, change


def test_default_study_name_is_a_folder_name():
    assert default_study_name("resnet8", "digits", "diana", "lpddr4-3200") == \
        "resnet8-digits-diana-lpddr4-3200"
    assert default_study_name("pkg.mod:fn", "digits", "/x/my soc.toml", "none") == \
        "pkg.mod_fn-digits-my_soc-none"
