"""Storages by URL, the SQLite single-writer lock, and batched trial writes."""
from __future__ import annotations

import re
import threading

import optuna
import pytest
import sqlalchemy

from dse.engines.optuna.storage import BatchedRDBStorage, batched, open_storage
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
    trial.set_constraint("drop", -1.0)
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
    assert stored.user_attrs == {"worker": {"pid": 1}} and stored.constraints == {"drop": -1.0}


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
