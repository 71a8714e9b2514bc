"""A lock one worker of a study holds at a time, wherever the workers run, for a step that
reads the study and then writes what it found missing (a check, then a write, is not atomic
in any Optuna storage).

Each storage locks in its own way: a PostgreSQL advisory lock or a MySQL named lock, held
by a connection of the lock's own; a lock file beside a journal file (Optuna's own kind, made
with ``O_EXCL``, which NFS honours; one left by a killed worker is taken over after
``JOURNAL_GRACE_S``). SQLite serves one worker at a time (``single_writer``) and a storage in
memory one process: nothing is locked there.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileOpenLock

from hw_models.errors import ConfigError

JOURNAL_GRACE_S = 30     # a journal's lock file older than this is a dead worker's
DATABASE_WAIT_S = 600    # how long a worker waits for MySQL's named lock


@contextlib.contextmanager
def exclusive(study: optuna.Study, purpose: str) -> Iterator[None]:
    """Hold the study's lock for ``purpose`` (a short word) while the block runs."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna's cache around an RDB storage
    if isinstance(storage, JournalStorage):
        path = getattr(backend, "_file_path", None)
        if path is not None:
            with _journal_lock(f"{path}.{purpose}"):
                yield
            return
    if isinstance(backend, RDBStorage) and backend.engine.dialect.name in ("postgresql",
                                                                           "mysql"):
        with _database_lock(backend.engine, f"dse:{purpose}:{study._study_id}"):
            yield
        return
    yield


@contextlib.contextmanager
def _journal_lock(base: str) -> Iterator[None]:
    lock = JournalFileOpenLock(base, grace_period=JOURNAL_GRACE_S)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _database_lock(engine: sqlalchemy.engine.Engine, name: str) -> Iterator[None]:
    """A lock of the database server, named by ``name`` and the database; released when
    the block ends (or when its connection is lost)."""
    database = engine.url.database or ""
    digest = hashlib.sha256(f"{database}\0{name}".encode()).digest()
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(digest[:8], "big", signed=True)
            take, free = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
            arguments: dict[str, Any] = {"key": key}
        else:  # MySQL's names are server-wide, of 64 characters at most
            take, free = "SELECT GET_LOCK(:key, :wait_s)", "SELECT RELEASE_LOCK(:key)"
            arguments = {"key": f"dse-{digest.hex()[:40]}", "wait_s": DATABASE_WAIT_S}
        taken = connection.execute(sqlalchemy.text(take), arguments).scalar()
        connection.commit()
        if engine.dialect.name == "mysql" and taken != 1:
            raise ConfigError(f"another worker held the study's lock ({name}) for "
                              f"{DATABASE_WAIT_S} s; try again")
        try:
            yield
        finally:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # a lost connection
                connection.execute(sqlalchemy.text(free), arguments)   # has freed it
                connection.commit()
