"""Short studies with a stub probe: bookkeeping, constraints, resume, outputs."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from toy import toy_prepared

from dse.commands.search import run_search
from dse.engines.optuna.storage import open_storage
from dse.evaluate import candidate_cost
from dse.problem import Limits
from dse.results.ledger import BASELINES, constraints_of, objectives_of
from dse.results.tables import front_trials
from dse.space import decode
from hw_models import ConfigError

CONTRACT = ["trial", "accuracy", "latency_s", "energy_j", "dram_energy_j", "compute_energy_j",
            "is_baseline", "baseline"]


def load(prepared) -> optuna.Study:
    return optuna.load_study(study_name=prepared.study_name,
                             storage=open_storage(prepared.storage_url))


def test_short_study_bookkeeping_is_exact(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=10)
    summary = run_search(prepared)
    study = load(prepared)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 10
    assert [t.user_attrs.get("baseline") for t in trials[:4]] == list(BASELINES)
    assert all("baseline" not in t.user_attrs for t in trials[4:])
    for trial in trials:  # the stored cost is the cost model's, exactly
        candidate = decode(trial.params, prepared.problem.space)
        cost = candidate_cost(candidate, prepared.problem)
        metrics = trial.user_attrs["metrics"]
        assert metrics["latency_s"] == float(cost.total_latency_s())
        assert metrics["energy_j"] == float(cost.total_energy_j())
        assert trial.values[1:] == [metrics["latency_s"], metrics["energy_j"]]
        assert trial.user_attrs["worker"]["pid"] > 0 and trial.user_attrs["worker"]["host"]
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert set(CONTRACT) | {"is_pareto", "state"} <= set(frame.columns)
    assert "n_analog:first" in frame.columns and "undervolt_mv" in frame.columns
    assert frame["is_baseline"].sum() == 4
    front = pd.read_csv(tmp_path / "toy" / "pareto.csv")
    assert set(CONTRACT) <= set(front.columns) and len(front) == len(summary["front"]) > 0
    assert set(front["trial"]) == set(frame.loc[frame["is_pareto"], "trial"])
    for name in ("config.json", "summary.json", "hypervolume.png", "front_3d.svg",
                 "layer_splits.png", "front_latency_s_energy_j.png"):
        assert (tmp_path / "toy" / name).is_file(), name


def test_front_matches_optuna_best_trials(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=12, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=None))
    run_search(prepared)
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    study = load(prepared)
    best = {t.number for t in study.best_trials}
    assert set(frame.loc[frame["is_pareto"], "trial"]) == best
    assert {t.number for t in front_trials(study.trials, objectives_of(study))} == best


def test_progress_reports_the_final_count_and_front(toy_table, tmp_path):
    calls = []
    prepared = toy_prepared(toy_table, tmp_path, trials=9, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=None))
    run_search(prepared, progress=lambda done, total, status: calls.append(
        (done, total, status)))
    front = pd.read_csv(tmp_path / "toy" / "pareto.csv")
    assert calls[0][0] >= 1 and calls[-1][:2] == (9, 9)  # first trial, then throttled
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    assert calls[-1][2].startswith(f"front {len(front)}, fastest "
                                   f"{front['latency_s'].min() * 1e3:.3f} ms")


def test_accuracy_constraint_and_unprobed_budget_violations(toy_table, tmp_path):
    calls = []
    limits = Limits(max_accuracy_drop_pp=1.0, latency_budget_s=1e-9)  # nothing fits
    prepared = toy_prepared(toy_table, tmp_path, trials=6, limits=limits, calls=calls)
    run_search(prepared)
    assert calls == []  # over the latency budget: never probed
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert not frame["feasible"].any() and not frame["is_pareto"].any()
    assert frame["accuracy"].isna().all() and not frame["probed"].any()  # unknown, not 0


def test_constraint_values_stored_per_trial(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6,
                            limits=Limits(max_accuracy_drop_pp=1.0))
    run_search(prepared)
    for trial in load(prepared).get_trials():
        drop = (0.95 - trial.user_attrs["metrics"]["accuracy"]) * 100 - 1.0
        assert constraints_of(trial)["accuracy_drop_over_limit_pp"] == pytest.approx(drop)
        assert trial.user_attrs["metrics"]["constraints"] == constraints_of(trial)
        assert trial.constraints["accuracy_drop_over_limit_pp"] == pytest.approx(drop)


def test_resume_continues_the_same_study(toy_table, tmp_path):
    run_search(toy_prepared(toy_table, tmp_path, trials=6))
    run_search(toy_prepared(toy_table, tmp_path, trials=9))
    study = load(toy_prepared(toy_table, tmp_path))
    assert len(study.trials) == 9
    assert sum("baseline" in t.user_attrs for t in study.trials) == 4
    assert len(optuna.get_all_study_summaries(open_storage(
        toy_prepared(toy_table, tmp_path).storage_url))) == 1


def test_other_settings_under_the_same_name_is_an_error(toy_table, tmp_path):
    run_search(toy_prepared(toy_table, tmp_path, trials=5))
    before = (tmp_path / "toy" / "trials.csv").read_bytes()
    other = toy_prepared(toy_table, tmp_path, trials=5, identity_extra={"network": "other"})
    with pytest.raises(ConfigError, match="exists with other settings \\(network\\)"):
        run_search(other)
    assert len(load(other).trials) == 5
    assert (tmp_path / "toy" / "trials.csv").read_bytes() == before


def test_cost_only_objectives_skip_the_probe(toy_table, tmp_path):
    calls = []
    prepared = toy_prepared(toy_table, tmp_path, trials=8, objectives="latency,dram_energy",
                            calls=calls)
    summary = run_search(prepared)
    assert calls == [] and summary["objectives"] == ["latency", "dram_energy"]
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert frame["accuracy"].isna().all() and frame["feasible"].all()


def test_compute_only_search(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6, dram="none")
    run_search(prepared)
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert (frame["dram_energy_j"] == 0).all()
    assert not any(c.startswith("undervolt") for c in frame.columns)


def test_summary_reports_improvements_over_baselines(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=25, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=5.0))
    summary = run_search(prepared)
    document = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert document["improvements"] == summary["improvements"]
    for item in summary["improvements"]:
        assert item["change_percent"] < 0 and item["baseline"] in BASELINES
        assert item["text"].startswith(f"{item['change_percent']:+.1f} % {item['metric']}")
    assert {b["baseline"] for b in document["baselines"]} == set(BASELINES)
    assert np.isfinite([row["latency_s"] for row in document["front"]]).all()


def test_improvements_are_iso_accuracy_over_the_studys_own_objectives():
    from dse.results.tables import improvements
    rows = [  # trial, baseline, accuracy, latency_s, energy_j, is_pareto
        (0, "all-digital", 0.99, 10.0, 8.0, False),
        (1, "all-analog", None, 4.0, 2.0, False),   # over a budget: accuracy unknown
        (2, "", 0.98, 6.0, 5.0, True),
        (3, "", 0.99, 6.0, 5.5, True),             # as fast as 2, and as accurate as 0
        (4, "", 0.90, 3.0, 1.0, True),             # fastest, but far less accurate
    ]
    frame = pd.DataFrame(rows, columns=["trial", "baseline", "accuracy", "latency_s",
                                        "energy_j", "is_pareto"])
    frame["accuracy"] = frame["accuracy"].astype(float)
    frame["is_baseline"] = frame["baseline"] != ""
    frame["state"] = "COMPLETE"
    found = improvements(frame, 1.0, ["accuracy", "latency"])
    assert found == [{"baseline": "all-digital", "metric": "latency", "change_percent":
                      pytest.approx(-40.0), "accuracy_change_pp": pytest.approx(0.0),
                      "trial": 3}]
    both = improvements(frame, 1.0, None)
    assert [(f["metric"], f["trial"]) for f in both] == [("latency", 3), ("energy", 2)]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "nsga3", "gp", "random", "qmc"])
def test_every_sampler_runs(toy_table, tmp_path, sampler):
    if sampler == "gp":
        pytest.importorskip("scipy", reason="the gp sampler needs the [gp] extra")
    prepared = toy_prepared(toy_table, tmp_path, trials=6, sampler=sampler)
    summary = run_search(prepared)
    assert summary["trials"] == {"COMPLETE": 6} and summary["front"]


def test_a_crashed_sqlite_worker_leaves_nothing_running(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6)
    run_search(prepared)
    study = load(prepared)
    study.enqueue_trial(study.trials[0].params, user_attrs={"baseline": "all-digital"})
    orphan = study.ask()  # as a worker killed with -9 leaves it
    orphan.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    summary = run_search(toy_prepared(toy_table, tmp_path, trials=8))  # resumes, no wait
    study = load(prepared)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
    assert [t.user_attrs.get("baseline") for t in study.trials[orphan.number + 1:]
            ].count("all-digital") == 1  # the queued baseline ran again
    assert summary["front"]
    assert orphan.number not in [b["trial"] for b in summary["baselines"]]  # failed: left out


def test_a_journal_fails_only_trials_of_dead_local_workers(tmp_path):
    import subprocess
    import sys

    from dse.engines.optuna.liveness import OrphanCheck
    from dse.host import worker_identity
    url = f"journal:{tmp_path / 'study.log'}"
    study = optuna.create_study(storage=open_storage(url))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    here = worker_identity()
    workers = [{**here, "pid": int(dead.stdout)},                           # gone
               here,                                                         # alive
               {**here, "pid": int(dead.stdout), "host": "another-node"},   # cannot tell
               {**here, "pid": int(dead.stdout), "pidns": "a container"}]   # cannot tell
    for worker in workers:
        study.ask().set_user_attr("worker", worker)
    assert OrphanCheck(url, grace_period_s=120)(study) == 1
    assert [t.state.name for t in study.trials] == ["FAIL"] + ["RUNNING"] * 3
    assert study.trials[0].user_attrs["fail_reason"] == "its worker stopped without finishing it"


class _SignallingSampler(optuna.samplers.RandomSampler):
    """A sampler whose third draw is interrupted by SIGTERM (sent from inside the draw, so
    that the moment is exact, not a matter of timing)."""

    draws = 0

    def sample_independent(self, study, trial, name, distribution):
        type(self).draws += 1
        if type(self).draws == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().sample_independent(study, trial, name, distribution)


def test_a_signal_stops_a_slow_sampler_at_once(toy_table, tmp_path):
    from toy import toy_accuracy, toy_problem

    from dse.engines.optuna.objective import make_objective
    from dse.engines.optuna.runner import TrialRunner
    from dse.signals import SignalGuard, Terminated
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"),
                                sampler=_SignallingSampler(seed=0), directions=["minimize"] * 3)
    problem = toy_problem(toy_table)
    with SignalGuard() as guard:
        objective = make_objective(problem, toy_accuracy(problem), guard=guard)
        with pytest.raises(Terminated):
            TrialRunner(guard).run(study, objective)
    trial = study.trials[0]
    assert len(study.trials[0].distributions) < 3  # stopped within the third draw
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["worker"]["pid"] == os.getpid()  # the batch was committed
    assert trial.params == {name: trial.params[name] for name in trial.distributions}


@pytest.mark.parametrize("url, hint", [("mysql://root@localhost/x", "dse[mysql]"),
                                       ("postgresql://u@localhost/x", "dse[postgres]")])
def test_a_missing_database_driver_names_the_extra(monkeypatch, url, hint):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name in (
        "pymysql", "psycopg") else real(name, *args))
    expected = rf"needs the \w+ driver: pip install '{re.escape(hint)}'"
    with pytest.raises(ConfigError, match=expected):
        open_storage(url)


def test_journal_workers_beat_and_silent_ones_are_failed(tmp_path):
    from dse.engines.optuna.liveness import OrphanCheck
    from dse.engines.optuna.runner import HEARTBEAT_ATTR, TrialRunner
    from dse.signals import SignalGuard
    url = f"journal:{tmp_path / 'study.log'}"
    study = optuna.create_study(storage=open_storage(url))

    def slow(trial):
        time.sleep(0.3)
        return 1.0

    start_s = time.time()
    with SignalGuard() as guard:
        beating = TrialRunner(guard, heartbeat_interval_s=0.05).run(study, slow)
    assert start_s + 0.2 < beating.system_attrs[HEARTBEAT_ATTR] <= time.time()

    def beat(trial, value):
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, value)

    study.enqueue_trial({"x": 1}, user_attrs={"baseline": "all-digital"})
    silent = study.ask()  # on another node whose clock runs an hour ahead: it stops beating
    beat(silent, time.time() + 3600)
    alive = study.ask()   # on a node an hour behind: it keeps beating
    beat(alive, time.time() - 3600)
    never = study.ask()   # killed before its first beat
    check = OrphanCheck(url, grace_period_s=1.0)
    assert check(study) == 0  # a new checker first watches for a grace period
    for step in range(4):
        time.sleep(0.1)
        beat(alive, time.time() - 3600 + step)
        assert check(study) == 0
    time.sleep(0.7)
    beat(alive, time.time() - 3500)
    assert check(study) == 2
    states = {t.number: t.state.name for t in study.trials}
    assert [states[t.number] for t in (silent, alive, never)] == ["FAIL", "RUNNING", "FAIL"]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs for t in waiting] == [{"baseline": "all-digital", "requeued": 1}]


def test_a_queued_trial_that_keeps_killing_its_worker_is_given_up(tmp_path):
    from dse.engines.optuna.liveness import OrphanCheck
    from dse.engines.optuna.runner import MAX_REQUEUES
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=open_storage(url))
    study.enqueue_trial({"x": 1}, user_attrs={"baseline": "all-digital"})
    for _ in range(MAX_REQUEUES + 1):
        study.ask({"x": optuna.distributions.IntDistribution(0, 4)})
        assert OrphanCheck(url)(study) == 1
    assert [t.state.name for t in study.trials] == ["FAIL"] * (MAX_REQUEUES + 1)
    assert [t.user_attrs.get("requeued", 0) for t in study.trials] == list(
        range(MAX_REQUEUES + 1))


def test_one_sqlite_worker_whatever_the_url_spelling(tmp_path):
    from dse.engines.optuna.storage import single_writer as _single_writer
    database = tmp_path / "study.db"
    with _single_writer(f"sqlite:///{database}"):
        for other in (f"sqlite:///{database}?timeout=60", f"sqlite+pysqlite:///{database}"):
            with pytest.raises(ConfigError, match="SQLite serves one worker"):
                with _single_writer(other):
                    pass


def test_storage_creation_races_are_retried_on_every_database():
    from dse.engines.optuna.storage import _creation_race
    assert _creation_race(Exception("(1062, \"Duplicate entry 'v3.2.0.a' for key 'PRIMARY'\")"))
    assert _creation_race(Exception('duplicate key value violates unique constraint "x"'))
    assert not _creation_race(Exception("password authentication failed"))
