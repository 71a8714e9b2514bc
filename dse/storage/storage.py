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

A database connection can drop under a running worker (a server restart, a failover, an
idle connection cut by a firewall, an administrator's ``pg_terminate_backend``). Database
connections are checked before each use (SQLAlchemy's ``pool_pre_ping``: a dead one is
replaced), and every storage call Optuna and dse make that fails with a lost connection is
tried again, ``ATTEMPTS`` times in all, with a growing pause (``with_retries``). Reads and
writes that store the same thing twice (attribute upserts, parameters, heartbeats) are simply
repeated; a write that may have committed before its connection was lost is looked up
first: a new trial carries a token (system attribute ``dse:created``), a state change is
found by its timestamp, a batch by its first parameter. When every attempt fails the call
raises ``StorageConnectionLost``, one line naming the masked URL.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import functools
import importlib.util
import json
import logging
import random
import sys
import threading
import time
import uuid
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import optuna
import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from dse.config import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S
from dse.results.files import check_writable_folder
from dse.signals import deferred
from hw_models.errors import ConfigError

try:  # private to Optuna: checked, with a fallback to plain writes
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
    _CAN_BATCH = all(hasattr(RDBStorage, name) for name in (
        "_set_trial_param", "_set_trial_param_without_commit", "_set_trial_attr_without_commit"))
    _CAN_TAG = hasattr(RDBStorage, "_get_prepared_new_trial")  # new trials carry a token
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _CAN_BATCH = _CAN_TAG = False

T = TypeVar("T")
logger = logging.getLogger(__name__)

ATTEMPTS = 3           # a storage call that loses its database connection is made this often
CREATE_ATTEMPTS = 5    # creating a trial also retries lock timeouts and deadlocks, as Optuna does
BACKOFF_S = 0.5        # the pause before the second attempt, doubled before each later one
CREATED_ATTR = "dse:created"           # trial system attribute: the token of its creation
_STAMP_SLACK = timedelta(seconds=1)    # MySQL stores whole seconds
_MYSQL_DISCONNECTS = {1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031}
_sleep = time.sleep


class StorageConnectionLost(ConfigError):
    """A database storage call lost its connection on every attempt (one line, masked URL;
    ``dse`` exits with ``exit_code``, EX_TEMPFAIL: try again later)."""

    exit_code = 75


def _lost(where: str, failure: BaseException, attempts: int) -> StorageConnectionLost:
    cause = _driver_error(failure)
    reason = ": ".join([type(cause).__name__] + str(cause).split("\n", 1)[:1]).rstrip(": ")
    return StorageConnectionLost(f"the database connection was lost: {where} did not answer "
                                 f"in {attempts} attempts ({' '.join(reason.split())})")


class _Undone:
    """What a ``settle`` function returns when the failed write did not take effect."""


UNDONE: Any = _Undone()


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` (or what it came from) is a database connection lost or refused:
    a connection SQLAlchemy invalidated, or a psycopg / PyMySQL connection error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            if current.connection_invalidated or _driver_disconnect(current.orig):
                return True
        elif _driver_disconnect(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _driver_disconnect(error: BaseException | None) -> bool:
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        return True
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(error, pymysql.err.OperationalError):
        return bool(error.args) and error.args[0] in _MYSQL_DISCONNECTS
    return False


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own error under Optuna's and SQLAlchemy's wrappers (for the message)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.orig is not None:
            return current.orig
        if current.__cause__ is None:
            return current
        current = current.__cause__
    return error


def with_retries(call: Callable[[], T], *, where: str, settle: Callable[[], Any] | None = None,
                 attempts: int = ATTEMPTS, retry_also: tuple[type[Exception], ...] = ()) -> T:
    """``call()``, made again when it fails with a lost database connection (or an error of
    ``retry_also``): ``attempts`` in all, pausing ``BACKOFF_S``, then twice as long, each
    with jitter (workers cut off together do not come back in step).

    A write that may have committed before its connection went is not blindly repeated:
    before each new attempt ``settle()`` looks at what is stored and returns the call's
    result if the write took effect, else ``UNDONE``. When every attempt lost its
    connection, raises ``StorageConnectionLost`` naming ``where`` (a masked URL).
    """
    failure: Exception | None = None
    for attempt in range(attempts):
        try:
            if failure is not None:
                _sleep(BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))
                if settle is not None:
                    outcome = settle()
                    if outcome is not UNDONE:
                        return outcome
            return call()
        except Exception as exc:
            if not (is_disconnect(exc) or isinstance(exc, retry_also)):
                raise
            failure = exc
    assert failure is not None
    if not is_disconnect(failure):
        raise failure
    raise _lost(where, failure, attempts) from failure


class _HeldRecords(logging.Filter):
    """Holds back what Optuna's RDB storage logs from a thread while ``holding()``: its
    multi-line warning about a failed query ("Falling back to a slower alternative") is
    dropped when the call failed on a lost connection (it is retried), else logged."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        held = getattr(self._local, "held", None)
        if held is None:
            return True
        held.append(record)
        return False

    def holding(self, call: Callable[[], T]) -> T:
        held: list[logging.LogRecord] = []
        self._local.held = held
        try:
            result = call()
        except Exception as exc:
            self._local.held = None
            if not is_disconnect(exc):
                _replay(held)
            raise
        self._local.held = None
        _replay(held)
        return result


def _replay(records: list[logging.LogRecord]) -> None:
    for record in records:
        _RDB_LOGGER.handle(record)


_RDB_LOGGER = logging.getLogger("optuna.storages._rdb.storage")
_HELD = _HeldRecords()
_RDB_LOGGER.addFilter(_HELD)


class BatchedRDBStorage(RDBStorage):
    """An ``RDBStorage`` that can commit a trial's parameter and attribute writes at once,
    and that survives lost database connections (see the module's docstring).

    ``shown_as``: the URL as the user gave it, for messages (masked).
    """

    def __init__(self, url: str, *args: Any, shown_as: str | None = None,
                 **kwargs: Any) -> None:
        if not url.startswith("sqlite"):  # a connection the server dropped is replaced
            kwargs["engine_kwargs"] = {"pool_pre_ping": True, **(kwargs.get("engine_kwargs")
                                                                  or {})}
        self._where = shown_url(shown_as or url)
        super().__init__(url, *args, **kwargs)
        self._pending: list[tuple[Any, ...]] | None = None
        self._batch_thread: int | None = None

    def _retry(self, call: Callable[[], T], **options: Any) -> T:
        with deferred():  # a signal never cuts a storage call half-way
            return with_retries(call, where=self._where, **options)

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
        except BaseException as stopped:
            pending, self._pending, self._batch_thread = self._pending, None, None
            if pending:
                self._commit_despite(pending, stopped)
            raise
        pending, self._pending, self._batch_thread = self._pending, None, None
        if pending:
            self._commit(pending)

    def _commit_despite(self, pending: list[tuple[Any, ...]], stopped: BaseException) -> None:
        """Commit what the block collected before it raised ``stopped``. A signal may have
        cut a read of this thread's half-way, whose connection then keeps SQLite locked
        until the exception unwinds: a commit refused then is given up (the trial is failed
        next), so that the signal, not the storage, says why the run stopped."""
        try:
            self._commit(pending)
        except Exception as failed:
            if isinstance(stopped, Exception):
                raise
            logger.debug("the writes of a trial stopped by %s are dropped: %s",
                         type(stopped).__name__, failed)

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
        if pending is None:  # a repeated INSERT of a parameter is ignored by Optuna
            return self._retry(lambda: RDBStorage._set_trial_param(
                self, trial_id, param_name, param_value_internal, distribution,
                previous_distribution))
        pending.append(("param", trial_id, param_name, param_value_internal,
                        distribution, previous_distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        pending = self._collected()
        if pending is None:  # an upsert: writing it twice is harmless
            return self._retry(lambda: RDBStorage.set_trial_user_attr(self, trial_id, key,
                                                                      value))
        pending.append(("user", trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        pending = self._collected()
        if pending is None:
            return self._retry(lambda: RDBStorage.set_trial_system_attr(self, trial_id, key,
                                                                        value))
        pending.append(("system", trial_id, key, value))

    # -- writes that may have committed before their connection was lost ----------------

    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        """Optuna's, made once per attempt, the new trial tagged with a token that tells
        whether an attempt whose connection was lost created it."""
        if not _CAN_TAG:  # pragma: no cover - depends on the installed Optuna
            return super()._create_new_trial(study_id, template_trial)
        token = uuid.uuid4().hex
        return self._retry(lambda: self._create_trial_once(study_id, template_trial, token),
                           settle=lambda: self._trial_created_by(study_id, token),
                           attempts=CREATE_ATTEMPTS,
                           retry_also=(optuna.exceptions.StorageInternalError,))

    def _create_trial_once(self, study_id: int, template_trial: FrozenTrial | None,
                           token: str) -> FrozenTrial:
        """What ``RDBStorage._create_new_trial`` does in one attempt, plus the token (a
        template made from another trial, e.g. a failed one to retry, has its own)."""
        if template_trial is not None and CREATED_ATTR in template_trial.system_attrs:
            template_trial = copy.copy(template_trial)
            template_trial.system_attrs = {key: value for key, value
                                           in template_trial.system_attrs.items()
                                           if key != CREATED_ATTR}
        with _create_scoped_session(self.scoped_session) as session:
            # the study's row is locked: trial numbers are counted, not drawn
            _models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            trial: Any = self._get_prepared_new_trial(study_id, template_trial, session)
            session.add(_models.TrialSystemAttributeModel(
                trial_id=trial.trial_id, key=CREATED_ATTR, value_json=json.dumps(token)))
            if template_trial is not None:
                frozen = copy.deepcopy(template_trial)
                frozen.number, frozen.datetime_start = trial.number, trial.datetime_start
                frozen._trial_id = trial.trial_id
            else:
                frozen = FrozenTrial(number=trial.number, state=trial.state, value=None,
                                     values=None, datetime_start=trial.datetime_start,
                                     datetime_complete=None, params={}, distributions={},
                                     user_attrs={}, system_attrs={}, intermediate_values={},
                                     trial_id=trial.trial_id)
        frozen.system_attrs[CREATED_ATTR] = token
        return frozen

    def _trial_created_by(self, study_id: int, token: str) -> Any:
        attr, trial = _models.TrialSystemAttributeModel, _models.TrialModel
        with _create_scoped_session(self.scoped_session) as session:
            found = (session.query(attr.trial_id)
                     .join(trial, trial.trial_id == attr.trial_id)
                     .filter(trial.study_id == study_id, attr.key == CREATED_ATTR,
                             attr.value_json == json.dumps(token))
                     .first())
        if found is None or found[0] is None:
            return UNDONE
        return RDBStorage.get_trial(self, found[0])

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        """Optuna's; after a lost connection, a trial found in ``state`` since this call
        began (its start or completion time) was changed by it."""
        since = datetime.now() - _STAMP_SLACK

        def settle() -> Any:
            stored = RDBStorage.get_trial(self, trial_id)
            stamp = (stored.datetime_start if state == TrialState.RUNNING
                     else stored.datetime_complete)
            if (stored.state == state and stamp is not None
                    and since <= stamp <= datetime.now() + _STAMP_SLACK):
                return True
            return UNDONE  # not done: made again (Optuna's answer if another worker did it)

        return self._retry(lambda: RDBStorage.set_trial_state_values(self, trial_id, state,
                                                                     values), settle=settle)

    def _commit(self, pending: list[tuple[Any, ...]]) -> None:
        """The batch in one transaction; after a lost connection, its first parameter
        tells whether it committed (attribute writes alone are upserts: made again)."""
        params = [(trial_id, name) for kind, trial_id, name, *_ in pending if kind == "param"]

        def settle() -> Any:
            if not params:
                return UNDONE
            (trial_id, name), model = params[0], _models.TrialParamModel
            with _create_scoped_session(self.scoped_session) as session:
                stored = (session.query(model.param_id)
                          .filter(model.trial_id == trial_id, model.param_name == name)
                          .first())
            return UNDONE if stored is None else None

        self._retry(lambda: self._commit_once(pending), settle=settle)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._retry(lambda: _HELD.holding(
            lambda: RDBStorage._get_trials(self, *args, **kwargs)))

    def _commit_once(self, pending: list[tuple[Any, ...]]) -> None:
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


def _retried(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: BatchedRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._retry(lambda: method(self, *args, **kwargs))
    return call


# reads, and writes whose repetition stores the same thing (upserts; a repeated heartbeat
# or intermediate value); the methods of RDBStorage not listed call these
for _name in ("get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
              "get_study_user_attrs", "get_study_system_attrs", "get_all_studies",
              "get_trial", "get_trial_param", "get_trial_user_attrs", "get_trial_system_attrs",
              "get_trial_id_from_study_id_trial_number", "_get_best_trial_id",
              "_get_stale_trial_ids", "record_heartbeat", "set_study_user_attr",
              "set_study_system_attr", "set_trial_intermediate_value"):
    setattr(BatchedRDBStorage, _name, _retried(_name))


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


DEFAULT_DATABASE = "study.db"  # a study's SQLite file in its results folder, by default


def default_storage_url(results_dir: str, study_name: str) -> str:
    return f"sqlite:///{Path(results_dir) / study_name / DEFAULT_DATABASE}"


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


def _sqlite_database(url: str) -> str | None:
    """The database part of a SQLite URL ("" when it names none), None for any other or a
    malformed URL."""
    if not url.startswith("sqlite"):
        return None
    try:
        return sqlalchemy.engine.make_url(url).database or ""
    except Exception:  # sqlalchemy raises several kinds for a malformed URL
        return None


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (any driver, any query options), else None."""
    database = _sqlite_database(url)
    return Path(database) if database and database != ":memory:" else None


def in_memory(url: str) -> bool:
    """Whether a SQLite URL names a database in memory (``sqlite://``, ``:memory:``, a
    ``mode=memory`` URI), which ends with the process."""
    database = _sqlite_database(url)
    return database is not None and (database in ("", ":memory:") or "mode=memory" in url)


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
    timing = dict(heartbeat_interval_s=heartbeat_interval_s, grace_period_s=grace_period_s)
    if path is not None:
        return _timed(_journal_storage(path, url), Liveness("journal", **timing))
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
                return _timed(BatchedRDBStorage(url, shown_as=given, **options),
                              Liveness("sqlite" if scheme == "sqlite" else "database",
                                       **timing))
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or server
            # processes opening a new database together race to create its tables
            if _creation_race(exc) and attempt + 1 < STORAGE_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = _masked(str(exc).splitlines()[0] if str(exc) else "", given)
            raise ConfigError(f"cannot open storage {shown_url(given)}: {type(exc).__name__}: "
                              f"{reason}") from None
    raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True)
class Liveness:
    """How a storage tells that a trial's worker is gone: ``kind`` "sqlite" (one worker at
    a time, under a file lock), "journal" (dse's heartbeat attribute, every
    ``heartbeat_interval_s``) or "database" (Optuna's heartbeats); a worker silent for
    ``grace_period_s`` counts as dead."""

    kind: str
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    grace_period_s: float = GRACE_PERIOD_S


_LIVENESS = "_dse_liveness"


def _timed(storage: T, liveness: Liveness) -> T:
    setattr(storage, _LIVENESS, liveness)
    return storage


def liveness_of(study: optuna.Study) -> Liveness:
    """The liveness of the study's storage: as ``open_storage`` opened it, else told by the
    storage's kind with the default timings."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna's cache around an RDB storage
    for each in (storage, backend):
        if hasattr(each, _LIVENESS):
            return getattr(each, _LIVENESS)
    if isinstance(backend, optuna.storages.JournalStorage):
        return Liveness("journal")
    if isinstance(backend, RDBStorage) and backend.url.startswith("sqlite"):
        return Liveness("sqlite")
    return Liveness("database" if isinstance(backend, RDBStorage) else "memory")


def check_storage_file(path: Path, url: str) -> None:
    """A storage file (SQLite database, journal) is a file, or can be made as one."""
    if path.is_dir():
        raise ConfigError(f"storage {shown_url(url)} names the folder {path}; it must name "
                          "the study's file (a new one is created)")
    if path.exists() and not path.is_file():  # a device (/dev/null), a pipe, a socket
        raise ConfigError(f"storage {shown_url(url)} names {path}, which is not a regular "
                          "file; it must name the study's file (a new one is created)")
    if not path.exists():  # an existing file may be read from a read-only folder
        check_writable_folder(path.parent, what="storage folder",
                              hint="pass another --storage")


def _journal_storage(path: Path, url: str) -> optuna.storages.JournalStorage:
    """The journal storage of ``path``; a file that is not an Optuna journal is refused."""
    from dse.storage.journal import open_journal
    check_storage_file(path, url)
    try:  # the journal is read through here; Optuna raises many kinds for a damaged one
        return open_journal(path)
    except ConfigError:  # a torn journal: its own message, with the repair
        raise
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
