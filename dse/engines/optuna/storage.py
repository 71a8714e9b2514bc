"""Optuna storages by URL, and fewer database round trips per trial.

``open_storage`` turns ``sqlite:///PATH``, ``postgresql://``, ``mysql://`` and
``journal:PATH`` into an Optuna storage (database storages with heartbeats); passwords are
masked in every message (``shown_url``); a SQLite file serves one worker at a time
(``single_writer``).

Optuna's ``RDBStorage`` commits every sampled parameter and every trial attribute in a
transaction of its own: about 2 ms each on a local PostgreSQL server, 25 or more per
trial for a ResNet-8 design space. ``BatchedRDBStorage.batch()`` collects those writes
for the trial in hand and commits them together in one transaction when the block ends.

Reads inside the block do not see the collected writes (Optuna's cache of parameter
distributions learns a new parameter when it is collected, before it is committed); dse
only batches blocks that write (the sampled parameters, the worker and the metrics), and
Optuna's ``Trial`` keeps its own copy of what it set. A write Optuna refuses (a parameter
whose distribution changed, a trial already finished) raises when the block ends, and
none of the block's writes are kept. If the private Optuna helpers this relies on are
missing (another Optuna version), ``batch()`` changes nothing and every write commits at
once.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import optuna
import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from dse.config import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S
from dse.results.files import check_writable_folder
from hw_models.errors import ConfigError

try:  # private to Optuna: checked, with a fallback to plain writes
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
    _CAN_BATCH = all(hasattr(RDBStorage, name) for name in (
        "_set_trial_param", "_set_trial_param_without_commit", "_set_trial_attr_without_commit"))
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _CAN_BATCH = False


class BatchedRDBStorage(RDBStorage):
    """An ``RDBStorage`` that can commit a trial's parameter and attribute writes at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[Any, ...]] | None = None
        self._batch_thread: int | None = None

    @property
    def can_batch(self) -> bool:
        return _CAN_BATCH

    @contextlib.contextmanager
    def batch(self) -> Iterator[bool]:
        """Collect this thread's trial writes; commit them in one transaction at the end
        (also when the block raises, so that what was sampled is recorded). Yields whether
        writes are collected (False: Optuna lacks the helpers, or an outer batch collects)."""
        if not _CAN_BATCH or self._pending is not None:
            yield self._collecting()
            return
        self._pending, self._batch_thread = [], threading.get_ident()
        try:
            yield True
        finally:
            pending, self._pending, self._batch_thread = self._pending, None, None
            if pending:
                self._commit(pending)

    def _collecting(self) -> bool:
        return self._collected() is not None

    def _collected(self) -> list[tuple[Any, ...]] | None:
        """The list this thread's writes go to while a batch collects them, else None."""
        if threading.get_ident() != self._batch_thread:
            return None
        return self._pending

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: Any, previous_distribution: Any) -> None:
        pending = self._collected()
        if pending is None:
            return super()._set_trial_param(trial_id, param_name, param_value_internal,
                                            distribution, previous_distribution)
        pending.append(("param", trial_id, param_name, param_value_internal,
                        distribution, previous_distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        pending = self._collected()
        if pending is None:
            return super().set_trial_user_attr(trial_id, key, value)
        pending.append(("user", trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        pending = self._collected()
        if pending is None:
            return super().set_trial_system_attr(trial_id, key, value)
        pending.append(("system", trial_id, key, value))

    def _commit(self, pending: list[tuple[Any, ...]]) -> None:
        checked: set[int] = set()  # trials already found and checked to be RUNNING
        with _create_scoped_session(self.scoped_session) as session:
            for kind, trial_id, *rest in pending:
                if kind in ("user", "system"):
                    model = (_models.TrialUserAttributeModel if kind == "user"
                             else _models.TrialSystemAttributeModel)
                    self._set_trial_attr_without_commit(session, model, trial_id, *rest)
                    checked.add(trial_id)
                elif trial_id not in checked or rest[3] is None:
                    self._set_trial_param_without_commit(session, trial_id, *rest)
                    checked.add(trial_id)
                else:  # what that does, less the trial lookup: the rows go in one INSERT
                    name, value, distribution, previous = rest
                    distributions.check_distribution_compatibility(previous, distribution)
                    session.add(_models.TrialParamModel(
                        trial_id=trial_id, param_name=name, param_value=value,
                        distribution_json=distributions.distribution_to_json(distribution)))


@contextlib.contextmanager
def batched(study: optuna.Study) -> Iterator[bool]:
    """``BatchedRDBStorage.batch()`` for the study's storage; nothing for other storages.
    Yields whether the block's trial writes are collected (until the block ends, no write
    reaches the storage)."""
    backend = getattr(study._storage, "_backend", study._storage)
    if isinstance(backend, BatchedRDBStorage):
        with backend.batch() as collecting:
            yield collecting
    else:
        yield False


def default_storage_url(results_dir: str, study_name: str) -> str:
    return f"sqlite:///{Path(results_dir) / study_name / 'study.db'}"


MAX_RETRY = 3               # a dead worker's trial is retried this many times
STORAGE_ATTEMPTS = 5        # opening a new database races with other workers creating it


MASK = "***"


def shown_url(url: str) -> str:
    """The URL with its password masked: for messages and files (config.json)."""
    try:
        parsed = sqlalchemy.engine.make_url(url) if "://" in url else None
    except Exception:  # sqlalchemy raises several kinds for a malformed URL
        return url
    if parsed is None or parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def _masked(text: str, url: str) -> str:
    """``text`` without the URL's password (a driver's message may quote it)."""
    try:
        password = sqlalchemy.engine.make_url(url).password if "://" in url else None
    except Exception:  # sqlalchemy raises several kinds for a malformed URL
        return text
    return text.replace(str(password), MASK) if password else text


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (any driver, any query options), else None."""
    if not url.startswith("sqlite"):
        return None
    try:
        database = sqlalchemy.engine.make_url(url).database
    except Exception:  # sqlalchemy raises several kinds for a malformed URL
        return None
    return Path(database) if database and database != ":memory:" else None


def journal_path(url: str) -> Path | None:
    """The file of a journal storage URL (journal:///abs, journal:rel, or *.log), else None."""
    if url.startswith("journal:"):
        rest = url[len("journal:"):]
        return Path(rest[2:] if rest.startswith("///") else rest)
    if url.endswith(".log") and "://" not in url:
        return Path(url)
    return None


def open_storage(url: str, *, heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S,
                 grace_period_s: int = GRACE_PERIOD_S) -> Any:
    """An Optuna storage for a URL: sqlite:///, postgresql://, mysql://, journal:PATH.

    Database storages (not SQLite) get heartbeats: a trial whose worker stops beating for
    ``grace_period_s`` is marked failed and its parameters are enqueued again.
    """
    given = url
    path = journal_path(url)
    if path is not None:
        return _journal_storage(path, url)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"unknown storage '{url}' (sqlite:///PATH, postgresql://..., "
                          "mysql://..., journal:PATH or a file ending in .log)")
    options: dict[str, Any] = {}
    # the drivers of the extras ([postgres]: psycopg 3, [mysql]: PyMySQL), not SQLAlchemy's
    # defaults (psycopg2, mysqlclient)
    for plain, driver, module, extra in (
            ("postgresql://", "postgresql+psycopg://", "psycopg", "postgres"),
            ("mysql://", "mysql+pymysql://", "pymysql", "mysql")):
        if url.startswith(plain):
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"storage {url} needs the {module} driver: "
                                  f"pip install 'dse[{extra}]'")
            url = driver + url[len(plain):]
    if scheme == "sqlite":
        database = sqlite_path(url)
        if database is not None:
            check_storage_file(database, given)
            database.parent.mkdir(parents=True, exist_ok=True)
    else:
        with warnings.catch_warnings():  # heartbeats and retries are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        options = dict(heartbeat_interval=heartbeat_interval_s, grace_period=grace_period_s,
                       heartbeat_stale_trial_callback=retry)
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return BatchedRDBStorage(url, **options)
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or server
            # processes opening a new database together race to create its tables
            if _creation_race(exc) and attempt + 1 < STORAGE_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = _masked(str(exc).splitlines()[0] if str(exc) else "", given)
            raise ConfigError(f"cannot open storage {shown_url(given)}: {type(exc).__name__}: "
                              f"{reason}") from None
    raise AssertionError("unreachable")


def check_storage_file(path: Path, url: str) -> None:
    """A storage file (SQLite database, journal) is a file, or can be made as one."""
    if path.is_dir():
        raise ConfigError(f"storage {shown_url(url)} names the folder {path}; it must name "
                          "the study's file (a new one is created)")
    if not path.exists():  # an existing file may be read from a read-only folder
        check_writable_folder(path.parent, what="storage folder",
                              hint="pass another --storage")


def _journal_storage(path: Path, url: str) -> optuna.storages.JournalStorage:
    """The journal storage of ``path``; a file that is not an Optuna journal is refused."""
    from optuna.storages.journal import JournalFileBackend
    check_storage_file(path, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the journal is read through here; Optuna raises many kinds for a damaged one
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise ConfigError(f"cannot open journal {path}: {exc.strerror}") from None
    except Exception as exc:
        raise ConfigError(f"journal {path} is damaged or not an Optuna journal "
                          f"({type(exc).__name__}); pass another --storage journal:PATH or "
                          "restore the file") from None


def _creation_race(exc: Exception) -> bool:
    text = str(exc)
    return any(sign in text for sign in ("already exists", "UNIQUE constraint failed",
                                          "duplicate key", "Duplicate entry"))


@contextlib.contextmanager
def single_writer(storage_url: str) -> Iterator[None]:
    """SQLite serves one worker: a second one on the same file is refused with a hint."""
    database = sqlite_path(storage_url)
    if database is None:
        yield
        return
    lock_path = Path(str(database.resolve()) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another dse worker is using {storage_url}; SQLite serves one "
                              "worker: for several, use --storage postgresql://... or "
                              "journal:PATH") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
