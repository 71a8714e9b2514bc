"""A study attribute written only if what the study holds allows it, read and written as one
step under the storage's own lock, so that of workers claiming the same thing at once,
exactly one wins (``dse confirm``'s claim of a point).

A database locks the study's row for the transaction (as creating a trial does); a journal
file holds its lock file while the file is read to its end and the record is appended.
Other storages (in memory) serve one process, under a lock of this process.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

import optuna
from optuna.storages import JournalStorage, RDBStorage

from dse.storage.journal import CheckedJournalFileBackend
from dse.storage.storage import UNDONE, BatchedRDBStorage, with_retries

Taken = Callable[[dict[str, Any]], bool]  # the study's user attributes -> another holds it
_LOCAL = threading.Lock()


def set_study_attr_unless(study: optuna.Study, key: str, value: Any, taken: Taken) -> bool:
    """Set the study user attribute ``key`` to ``value`` unless ``taken(user_attrs)`` says
    that the study's attributes, read in the same step, forbid it; whether it was set.
    ``value`` should be unique to the caller (a token), so that a write whose database
    connection was lost is recognised."""
    storage = study._storage
    if isinstance(storage, JournalStorage):
        journal = storage._backend  # the file
        if isinstance(journal, CheckedJournalFileBackend):
            with journal.appending():
                return _decide(storage, study._study_id, key, value, taken)
    backend = getattr(storage, "_backend", storage)  # Optuna's cache around an RDB storage
    if isinstance(backend, RDBStorage):
        return _rdb(backend, study._study_id, key, value, taken)
    with _LOCAL:
        return _decide(storage, study._study_id, key, value, taken)


def _decide(storage: Any, study_id: int, key: str, value: Any, taken: Taken) -> bool:
    if taken(storage.get_study_user_attrs(study_id)):
        return False
    storage.set_study_user_attr(study_id, key, value)
    return True


def _rdb(storage: RDBStorage, study_id: int, key: str, value: Any, taken: Taken) -> bool:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    def once() -> bool:
        with _create_scoped_session(storage.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            rows = models.StudyUserAttributeModel.where_study_id(study_id, session)
            if taken({row.key: json.loads(row.value_json) for row in rows}):
                return False
            found = [row for row in rows if row.key == key]
            if found:
                found[0].value_json = json.dumps(value)
            else:
                session.add(models.StudyUserAttributeModel(study_id=study_id, key=key,
                                                           value_json=json.dumps(value)))
        return True

    def settle() -> Any:  # a lost connection: did the write commit?
        stored = RDBStorage.get_study_user_attrs(storage, study_id).get(key)
        return True if stored == value else UNDONE

    if isinstance(storage, BatchedRDBStorage):
        return with_retries(once, where=storage._where, settle=settle)
    return once()
