"""Where a study keeps its trials' constraints: Optuna's list (system attribute
``constraints``, in ``CONSTRAINT_NAMES`` order), which Optuna 4.9 and 5.x (samplers,
``study.best_trials``) and optuna-dashboard read, each constraint once; dse's named copy stays
with the metrics. Studies an earlier dse wrote read as before."""
from __future__ import annotations

import io
import json
import math
import sys
import warnings
import wsgiref.util

import numpy as np
import optuna
import pytest
from toy import toy_accuracy, toy_problem

from dse.engines import Budget, EngineJob
from dse.engines.optuna_engine import OptunaEngine
from dse.evaluate import CONSTRAINT_NAMES, constraint_names, evaluate
from dse.problem import Limits
from dse.results.ledger import (
    BASELINE_ATTR,
    CONSTRAINT_NAMES_ATTR,
    ENGINE_ATTR,
    HAS_SET_CONSTRAINT,
    METRICS_ATTR,
    NAMED_CONSTRAINT_PREFIX,
    OPTUNA_CONSTRAINTS,
    Ledger,
    constraint_values,
    constraints_of,
    feasible,
    metrics_record,
    objectives_of,
    open_ledger,
)
from dse.results.tables import front_trials
from dse.signals import SignalGuard
from dse.space import encode, nominal_candidate, param_distributions

COMPLETE = optuna.trial.TrialState.COMPLETE
LIMITS = Limits(max_accuracy_drop_pp=2.0, latency_budget_s=0.002)
MEETS_BOTH = (0, 0, 0, 16, 0)      # 1.75 pp under the drop limit, 15 us under the budget
OVER_THE_DROP = (0, 0, 0, 64, 0)   # 0.25 pp over the 2 pp drop limit, within the budget
STUDY = "constrained"


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _run_optuna(study: optuna.Study, problem, url: str, trials: int) -> None:
    ledger = Ledger(study, problem)
    with SignalGuard() as guard:
        OptunaEngine(sampler="tpe").run(EngineJob(
            problem=problem, ledger=ledger, budget=Budget(trials), seed=0,
            accuracy=toy_accuracy(problem), guard=guard))


def _search(toy_table, tmp_path, trials: int = 20) -> optuna.Study:
    """A study filled through dse's own path: the Optuna engine runs the queued baselines
    (all-digital over the latency budget, the analog ones over the drop limit) and samples
    with TPE; then the ledger records two candidates, as the ODiMO and EDEN engines do."""
    problem = toy_problem(toy_table, limits=LIMITS)
    url = _url(tmp_path)
    study, _ = open_ledger(name=STUDY, storage=url, identity={"toy": 1}, problem=problem)
    _run_optuna(study, problem, url, trials)
    ledger = Ledger(study, problem)
    for counts in (MEETS_BOTH, OVER_THE_DROP):
        candidate = nominal_candidate(problem.space, np.array(counts))
        ledger.record(candidate, evaluate(candidate, problem, toy_accuracy(problem)),
                      engine="test")
    return optuna.load_study(study_name=STUDY, storage=url)


def _optuna_sees(trial: optuna.trial.FrozenTrial) -> list[float] | None:
    """The constraints as Optuna reads them: on 5.x ``FrozenTrial.constraints`` (its list
    and its named keys together), on 4.x the list."""
    if hasattr(trial, "constraints"):
        return list(trial.constraints.values())
    return trial.system_attrs.get(OPTUNA_CONSTRAINTS)


def test_constraints_have_one_documented_order():
    assert constraint_values({"accuracy_drop_over_limit_pp": 2.0, "latency_over_budget_s": -1,
                              "energy_over_budget_j": 0.5}) == [-1.0, 0.5, 2.0]
    with pytest.raises(ValueError, match="'energy_over_budget_j' is NaN"):
        constraint_values({"energy_over_budget_j": math.nan})


def test_an_evaluation_has_its_problem_s_constraints_in_that_order(toy_table):
    problem = toy_problem(toy_table, limits=Limits(max_accuracy_drop_pp=1.0,
                                                   latency_budget_s=1.0, energy_budget_j=1.0))
    candidate = nominal_candidate(problem.space, np.array(MEETS_BOTH))
    evaluation = evaluate(candidate, problem, toy_accuracy(problem))
    assert tuple(evaluation.constraints) == constraint_names(problem) == CONSTRAINT_NAMES
    no_accuracy = toy_problem(toy_table, objectives="latency,energy", limits=LIMITS)
    assert constraint_names(no_accuracy) == ("latency_over_budget_s",)


def test_every_trial_stores_its_constraints_once_where_optuna_reads_them(toy_table, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = _search(toy_table, tmp_path)
    assert not [str(w.message) for w in caught if "constraint" in str(w.message).lower()]
    names = study.user_attrs[CONSTRAINT_NAMES_ATTR]
    assert names == ["latency_over_budget_s", "accuracy_drop_over_limit_pp"]
    complete = study.get_trials(states=(COMPLETE,))
    assert len(complete) == 22 and len(study.trials) == 22
    engines = {t.user_attrs[ENGINE_ATTR] for t in complete}
    assert engines == {"optuna", "test"}
    assert any(BASELINE_ATTR in t.user_attrs for t in complete)  # queued, then run
    for trial in complete:
        listed = [constraints_of(trial)[name] for name in names]
        assert trial.system_attrs[OPTUNA_CONSTRAINTS] == listed
        assert not [key for key in trial.system_attrs
                    if key.startswith(NAMED_CONSTRAINT_PREFIX)]
        assert _optuna_sees(trial) == listed  # each constraint once
    recorded = [t for t in complete if t.user_attrs[ENGINE_ATTR] == "test"]
    assert [feasible(t) for t in recorded] == [True, False]
    assert 0 < recorded[1].system_attrs[OPTUNA_CONSTRAINTS][1] < 0.3  # over the drop only
    assert {feasible(t) for t in complete} == {True, False}
    front = front_trials(complete, objectives_of(study))
    assert front and [t.number for t in study.best_trials] == [t.number for t in front]


def _dashboard_study(storage: str, study_id: int) -> dict:
    """What optuna-dashboard's server sends its front-end for one study (no browser)."""
    from optuna_dashboard import wsgi
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/api/studies/{study_id}",
               "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(wsgi(storage)(environ, lambda code, headers, *exc: status.append(code)))
    assert status[0].startswith("200"), body[:200]
    return json.loads(body)


def test_the_dashboard_sees_dse_s_feasibility(toy_table, tmp_path):
    pytest.importorskip("optuna_dashboard",
                        reason="optuna-dashboard is not installed (the test extra has it)")
    study = _search(toy_table, tmp_path)
    shown = _dashboard_study(_url(tmp_path), study._study_id)
    by_number = {t.number: t for t in study.trials}
    assert sorted(t["number"] for t in shown["trials"]) == sorted(by_number)
    names = study.user_attrs[CONSTRAINT_NAMES_ATTR]
    for trial in shown["trials"]:  # the plots grey a trial when any value is > 0
        ours = by_number[trial["number"]]
        assert trial["state"] == "Complete"
        assert all(c <= 0 for c in trial["constraints"]) == feasible(ours)
        assert dict(zip(names, trial["constraints"])) == constraints_of(ours)
    infeasible = {n for n, t in by_number.items() if not feasible(t)}
    over_the_drop = [n for n, t in by_number.items()
                     if constraints_of(t)["accuracy_drop_over_limit_pp"] > 0]
    assert infeasible and over_the_drop
    # its "Best Trials" (optuna_dashboard/_app.py get_study_detail ->
    # _pareto_front.get_pareto_front_trials) is the front of every complete trial, the
    # constraints ignored: it holds trials over a limit, which Optuna and dse leave out
    best = {t["number"] for t in shown["best_trials"]}
    assert best & infeasible
    front = front_trials(study.get_trials(states=(COMPLETE,)), objectives_of(study))
    assert front and [t.number for t in study.best_trials] == [t.number for t in front]


def _legacy_trial(problem, counts, *, named: bool) -> optuna.trial.FrozenTrial:
    """A trial as an earlier dse recorded it: its constraints with its metrics, and (on
    Optuna 5, ``named``) as Optuna 5's named keys."""
    candidate = nominal_candidate(problem.space, np.array(counts))
    evaluation = evaluate(candidate, problem, toy_accuracy(problem))
    params = encode(candidate, problem.space)
    every = param_distributions(problem.space)
    extra = {"constraints": evaluation.constraints} if named else {}
    return optuna.trial.create_trial(
        values=[evaluation.metrics["accuracy"], evaluation.metrics["latency_s"],
                evaluation.metrics["energy_j"]],
        params=params, distributions={key: every[key] for key in params},
        user_attrs={METRICS_ATTR: metrics_record(evaluation), ENGINE_ATTR: "optuna"}, **extra)


@pytest.mark.skipif(not HAS_SET_CONSTRAINT, reason="named constraints are Optuna 5's")
def test_a_study_stored_with_named_constraints_goes_on_with_them(toy_table, tmp_path):
    """Optuna's GP sampler refuses trials whose constraint keys differ: a study an earlier
    dse wrote with Optuna 5's named keys keeps them."""
    problem = toy_problem(toy_table, limits=LIMITS)
    url = _url(tmp_path)
    study = optuna.create_study(study_name=STUDY, storage=url, directions=problem.directions)
    study.set_user_attr("objectives", {"accuracy": {}, "latency": {}, "energy": {}})
    for counts in (MEETS_BOTH, OVER_THE_DROP):
        study.add_trial(_legacy_trial(problem, counts, named=True))
    ledger = Ledger(study, problem)
    assert ledger.named_constraints
    _run_optuna(study, problem, url, trials=5)
    candidate = nominal_candidate(problem.space, np.array(OVER_THE_DROP))
    ledger.record(candidate, evaluate(candidate, problem, toy_accuracy(problem)), engine="test")
    complete = study.get_trials(states=(COMPLETE,))
    assert len(complete) == 6
    for trial in complete:
        assert OPTUNA_CONSTRAINTS not in trial.system_attrs
        assert trial.constraints == constraints_of(trial)
    assert [feasible(t) for t in complete[:2]] == [True, False]
    front = front_trials(complete, objectives_of(study))
    assert [t.number for t in study.best_trials] == [t.number for t in front]


def test_a_study_with_constraints_only_in_its_metrics_reads_as_before(toy_table, tmp_path):
    """Trials an earlier dse recorded through the ledger on Optuna 4.x kept their
    constraints only with their metrics: dse reads them there; new trials store the list."""
    problem = toy_problem(toy_table, limits=LIMITS)
    url = _url(tmp_path)
    study = optuna.create_study(study_name=STUDY, storage=url, directions=problem.directions)
    for counts in (MEETS_BOTH, OVER_THE_DROP):
        study.add_trial(_legacy_trial(problem, counts, named=False))
    ledger = Ledger(study, problem)
    assert not ledger.named_constraints
    assert [feasible(t) for t in study.trials] == [True, False]
    candidate = nominal_candidate(problem.space, np.array(OVER_THE_DROP))
    new = ledger.record(candidate, evaluate(candidate, problem, toy_accuracy(problem)),
                        engine="test")
    assert new.system_attrs[OPTUNA_CONSTRAINTS] == constraint_values(constraints_of(new))
    assert not feasible(new)
