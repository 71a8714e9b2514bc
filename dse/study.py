"""Optuna study: samplers by name, storage by URL, creation or resumption, baselines.

A study is identified by its name; its user attribute ``dse_config`` holds the settings that
define it (network, dataset, hardware, DRAM, objectives, constraints, probe). Opening an
existing study with other settings is an error; opening it with the same ones resumes it.
The baselines are enqueued once, when the study is created.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.storages import RetryHeartbeatStaleTrialCallback

from dse.objectives import OBJECTIVES, Context, evaluate, objective_values
from dse.results import constraints_of
from dse.space import candidate_params, suggest_candidate
from dse.runner import HEARTBEAT_ATTR, SignalGuard, requeue
from dse.storage import BatchedRDBStorage, batched
from hw_models.errors import ConfigError
from hw_models.mapping import HEURISTICS

BASELINES = ("all-digital", "all-analog", "diana-heuristic", "min-latency")
CONFIG_ATTR = "dse_config"
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")  # Optuna >= 5


def _legacy_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna 4.x reads constraints through ``constraints_func``."""
    return list(constraints_of(trial).values())


def _constraints_kw() -> dict[str, Any]:
    return {} if HAS_SET_CONSTRAINT else {"constraints_func": _legacy_constraints}


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise ConfigError("sampler 'gp' needs scipy: pip install 'dse[gp]'") from None
    return optuna.samplers.GPSampler(seed=seed, **_constraints_kw())


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                   **_constraints_kw()),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, **_constraints_kw()),
    "nsga3": lambda seed: optuna.samplers.NSGAIIISampler(seed=seed, **_constraints_kw()),
    "gp": _gp,
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")
    return SAMPLERS[name](seed)


def default_study_name(network: str, dataset: str, hw: str, dram: str) -> str:
    parts = [Path(part).stem if part.endswith(".toml") else part
             for part in (network, dataset, hw, dram)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def default_storage_url(results_dir: str, study_name: str) -> str:
    return f"sqlite:///{Path(results_dir) / study_name / 'study.db'}"


HEARTBEAT_INTERVAL_S = 30   # a live worker refreshes its running trial this often
GRACE_PERIOD_S = 120        # a trial silent for this long belonged to a dead worker
MAX_RETRY = 3               # a dead worker's trial is retried this many times
CONFIG_WAIT_S = 60          # how long a joining worker waits for the creator to finish
STORAGE_ATTEMPTS = 5


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
        from optuna.storages.journal import JournalFileBackend
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
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


def _creation_race(exc: Exception) -> bool:
    text = str(exc)
    return any(sign in text for sign in ("already exists", "UNIQUE constraint failed",
                                          "duplicate key", "Duplicate entry"))


def open_study(*, name: str, storage: Any, sampler: optuna.samplers.BaseSampler,
               identity: dict[str, Any], context: Context) -> tuple[optuna.Study, bool]:
    """Create the study ``name``, or join it if it exists (checking its settings).

    Safe when many workers start at once: the database lets exactly one of them create the
    study; that one enqueues the baselines and then stores the settings, which the others
    wait for. Returns the study and whether this call created it.
    """
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=context.directions)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        _check_identity(study, name, identity)
        return study, False
    study.set_user_attr("objectives", {key: {"direction": OBJECTIVES[key][0],
                                             "column": OBJECTIVES[key][1]}
                                       for key in context.objectives})
    study.set_user_attr("units", {"latency_s": "s", "energy_j": "J", "dram_energy_j": "J",
                                  "compute_energy_j": "J", "accuracy": "fraction"})
    enqueue_baselines(study, context)
    study.set_user_attr(CONFIG_ATTR, identity)  # last: tells joining workers it is ready
    return study, True


def _check_identity(study: optuna.Study, name: str, identity: dict[str, Any]) -> None:
    deadline = time.monotonic() + CONFIG_WAIT_S
    while (stored := study.user_attrs.get(CONFIG_ATTR)) is None:
        if time.monotonic() > deadline:
            raise ConfigError(f"study '{name}' exists but its creator never finished setting "
                              "it up; delete it or use another --study")
        time.sleep(0.2)
    stored, identity = _comparable(stored), _comparable(identity)
    if stored != identity:
        differing = sorted(k for k in set(identity) | set(stored)
                           if stored.get(k) != identity.get(k))
        raise ConfigError(f"study '{name}' exists with other settings ({', '.join(differing)}"
                          "); pass --study NEW_NAME or the original settings")


def _comparable(identity: dict[str, Any]) -> dict[str, Any]:
    """Presets compare by file contents: 'diana' and the path of its file are the same."""
    comparable = dict(identity)
    for key in ("hw", "dram"):
        if comparable.get(f"{key}_sha256") is not None:
            comparable[key] = comparable.pop(f"{key}_sha256")
    return comparable


def enqueue_baselines(study: optuna.Study, context: Context) -> None:
    space = context.space
    for name in BASELINES:
        n_analog = HEURISTICS[name](space.table, context.soc)
        study.enqueue_trial(candidate_params(space, n_analog), user_attrs={"baseline": name})


def make_objective(context: Context, *, budget: int | None = None,
                   guard: SignalGuard | None = None
                   ) -> Callable[[optuna.trial.Trial], list[float]]:
    """The Optuna objective; with a ``budget``, a trial that would exceed the study's total of
    complete trials is pruned before any work (marked ``surplus``). With a ``guard``, signals
    act at once during the evaluation (cost model and probe) and, where the storage collects
    the trial's writes for one transaction, during sampling; never during a write."""
    interruptible = guard.interruptible if guard is not None else contextlib.nullcontext

    def objective(trial: optuna.trial.Trial) -> list[float]:
        # storage time matters on a shared database: each block is one transaction
        with batched(trial.study) as collecting:
            try:
                trial.set_user_attr("worker", worker_identity())
                surplus = budget is not None and ahead_of(trial) >= budget
                if surplus:
                    trial.set_user_attr("surplus", True)
                else:
                    with interruptible() if collecting else contextlib.nullcontext():
                        candidate = suggest_candidate(trial, context.space)
            finally:
                if guard is not None:
                    guard.hold()  # the batch commits next: no signal may cut it
        if surplus:
            raise optuna.TrialPruned("the study's trial budget is reached")
        with interruptible():
            evaluation = evaluate(candidate, context)
        if guard is not None:
            guard.hold()
        with batched(trial.study):
            trial.set_user_attr("metrics", {**evaluation.metrics, "probed": evaluation.probed,
                                            "cost_seconds": evaluation.cost_seconds,
                                            "probe_seconds": evaluation.probe_seconds,
                                            "constraints": evaluation.constraints})
            set_constraints(trial, evaluation.constraints)
        return objective_values(evaluation, context)
    return objective


class OrphanCheck:
    """Fails the RUNNING trials whose worker is gone, on storages without Optuna's
    heartbeats; calling it returns how many it failed.

    On SQLite (one worker at a time, under a file lock: this one) every RUNNING trial was
    left by a worker that died. On a journal file, a trial whose heartbeat (written by its
    worker's runner) has not changed for ``grace_period_s`` as timed by this checker's own
    clock (so clock skew between nodes and a stalled file lock do not count; a fresh
    checker waits a grace period before it judges), or whose worker ran in this host's
    process namespace and no longer exists. A failed trial that came from the queue (a
    baseline, a retry) goes back to it.
    """

    def __init__(self, storage_url: str, grace_period_s: float = GRACE_PERIOD_S) -> None:
        self.sqlite = sqlite_path(storage_url) is not None
        self.journal = journal_path(storage_url) is not None
        self.grace_period_s = grace_period_s
        self._seen: dict[int, tuple[Any, float]] = {}  # trial id: (beat, when it was seen)

    def __call__(self, study: optuna.Study) -> int:
        if not (self.sqlite or self.journal):
            return 0
        now_s = time.monotonic()
        failed = 0
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        self._seen = {key: value for key, value in self._seen.items()
                      if key in {t._trial_id for t in running}}
        for trial in running:
            if not (self.sqlite or self._silent(trial, now_s)
                    or _dead_here(trial.user_attrs.get("worker", {}))):
                continue
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                                   "its worker stopped without finishing it")
                study._storage.set_trial_state_values(trial._trial_id,
                                                      optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile, or failed by another worker
            requeue(study, trial._trial_id, worker_died=True)
            failed += 1
        return failed

    def _silent(self, trial: optuna.trial.FrozenTrial, now_s: float) -> bool:
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != beat:
            self._seen[trial._trial_id] = (beat, now_s)
            return False
        return now_s - seen[1] > self.grace_period_s


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host and pid, and the process namespace in which the pid means
    something (boot id and pid namespace, where the system tells them)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": _PID_NAMESPACE}


def _pid_namespace() -> str | None:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot_id}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


_PID_NAMESPACE = _pid_namespace()


def _dead_here(worker: dict[str, Any]) -> bool:
    """Whether ``worker`` ran in this host's process namespace and is gone."""
    if (_PID_NAMESPACE is None or worker.get("pidns") != _PID_NAMESPACE
            or worker.get("host") != socket.gethostname()):
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def ahead_of(trial: optuna.trial.Trial) -> int:
    """Complete trials plus running ones numbered before ``trial`` (those go first)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    return sum(1 for other in trial.study.get_trials(deepcopy=False, states=states)
               if other.state == optuna.trial.TrialState.COMPLETE
               or other.number < trial.number)


def set_constraints(trial: optuna.trial.Trial, constraints: dict[str, float]) -> None:
    """For the samplers (Optuna >= 5; 4.x reads them from the metrics attribute)."""
    if HAS_SET_CONSTRAINT:
        for key, value in constraints.items():
            trial.set_constraint(key, value)
