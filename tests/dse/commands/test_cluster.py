"""Many workers on one study, as real processes on a real database (and a journal file).

The database fixtures (``postgres_url``, ``mysql_url``) are in conftest.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from toy import toy_problem

from cli import cli
from dse.results.ledger import BASELINES, open_ledger

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parents[1]  # tests/dse: the slow estimator
COMPLETE = optuna.trial.TrialState.COMPLETE


def worker(tmp_path: Path, storage: str, *args: str, env: dict | None = None
           ) -> subprocess.Popen:
    code = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]; import cli; cli.main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "search", "--storage", storage, "--study", "shared",
         "--results-dir", str(tmp_path), "--dram", "ddr4-2400", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    assert "Warning" not in stderr, stderr  # Optuna's heartbeat warnings are handled
    return stderr


def load(storage: str) -> optuna.Study:
    from dse.storage.storage import open_storage
    return optuna.load_study(study_name="shared", storage=open_storage(storage))


def check_exact(study: optuna.Study, trials: int) -> None:
    complete = study.get_trials(states=(COMPLETE,))
    assert len(complete) == trials
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    baselines = [t.user_attrs["baseline"] for t in complete if "baseline" in t.user_attrs]
    assert sorted(baselines) == sorted(BASELINES)
    assert len({t.user_attrs["worker"]["pid"] for t in complete}) >= 2  # both workers worked


def run_workers(tmp_path: Path, storage: str, trials: int, count: int = 2) -> optuna.Study:
    """``count`` cost-only workers started together on one study; the study when all end."""
    args = ["--objectives", "latency,energy", "--trials", str(trials)]
    processes = [worker(tmp_path, storage, *args, "--worker", str(i)) for i in range(count)]
    for process in processes:
        finish(process)
    return load(storage)


@pytest.mark.slow
def test_two_workers_fill_the_study_exactly(tmp_path, postgres_url):
    check_exact(run_workers(tmp_path, postgres_url, 200), 200)
    status = CliRunner().invoke(cli, ["status", "--storage", postgres_url, "--study", "shared",
                                      "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["trials"]["COMPLETE"] == 200 and report["running"] == []
    assert len(report["complete_by_worker"]) == 2
    assert sum(report["complete_by_worker"].values()) == 200


@pytest.mark.slow
def test_four_workers_starting_together_share_one_study(tmp_path, postgres_url):
    study = run_workers(tmp_path, postgres_url, 24, count=4)
    summaries = optuna.get_all_study_summaries(study._storage)
    assert [s.study_name for s in summaries] == ["shared"]
    assert len(study.get_trials(states=(COMPLETE,))) == 24
    assert sorted(t.user_attrs["baseline"] for t in study.trials
                  if "baseline" in t.user_attrs) == sorted(BASELINES)


@pytest.mark.slow
def test_two_workers_on_mysql(tmp_path, mysql_url):
    check_exact(run_workers(tmp_path, mysql_url, 40), 40)


@pytest.mark.slow
def test_two_workers_on_a_journal_file(tmp_path):
    storage = f"journal:{tmp_path / 'study.log'}"
    check_exact(run_workers(tmp_path, storage, 60), 60)


@pytest.mark.parametrize("kind", ["journal", "postgres",
                                  pytest.param("mysql", marks=pytest.mark.slow)])
def test_workers_joining_at_once_queue_each_missing_point_once(kind, toy_table, tmp_path,
                                                               request, monkeypatch):
    """Two workers resume a study made with 2 of its 8 reference points queued, with a
    larger budget: while the first queues what is missing, the second waits (it is still
    waiting a second later), then finds nothing missing."""
    from dse.storage.storage import open_storage
    url = (f"journal:{tmp_path / 'study.log'}" if kind == "journal"
           else request.getfixturevalue(f"{kind}_url"))
    problem = toy_problem(toy_table)

    def join(budget: int) -> None:  # a worker of its own: its own storage and connections
        open_ledger(name="shared", storage=open_storage(url), identity={"a": 1},
                    problem=problem, budget=budget)

    join(2)
    queueing, go = threading.Event(), threading.Event()
    enqueue = optuna.Study.enqueue_trial

    def first_enqueue_waits(self, *args, **kwargs):
        if threading.current_thread().name == "first" and not queueing.is_set():
            queueing.set()
            go.wait()
        return enqueue(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", first_enqueue_waits)
    first = threading.Thread(target=join, args=(12,), name="first")
    second = threading.Thread(target=join, args=(12,), name="second")
    first.start()
    try:
        assert queueing.wait(60)  # the first holds the lock and is about to queue
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()  # it waits for the lock
    finally:
        go.set()
        first.join(60)
        if second.ident is not None:
            second.join(60)
    labels = [t.user_attrs.get("baseline") or ("safe", t.user_attrs.get("safe_dram_of"))
              for t in load(url).trials]
    assert len(labels) == 8 and len(set(labels)) == 8


def slow_args(trials: int) -> list[str]:
    return ["--objectives", "accuracy,latency", "--accuracy-estimator",
            "slow_estimator:estimate", "--trials", str(trials), "--heartbeat-interval", "1",
            "--grace-period", "3"]


def wait_for_running(storage: str, pid: int, deadline_s: float = 60) -> None:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            if any(t.state == optuna.trial.TrialState.RUNNING
                   and t.user_attrs.get("worker", {}).get("pid") == pid
                   for t in load(storage).trials):
                return
        except KeyError:
            pass
        time.sleep(0.2)
    raise AssertionError("the worker never started a trial")


@pytest.mark.slow
def test_a_killed_worker_trial_is_failed_and_retried(tmp_path, postgres_url):
    env = {"DSE_TEST_ESTIMATOR_S": "0.8"}
    survivor = worker(tmp_path, postgres_url, *slow_args(14), "--worker", "0", env=env)
    victim = worker(tmp_path, postgres_url, *slow_args(14), "--worker", "1", env=env)
    wait_for_running(postgres_url, victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    finish(survivor)
    study = load(postgres_url)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert any(t.user_attrs.get("worker", {}).get("pid") == victim.pid for t in failed)
    retried = [t for t in study.trials if "failed_trial" in t.system_attrs]
    assert retried and all(t.state == COMPLETE for t in retried)
    assert len(study.get_trials(states=(COMPLETE,))) == 14
    summary = (tmp_path / "shared" / "trials.csv").read_text().splitlines()
    assert sum(",COMPLETE," in line for line in summary) == 14


@pytest.mark.slow
def test_sigterm_fails_the_running_trial_and_exits_143(tmp_path, postgres_url):
    process = worker(tmp_path, postgres_url, *slow_args(50), env={"DSE_TEST_ESTIMATOR_S": "2"})
    wait_for_running(postgres_url, process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    study = load(postgres_url)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.FAIL in states


@pytest.mark.slow
def test_a_second_worker_on_sqlite_is_refused(tmp_path):
    import fcntl
    database = tmp_path / "shared" / "study.db"
    database.parent.mkdir(parents=True)
    with open(f"{database}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = worker(tmp_path, f"sqlite:///{database}", "--objectives", "latency,energy",
                         "--trials", "5")
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("dse: error: another dse worker") and "SQLite serves one" in last
