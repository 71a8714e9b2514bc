"""Dead workers on storages without Optuna heartbeats: SQLite and journal files."""
from __future__ import annotations

import time

import optuna

from dse.storage.storage import open_storage


def test_a_journal_fails_only_trials_of_dead_local_workers(tmp_path):
    import subprocess
    import sys

    from dse.host import worker_identity
    from dse.storage.liveness import OrphanCheck
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


def test_journal_workers_beat_and_silent_ones_are_failed(tmp_path):
    from dse.engines.runner import TrialRunner
    from dse.signals import SignalGuard
    from dse.storage.liveness import HEARTBEAT_ATTR, OrphanCheck
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
    from dse.storage.liveness import MAX_REQUEUES, OrphanCheck
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=open_storage(url))
    study.enqueue_trial({"x": 1}, user_attrs={"baseline": "all-digital"})
    for _ in range(MAX_REQUEUES + 1):
        study.ask({"x": optuna.distributions.IntDistribution(0, 4)})
        assert OrphanCheck(url)(study) == 1
    assert [t.state.name for t in study.trials] == ["FAIL"] * (MAX_REQUEUES + 1)
    assert [t.user_attrs.get("requeued", 0) for t in study.trials] == list(
        range(MAX_REQUEUES + 1))
