"""The ledger: study creation, what it stores, candidates recorded by any engine."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from toy import toy_accuracy, toy_problem

from dse.evaluate import evaluate
from dse.results.ledger import (
    BASELINES,
    CONFIG_ATTR,
    ENGINE_ATTR,
    Ledger,
    check_identity,
    constraints_of,
    metrics_of,
    open_ledger,
    stored_table,
)
from dse.space import decode, nominal_candidate
from hw_models import ConfigError


def _open(tmp_path, problem, identity=None):
    return open_ledger(name="s", storage=f"sqlite:///{tmp_path / 's.db'}",
                       identity=identity or {"a": 1}, problem=problem)


def test_a_new_study_describes_itself_and_queues_the_baselines(toy_table, tmp_path):
    problem = toy_problem(toy_table)
    study, created = _open(tmp_path, problem)
    assert created and study.user_attrs[CONFIG_ATTR] == {"a": 1}
    assert study.metric_names == ["accuracy", "latency_s", "energy_j"]
    assert list(study.user_attrs["objectives"]) == ["accuracy", "latency", "energy"]
    assert stored_table(study).to_records() == toy_table.to_records()
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    # the baselines at nominal DRAM, then each at its lowest safe point (none of the toy's
    # tensors but big's activations is in DRAM; they are, so the safe point is error-free)
    assert [t.user_attrs.get("baseline") for t in waiting[:4]] == list(BASELINES)
    assert [t.user_attrs.get("safe_dram_of") for t in waiting[4:]] == list(BASELINES)
    assert all(t.user_attrs["safe_dram_point"]["in_dram"] for t in waiting[4:])
    again, created = _open(tmp_path, problem)
    assert not created and len(again.trials) == 2 * len(BASELINES)


def test_a_study_joined_with_a_larger_budget_queues_the_reference_points_it_lacks(
        toy_table, tmp_path):
    problem = toy_problem(toy_table)
    url = f"sqlite:///{tmp_path / 's.db'}"

    def join(budget):
        study, _ = open_ledger(name="s", storage=url, identity={"a": 1}, problem=problem,
                               budget=budget)
        return [(t.state.name, t.user_attrs.get("baseline"), t.user_attrs.get("safe_dram_of"))
                for t in study.get_trials()]

    assert [label for _, label, _ in join(2)] == ["all-digital", "all-analog"]
    study = optuna.load_study(study_name="s", storage=url)
    trial = study.ask()  # all-digital runs and fails: the point is missing again
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert len(join(2)) == 3 and join(2)[-1] == ("WAITING", "all-digital", None)
    joined = join(5)  # 2 held: 3 more, in queue order
    assert [labels for state, *labels in joined[3:]] == [
        ["diana-heuristic", None], ["min-latency", None], [None, "all-digital"]]
    every = join(None)  # no budget (trials per worker): every point, each once
    held = [tuple(labels) for state, *labels in every if state != "FAIL"]
    assert sorted(held, key=str) == sorted(
        [(name, None) for name in BASELINES] + [(None, name) for name in BASELINES], key=str)
    assert join(20) == every


def test_other_settings_are_refused_by_name(toy_table, tmp_path):
    problem = toy_problem(toy_table)
    study, _ = _open(tmp_path, problem, {"a": 1, "hw": "diana", "hw_sha256": "x"})
    check_identity(study, "s", {"a": 1, "hw": "path/of/diana.toml", "hw_sha256": "x"})
    with pytest.raises(ConfigError, match=r"other settings \(a\)"):
        check_identity(study, "s", {"a": 2, "hw": "diana", "hw_sha256": "x"})


def test_a_study_of_the_one_seed_probe_is_refused_with_the_reason(toy_table, tmp_path):
    problem = toy_problem(toy_table)
    study, _ = _open(tmp_path, problem, {"a": 1, "probe_seeds": 3})
    with pytest.raises(ConfigError, match="made by dse 0.1, whose probe had one kind of seed"):
        check_identity(study, "s", {"a": 1, "finetune_seeds": 2, "error_seeds": 3})


def test_a_recorded_candidate_is_a_complete_trial_that_decodes_back(toy_table, tmp_path):
    problem = toy_problem(toy_table)
    study, _ = _open(tmp_path, problem)
    ledger = Ledger(study, problem)
    candidate = nominal_candidate(problem.space, np.array([16, 0, 32, 64, 10]))
    evaluation = evaluate(candidate, problem, toy_accuracy(problem))
    trial = ledger.record(candidate, evaluation, engine="test", attrs={"note": 1})
    assert trial.state == optuna.trial.TrialState.COMPLETE and ledger.complete_count() == 1
    assert decode(trial.params, problem.space) == candidate
    assert trial.user_attrs[ENGINE_ATTR] == "test" and trial.user_attrs["note"] == 1
    assert metrics_of(trial)["latency_s"] == evaluation.metrics["latency_s"]
    assert constraints_of(trial) == evaluation.constraints
    assert trial.values[1] == evaluation.metrics["latency_s"]


def test_safe_dram_points_are_error_free_or_free():
    from dse.engines.testing import TOY_LAYERS
    from dse.results.ledger import safe_dram_candidates
    from hw_models import LayerTable
    from hw_models.dram import ber_from_trcd, ber_from_vdd

    spilling = toy_problem(LayerTable.from_records(TOY_LAYERS))
    on_chip = toy_problem(LayerTable.from_records(
        [layer for layer in TOY_LAYERS if layer["name"] != "big"]))
    for problem, in_dram in ((spilling, True), (on_chip, False)):
        found = safe_dram_candidates(problem)
        assert [name for name, _, _ in found] == list(BASELINES)
        for _, candidate, point in found:
            assert point["in_dram"] is in_dram
            assert candidate.vdd_v == (point["vdd_v"],)
            device = problem.device
            if in_dram:  # the lowest grid point at BER 0, one step lower has errors
                assert ber_from_vdd(device, "B", point["vdd_v"], "max") == 0
                assert ber_from_vdd(device, "B", point["vdd_v"] - 0.025, "max") > 0
                assert ber_from_trcd(device, "B", point["trcd_ns"], "max") == 0
                assert ber_from_trcd(device, "B", point["trcd_ns"] - 0.25, "max") > 0
            else:  # nothing to corrupt: the bottom of the grid
                assert point["vdd_v"] == 0.9 and point["trcd_ns"] == 9.125


def test_eden_tolerances_merge_the_earlier_whole_record_with_one_attribute_per_split():
    """Studies of earlier dse kept every split in one attribute (written whole, so a worker
    could lose another's); each split now has its own, read back over the old record."""
    from dse.results.ledger import EDEN_TOLERANCE_ATTR, EDEN_TOLERANCE_PREFIX, eden_tolerances
    attrs = {EDEN_TOLERANCE_ATTR: {"all-digital": {"coarse_ber": 1e-3},
                                   "min-latency": {"coarse_ber": 1e-4}},
             EDEN_TOLERANCE_PREFIX + "min-latency": {"coarse_ber": 2e-4},
             EDEN_TOLERANCE_PREFIX + "odimo lambda 0.1": {"coarse_ber": 1e-5},
             "dse:eden-tolerance-note": 1}
    assert eden_tolerances(attrs) == {"all-digital": {"coarse_ber": 1e-3},
                                      "min-latency": {"coarse_ber": 2e-4},
                                      "odimo lambda 0.1": {"coarse_ber": 1e-5}}
    assert eden_tolerances({}) == {}
