"""A study keeps the binding settings of each engine that ran in it: a resume with another
value is refused, naming the option; a resume that has nothing left to run says so."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import optuna
import pytest
from toy import toy_prepared

from dse.commands.search import run_search
from dse.engines import EngineSpec, engine_spec, register, setting, unregister
from dse.engines.eden import EdenSettings
from dse.engines.odimo import OdimoSettings
from dse.engines.optuna_engine import OptunaEngine, OptunaSettings
from dse.results.ledger import ENGINE_SETTINGS_PREFIX, bind_engine_settings
from hw_models import ConfigError


def test_the_built_in_engines_bind_what_changes_the_meaning_of_their_trials():
    assert engine_spec("optuna").binding(OptunaSettings(sampler="random")) == {}
    assert engine_spec("odimo").binding(OdimoSettings(target="energy")) == {
        "--dnas-epochs": 200, "--odimo-target": "energy", "--odimo-patience-epochs": 50,
        "--odimo-finetune-epochs": 200}  # not --lambdas: more work
    assert engine_spec("eden").binding(EdenSettings(retrain_epochs=2)) == {
        "--eden-retrain-epochs": 2}  # not --mapping: another split is more work


def test_a_study_keeps_the_first_binding_settings():
    study = optuna.create_study()
    bind_engine_settings(study, "s", "odimo", {"--odimo-target": "latency"})
    bind_engine_settings(study, "s", "odimo", {"--odimo-target": "latency"})
    bind_engine_settings(study, "s", "eden", {"--eden-retrain-epochs": 5})  # its own
    with pytest.raises(ConfigError, match="study 's' was searched by --engine odimo with "
                                          "--odimo-target latency: .* pass --study NEW_NAME "
                                          "or the original --odimo-target"):
        bind_engine_settings(study, "s", "odimo", {"--odimo-target": "energy"})


def test_a_study_bound_to_a_removed_option_is_refused_saying_why(toy_table, tmp_path):
    """An EDEN study of earlier dse (a fine-tune at every BER, --eden-retrain-steps) means
    something else than today's retrained-once EDEN: refused in one line, naming the
    option that is gone."""
    study = optuna.create_study()
    bind_engine_settings(study, "s", "eden", {"--eden-retrain-steps": None})  # dse 0.4
    spec = engine_spec("eden")
    with pytest.raises(ConfigError, match="study 's' was searched by --engine eden with "
                                          "--eden-retrain-steps None, an option dse no "
                                          "longer has \\(EDEN now retrains once per split"):
        bind_engine_settings(study, "s", "eden", spec.binding(EdenSettings()), spec.removed)
    prepared = toy_prepared(toy_table, tmp_path, trials=5, confirm=False)
    run_search(prepared)  # then marked as a study EDEN of earlier dse ran in
    old = optuna.load_study(study_name="toy", storage=prepared.storage_url)
    old.set_user_attr(ENGINE_SETTINGS_PREFIX + "eden", {"--eden-retrain-steps": 40})
    eden = prepared.config.replace(engine="eden", engine_settings=EdenSettings(), trials=6)
    with pytest.raises(ConfigError, match="--eden-retrain-steps 40, an option dse no longer "
                                          "has"):
        run_search(dataclasses.replace(prepared, config=eden))


@dataclass(frozen=True)
class StepSettings:
    step: int = setting(1, binding=True, help="a setting the trials depend on")


@pytest.fixture
def stepped():
    register(EngineSpec(name="stepped", summary="the Optuna engine, with a binding setting",
                        settings=StepSettings,
                        factory=lambda settings, problem, study: OptunaEngine("random")))
    yield
    unregister("stepped")


def test_a_resume_with_another_binding_value_is_refused(stepped, toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=5, confirm=False)
    first = prepared.config.replace(engine="stepped", engine_settings=StepSettings(step=1))
    run_search(dataclasses.replace(prepared, config=first))
    again = dataclasses.replace(prepared, config=first.replace(trials=7))
    run_search(again)  # the same value: resumes
    other = first.replace(trials=9, engine_settings=StepSettings(step=2))
    with pytest.raises(ConfigError, match="with --step 1"):
        run_search(dataclasses.replace(prepared, config=other))
    study = optuna.load_study(study_name="toy", storage=prepared.storage_url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 7


def test_a_resume_with_nothing_to_run_says_so(toy_table, tmp_path, caplog):
    prepared = toy_prepared(toy_table, tmp_path, trials=5, confirm=False)
    run_search(prepared)
    with caplog.at_level(logging.WARNING, logger="dse"):
        run_search(prepared)
    assert "already holds 5 complete trials (--trials 5): this run searches nothing" \
        in caplog.text
