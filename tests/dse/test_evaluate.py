"""evaluate: the cost model first, the estimator only within every budget."""
from __future__ import annotations

import numpy as np
import pytest
from toy import stub_probe, toy_problem

from dse.accuracy import AccuracyModel
from dse.evaluate import candidate_cost, evaluate, objective_values
from dse.problem import Limits
from dse.space import nominal_candidate


def test_metrics_are_the_cost_models_and_the_estimators(toy_table):
    problem = toy_problem(toy_table)
    calls = []
    candidate = nominal_candidate(problem.space, [0, 0, 16, 64, 0])
    evaluation = evaluate(candidate, problem, AccuracyModel(stub_probe(calls), 0.95))
    cost = candidate_cost(candidate, problem)
    assert evaluation.metrics["latency_s"] == float(cost.total_latency_s())
    assert evaluation.metrics["energy_j"] == pytest.approx(
        evaluation.metrics["dram_energy_j"] + evaluation.metrics["compute_energy_j"])
    assert evaluation.probed and len(calls) == 1 and calls[0].n_analog == (0, 0, 16, 64, 0)
    drop_pp = (0.95 - evaluation.metrics["accuracy"]) * 100
    assert evaluation.constraints["accuracy_drop_over_limit_pp"] == pytest.approx(drop_pp - 1)
    assert objective_values(evaluation, problem) == [evaluation.metrics["accuracy"],
                                                     evaluation.metrics["latency_s"],
                                                     evaluation.metrics["energy_j"]]


def test_over_a_budget_the_estimator_does_not_run(toy_table):
    problem = toy_problem(toy_table, limits=Limits(None, latency_budget_s=1e-12))
    calls = []
    evaluation = evaluate(nominal_candidate(problem.space, np.zeros(5, int)), problem,
                          AccuracyModel(stub_probe(calls), 0.95))
    assert not evaluation.probed and not calls and evaluation.metrics["accuracy"] is None
    assert evaluation.constraints["latency_over_budget_s"] > 0 and not evaluation.feasible
    assert objective_values(evaluation, problem)[0] == 0.0  # the sampler's value


def test_accuracy_objectives_need_an_accuracy_model(toy_table):
    problem = toy_problem(toy_table)
    with pytest.raises(ValueError, match="AccuracyModel"):
        evaluate(nominal_candidate(problem.space, np.zeros(5, int)), problem)


def test_a_drop_exactly_at_the_limit_meets_it(toy_table):
    """(0.95 - 0.94) x 100 is 1.0000000000000009 in floats: still at a 1 pp limit."""
    from dse.accuracy import ProbeResult
    problem = toy_problem(toy_table, limits=Limits(1.0))
    at_limit = ProbeResult(0.94, 0.0, (0.94,), 0.0, True, ci_low=0.94, ci_high=0.94)
    assert (0.95 - 0.94) * 100 > 1.0
    evaluation = evaluate(nominal_candidate(problem.space, np.zeros(5, int)), problem,
                          AccuracyModel(lambda candidate: at_limit, 0.95))
    assert evaluation.constraints["accuracy_drop_over_limit_pp"] == 0.0
    assert evaluation.feasible
