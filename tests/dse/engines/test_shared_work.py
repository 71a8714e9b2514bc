"""Two workers of one study share an engine's own work (EDEN's splits, ODiMO's lambdas), on a
journal file and on PostgreSQL and MySQL: each unit is measured once by one worker, every trial is
labelled with what it holds, the budget holds exactly and no record is lost. The test sets
where the workers interleave (``dse.engines.testing.TwoWorkers``), never timing."""
from __future__ import annotations

from datetime import datetime

import optuna
import pytest
from test_contract import stub_searcher

from dse.engines.eden import EdenEngine
from dse.engines.odimo import OdimoEngine
from dse.engines.testing import StubRetrainer, TwoWorkers, Worker, check_shared_work
from dse.host import worker_identity
from dse.results.ledger import (
    EDEN_ATTR,
    ENGINE_ATTR,
    ODIMO_LAMBDA_ATTR,
    UNIT_ATTR,
    WORKER_ATTR,
    eden_tolerances,
)
from hw_models.mapping import HEURISTICS

COMPLETE = optuna.trial.TrialState.COMPLETE


def eden(**settings) -> EdenEngine:
    """EDEN with a short bisection, retraining by the stub's rule."""
    return EdenEngine(bisection_steps=2, retrainer=StubRetrainer(), **settings)


# MySQL in the slow suite only (CI runs it): the fast one keeps a file and a database
@pytest.fixture(params=["journal", "postgresql",
                        pytest.param("mysql", marks=pytest.mark.slow)])
def url(request, tmp_path):
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.log'}"
    return request.getfixturevalue({"postgresql": "postgres_url",
                                    "mysql": "mysql_url"}[request.param])


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    """A waiting worker looks again at once (its wait is a loop, not a timing)."""
    for module in ("dse.engines.units", "dse.engines.optuna_engine.engine"):
        monkeypatch.setattr(f"{module}.POLL_S", 0.01)


def pausing_stage(workers: TwoWorkers):
    """A job's ``stage`` that lets worker B run when A starts its first EDEN split."""
    def stage(what: str, unit: str):
        workers.pause()
        return lambda done, total, status: None
    return stage


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(COMPLETE,))


@pytest.mark.parametrize("splits", [4, 2])  # every baseline's split; a budget for two
def test_eden_maps_each_split_once_and_the_budget_holds(url, splits):
    trials = 8 + splits
    workers = TwoWorkers(url, lambda problem, study: eden(),
                         trials=trials)
    study = workers.run(Worker(stage=pausing_stage(workers)), Worker())
    mapped = [t.user_attrs[EDEN_ATTR]["mapping"] for t in complete(study)
              if EDEN_ATTR in t.user_attrs]
    assert sorted(mapped) == sorted(list(HEURISTICS)[:splits])
    assert len(complete(study)) == trials
    assert {t.user_attrs[ENGINE_ATTR] for t in complete(study)} == {"eden"}
    assert set(eden_tolerances(study.user_attrs)) == set(mapped)
    check_shared_work(study, trials)


def test_odimo_measures_each_lambda_once(url):
    workers = TwoWorkers(url, lambda problem, study: OdimoEngine(
        cost_weights=(0.1, 1.0, 10.0), searcher=stub_searcher), trials=11)

    def searcher(weight: float):
        workers.pause()  # B runs while A searches its first lambda
        return stub_searcher(weight)
    study = workers.run(Worker(engine=OdimoEngine(cost_weights=(0.1, 1.0, 10.0),
                                                  searcher=searcher)), Worker())
    lambdas = [t.user_attrs[ODIMO_LAMBDA_ATTR] for t in complete(study)
               if ODIMO_LAMBDA_ATTR in t.user_attrs]
    assert sorted(lambdas) == [0.1, 1.0, 10.0]
    check_shared_work(study, 11)


@pytest.mark.parametrize("engine", ["eden", "odimo"])
def test_a_queued_point_another_worker_took_is_not_replaced_by_a_sampled_one(url, engine):
    """Worker B takes the last queued point while A is about to take it: A takes none
    (a new trial would be a sampler's draw labelled with the engine's name). The budget
    leaves room for one: the eight queued points and the engine's one unit are all."""
    def make(problem, study):
        return (eden(mappings=("all-digital",)) if engine == "eden"
                else OdimoEngine(cost_weights=(0.1,), searcher=stub_searcher))
    workers = TwoWorkers(url, make, trials=10)
    watched = workers.study()

    def before_trial():
        if len(watched.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1:
            workers.pause()
        return worker_identity()
    study = workers.run(Worker(before_trial=before_trial), Worker())
    own = EDEN_ATTR if engine == "eden" else ODIMO_LAMBDA_ATTR
    sampled = [t.number for t in complete(study)
               if "fixed_params" not in t.system_attrs and own not in t.user_attrs]
    assert not sampled, f"trials {sampled} are neither queued points nor the engine's own"
    assert {t.user_attrs[ENGINE_ATTR] for t in complete(study)} == {engine}
    check_shared_work(study, 9)


def test_workers_mapping_other_splits_keep_both_tolerance_records(url, tmp_path):
    """``dse tolerance`` reads every worker's record (each split has its own attribute)."""
    from dse.commands.inspect import tolerance_report
    workers = TwoWorkers(url, lambda problem, study: eden(),
                         trials=10)
    study = workers.run(
        Worker(engine=eden(mappings=("all-digital",)),
               stage=pausing_stage(workers)),
        Worker(engine=eden(mappings=("min-latency",))))
    report = tolerance_report(None, storage=url, study_name="workers",
                              results_dir=str(tmp_path))
    assert sorted(split["mapping"] for split in report.splits) == ["all-digital",
                                                                   "min-latency"]
    assert all(split["trial"] is not None for split in report.splits)
    check_shared_work(study, 10)


def test_a_dead_workers_claim_is_taken_over(url):
    import subprocess
    import sys
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    workers = TwoWorkers(url, lambda problem, study: eden(
        mappings=("all-digital",)), trials=9)
    study = workers.study()
    dead = {**worker_identity(), "pid": int(gone.stdout)}
    study._storage.create_new_trial(study._study_id, template_trial=optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None, values=None,
        datetime_start=datetime.now(), datetime_complete=None, params={}, distributions={},
        user_attrs={ENGINE_ATTR: "eden", WORKER_ATTR: dead},
        system_attrs={UNIT_ATTR: "eden:all-digital"}, intermediate_values={}, trial_id=-1))
    study = workers.run(Worker(), Worker())
    claims = [t for t in study.trials if t.system_attrs.get(UNIT_ATTR) == "eden:all-digital"]
    assert [t.state.name for t in claims] == ["FAIL", "COMPLETE"]
    assert claims[0].user_attrs["fail_reason"] == "its worker stopped without finishing it"
    check_shared_work(study, 9)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
