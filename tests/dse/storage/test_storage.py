"""Storages by URL, the SQLite single-writer lock, and batched trial writes."""
from __future__ import annotations

import datetime
import re
import threading

import optuna
import pytest
import sqlalchemy

from dse.engines.objective import set_constraints
from dse.results.ledger import OPTUNA_CONSTRAINTS
from dse.storage.storage import BatchedRDBStorage, batched, open_storage
from hw_models import ConfigError

State = optuna.trial.TrialState


@pytest.fixture()
def storage(tmp_path):
    storage = BatchedRDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    assert storage.can_batch  # the installed Optuna has the helpers this relies on
    return storage


def _commits(storage) -> list[int]:
    """Counts the transactions that write (reads commit too, writing nothing)."""
    counter, writing = [0], [False]

    def statement(conn, cursor, text, *args):
        writing[0] = writing[0] or text.lstrip().upper().startswith(("INSERT", "UPDATE"))

    def commit(conn):
        counter[0] += writing[0]
        writing[0] = False

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", statement)
    sqlalchemy.event.listen(storage.engine, "commit", commit)
    return counter


def _sample(trial: optuna.trial.Trial) -> dict[str, object]:
    values = {f"n:{i}": trial.suggest_int(f"n:{i}", 0, 16) for i in range(12)}
    values.update({f"flag:{i}": trial.suggest_categorical(f"flag:{i}", [False, True])
                   for i in range(8)})
    values["v"] = trial.suggest_float("v", 0.0, 1.0)
    trial.set_user_attr("worker", {"pid": 1})
    set_constraints(trial, {"latency_over_budget_s": -1.0})  # a system attribute
    return values


def test_a_batch_is_one_transaction_and_everything_is_stored(storage):
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(0))
    trial = study.ask()
    commits = _commits(storage)
    with batched(study):
        sampled = _sample(trial)
    batched_commits = commits[0]
    study.tell(trial, 1.0)
    other = study.ask()
    commits[0] = 0
    _sample(other)  # without a batch: a transaction per write
    assert batched_commits == 1 and commits[0] >= 22
    stored = optuna.load_study(study_name=study.study_name, storage=storage).trials[0]
    assert stored.params == sampled and stored.state == State.COMPLETE
    assert stored.user_attrs == {"worker": {"pid": 1}}
    assert stored.system_attrs[OPTUNA_CONSTRAINTS] == [-1.0]


def test_a_failing_block_still_stores_what_it_sampled(storage):
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with pytest.raises(RuntimeError):
        with batched(study):
            trial.suggest_int("n", 0, 4)
            trial.set_user_attr("note", "before the error")
            raise RuntimeError("boom")
    stored = study.trials[0]
    assert set(stored.params) == {"n"} and stored.user_attrs == {"note": "before the error"}


def test_writes_from_other_threads_are_not_held(storage):
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with batched(study):
        worker = threading.Thread(target=storage.set_trial_user_attr,
                                  args=(trial._trial_id, "beat", 1))
        worker.start()
        worker.join()
        assert storage.get_trial_user_attrs(trial._trial_id) == {"beat": 1}
        trial.set_user_attr("held", True)
        assert "held" not in storage.get_trial_user_attrs(trial._trial_id)
    assert storage.get_trial_user_attrs(trial._trial_id) == {"beat": 1, "held": True}


def test_batches_nest_and_plain_storages_are_left_alone(storage, tmp_path):
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    commits = _commits(storage)
    with batched(study):
        trial.suggest_int("a", 0, 4)
        with batched(study):
            trial.suggest_int("b", 0, 4)
        assert commits[0] == 0
    assert commits[0] == 1 and set(study.trials[0].params) == {"a", "b"}
    memory = optuna.create_study()
    with batched(memory):
        memory_trial = memory.ask()
        memory_trial.suggest_int("a", 0, 4)
    assert set(memory.trials[0].params) == {"a"}


def test_a_batch_keeps_optunas_checks(storage):
    study = optuna.create_study(storage=storage)
    first = study.ask()
    with batched(study):
        first.suggest_int("n", 0, 4)
    study.tell(first, 0.0)
    second = study.ask()
    # 'n' changed kind: refused when the batch commits
    with pytest.raises(ValueError, match="different distribution"):
        with batched(study):
            second.suggest_int("a", 0, 4)
            second.suggest_float("n", 0.0, 1.0)
    assert study.trials[1].params == {}  # the transaction is all or nothing
    study.tell(second, state=State.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        with batched(study):
            storage.set_trial_user_attr(second._trial_id, "late", 1)



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


def test_one_sqlite_worker_whatever_the_url_spelling(tmp_path):
    from dse.storage.storage import single_writer as _single_writer
    database = tmp_path / "study.db"
    with _single_writer(f"sqlite:///{database}"):
        for other in (f"sqlite:///{database}?timeout=60", f"sqlite+pysqlite:///{database}"):
            with pytest.raises(ConfigError, match="SQLite serves one worker"):
                with _single_writer(other):
                    pass


def test_storage_creation_races_are_retried_on_every_database():
    from dse.storage.storage import _creation_race
    assert _creation_race(Exception("(1062, \"Duplicate entry 'v3.2.0.a' for key 'PRIMARY'\")"))
    assert _creation_race(Exception('duplicate key value violates unique constraint "x"'))
    assert not _creation_race(Exception("password authentication failed"))


# -- lost database connections: the retries (a fake failing call; SQLite) ----------------

def _lost_connection(statement: str = "SELECT 1") -> Exception:
    """What Optuna raises when SQLAlchemy finds the server closed the connection."""
    dropped = sqlalchemy.exc.OperationalError(
        statement, {}, Exception("server closed the connection unexpectedly"),
        connection_invalidated=True)
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the "
                                                     "commit.") from dropped
    except optuna.exceptions.StorageInternalError as exc:
        return exc


@pytest.fixture()
def pauses(monkeypatch):
    """The pauses between attempts, recorded instead of slept."""
    from dse.storage import storage as module
    slept: list[float] = []
    monkeypatch.setattr(module, "_sleep", slept.append)
    return slept


class FlakyCall:
    """Fails with a lost connection ``failures`` times, then returns 42."""

    def __init__(self, failures: int, error=_lost_connection) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return 42


def test_a_call_that_lost_its_connection_is_made_again_after_a_growing_pause(pauses):
    from dse.storage.storage import ATTEMPTS, BACKOFF_S, with_retries
    call = FlakyCall(failures=ATTEMPTS - 1)
    assert with_retries(call, where="postgresql://db") == 42
    assert call.calls == ATTEMPTS and len(pauses) == ATTEMPTS - 1
    assert BACKOFF_S * 0.75 <= pauses[0] <= BACKOFF_S * 1.25 < pauses[1]


def test_a_connection_lost_on_every_attempt_is_one_clear_error(pauses):
    from dse.storage.storage import (
        ATTEMPTS,
        StorageConnectionLost,
        shown_url,
        with_retries,
    )
    call = FlakyCall(failures=100)
    where = shown_url("postgresql://dse:secret@dbhost/dse")
    with pytest.raises(StorageConnectionLost) as raised:
        with_retries(call, where=where)
    assert call.calls == ATTEMPTS
    message = str(raised.value)
    assert message == ("the database connection was lost: postgresql://dse:***@dbhost/dse "
                       f"did not answer in {ATTEMPTS} attempts (Exception: server closed the "
                       "connection unexpectedly)")
    assert raised.value.exit_code == 75 and isinstance(raised.value, ConfigError)


@pytest.mark.parametrize("error", [
    lambda: ValueError("not a connection problem"),
    lambda: sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("database is locked")),
    lambda: optuna.exceptions.UpdateFinishedTrialError("finished"),
])
def test_other_errors_are_not_retried(pauses, error):
    from dse.storage.storage import with_retries
    call = FlakyCall(failures=1, error=error)
    with pytest.raises(Exception) as raised:
        with_retries(call, where="postgresql://db")
    assert call.calls == 1 and type(raised.value) is type(error()) and pauses == []


def test_the_drivers_connection_errors_are_recognised():
    import psycopg

    from dse.storage.storage import is_disconnect
    assert is_disconnect(_lost_connection())
    refused = sqlalchemy.exc.OperationalError(None, None, psycopg.OperationalError(
        "connection refused"))  # at connect time: SQLAlchemy does not mark it invalidated
    assert is_disconnect(refused)
    assert is_disconnect(psycopg.errors.AdminShutdown("terminating connection"))
    assert not is_disconnect(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert not is_disconnect(KeyError("no such study"))


def test_a_write_that_committed_before_its_connection_dropped_is_not_made_twice(pauses):
    from dse.storage.storage import UNDONE, with_retries
    stored: list[str] = []

    def write() -> str:
        stored.append("row")
        if len(stored) == 1:
            raise _lost_connection("COMMIT")  # committed, but the answer never came
        return "written"

    assert with_retries(write, where="db", settle=lambda: "found" if stored else UNDONE) \
        == "found"
    assert stored == ["row"]
    stored.clear()
    assert with_retries(FlakyCall(1), where="db", settle=lambda: UNDONE) == 42


def _committed_then_lost(monkeypatch, owner, name):
    """``owner.name`` does its work, then (the first time) reports a lost connection."""
    real, calls = getattr(owner, name), []

    def flaky(*args, **kwargs):
        calls.append(args)
        result = real(*args, **kwargs)
        if len(calls) == 1:
            raise _lost_connection()
        return result
    monkeypatch.setattr(owner, name, flaky)
    return calls


def test_a_new_trial_whose_answer_was_lost_is_found_by_its_token(storage, monkeypatch, pauses):
    from dse.storage.storage import CREATED_ATTR
    study = optuna.create_study(storage=storage)
    calls = _committed_then_lost(monkeypatch, BatchedRDBStorage, "_create_trial_once")
    trial = study.ask()
    study.tell(trial, 1.0)
    assert len(calls) == 1 and len(pauses) == 1  # found, not created again
    [stored] = study.trials
    assert stored.number == trial.number and stored.state == State.COMPLETE
    assert len(stored.system_attrs[CREATED_ATTR]) == 32
    study.enqueue_trial({"x": 1})  # a queued trial is tagged alike
    assert [t.state for t in study.trials] == [State.COMPLETE, State.WAITING]


def test_a_trial_made_from_another_gets_a_token_of_its_own(storage):
    """As Optuna's heartbeat retry does with a failed trial."""
    from dse.storage.storage import CREATED_ATTR
    study = optuna.create_study(storage=storage)
    study.tell(study.ask(), state=State.FAIL)
    failed = study.trials[0]
    copy_id = storage.create_new_trial(study._study_id, template_trial=failed)
    copied = storage.get_trial(copy_id)
    assert copied.state == State.FAIL and copied.number == 1
    assert copied.system_attrs[CREATED_ATTR] != failed.system_attrs[CREATED_ATTR]
    assert CREATED_ATTR in failed.system_attrs  # the template is left as it was


def test_a_state_change_whose_answer_was_lost_is_not_repeated(storage, monkeypatch, pauses):
    from optuna.storages import RDBStorage
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 1})
    calls = _committed_then_lost(monkeypatch, RDBStorage, "set_trial_state_values")
    trial = study.ask()  # WAITING -> RUNNING: committed, then the connection "dropped"
    assert len(calls) == 1 and trial.number == 0 and len(study.trials) == 1
    assert trial.suggest_int("x", 0, 4) == 1
    calls.clear()
    study.tell(trial, 2.0)  # RUNNING -> COMPLETE, alike
    assert len(calls) == 1
    assert [(t.state, t.value) for t in study.trials] == [(State.COMPLETE, 2.0)]


def test_a_state_change_made_by_another_worker_is_not_taken_for_ours(storage, monkeypatch,
                                                                       pauses):
    """The trial was failed a minute ago (another worker found it stale): after the lost
    connection, the call is made again and gets Optuna's answer."""
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    RDBStorage.set_trial_state_values(storage, trial._trial_id, State.FAIL)
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.update(models.TrialModel).values(
            datetime_complete=datetime.datetime.now() - datetime.timedelta(minutes=1)))
    real, lost = RDBStorage.set_trial_state_values, [True]

    def flaky(*args, **kwargs):
        if lost:
            lost.pop()
            raise _lost_connection()
        return real(*args, **kwargs)
    monkeypatch.setattr(RDBStorage, "set_trial_state_values", flaky)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, State.FAIL)
    assert not lost and len(pauses) == 1


def test_a_batch_whose_answer_was_lost_is_not_committed_twice(storage, monkeypatch, pauses):
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(0))
    trial = study.ask()
    calls = _committed_then_lost(monkeypatch, BatchedRDBStorage, "_commit_once")
    with batched(study):
        sampled = _sample(trial)
    assert len(calls) == 1  # a second INSERT of the parameters would fail
    study.tell(trial, 1.0)
    assert study.trials[0].params == sampled


def test_database_storages_check_their_connections_before_use(monkeypatch):
    from optuna.storages import RDBStorage
    given = {}
    monkeypatch.setattr(RDBStorage, "__init__",
                        lambda self, url, *args, **kwargs: given.update(kwargs))
    storage = BatchedRDBStorage("postgresql+psycopg://u:secret@h/db",
                                shown_as="postgresql://u:secret@h/db")
    assert given["engine_kwargs"] == {"pool_pre_ping": True}
    assert storage._where == "postgresql://u:***@h/db"
    given.clear()
    BatchedRDBStorage("sqlite:///study.db")  # one process on a file: nothing to check
    assert "engine_kwargs" not in given
