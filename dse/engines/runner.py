"""Run one Optuna trial at a time so that a signal never leaves a trial RUNNING.

``study.optimize`` lets a signal's exception land anywhere: inside ``study.ask`` after the
trial row is written, inside the final ``tell``, or halfway through a database commit, which
can leave the connection unusable. The trial then stays RUNNING until a heartbeat fails it
(and SQLite has none). Here SIGTERM and SIGINT are held while the storage is written and
act at once only inside ``dse.signals.SignalGuard.interruptible()`` blocks (the evaluation of a
candidate, waiting for other workers); the trial in hand is then told FAIL before the
exception goes on. The runner also beats for journal files, which Optuna gives no
heartbeat.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from typing import Any, Callable, Sequence

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from dse.engines.objective import BatchObjective
from dse.results.ledger import FAIL_REASON_ATTR
from dse.signals import SignalGuard
from dse.storage.liveness import HEARTBEAT_ATTR, requeue

logger = logging.getLogger(__name__)

Objective = Callable[[optuna.trial.Trial], Sequence[float]]
Callback = Callable[[optuna.Study, FrozenTrial], None]


class _Heartbeat:
    """Records the trial's heartbeat every interval: the storage's own (database storages,
    as ``study.optimize`` would), else, given ``fallback_interval_s``, the time of each beat
    as a trial attribute (journal files, which Optuna gives no heartbeat). ``attribute``:
    the attribute on every storage (a trial Optuna must not fail and retry as its own: a
    unit's claim, ``dse.engines.units``)."""

    def __init__(self, storage: Any, trial_id: int, fallback_interval_s: float | None, *,
                 attribute: bool = False) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interval_s = None if attribute else _own_heartbeat_interval_s(storage)
        beat = self._record
        if interval_s is None and fallback_interval_s is not None:
            interval_s, beat = fallback_interval_s, self._write_time
        if interval_s is not None:
            self._thread = threading.Thread(target=self._run, args=(beat, interval_s),
                                            daemon=True, name=f"dse-heartbeat-{trial_id}")
            self._thread.start()

    def _record(self) -> None:
        self._storage.record_heartbeat(self._trial_id)

    def _write_time(self) -> None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, time.time())

    def _run(self, beat: Callable[[], None], interval_s: float) -> None:
        warned = False
        while True:
            try:
                beat()
            except Exception as exc:  # a storage hiccup: keep beating
                if not warned:
                    _warn(f"heartbeat of trial id {self._trial_id} failed "
                          f"({type(exc).__name__}: {exc}); retrying every {interval_s} s")
                    warned = True
            if self._stop.wait(interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _own_heartbeat_interval_s(storage: Any) -> float | None:
    """The storage's Optuna heartbeat interval (database storages opened with one)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)()


def heartbeat_enabled(study: optuna.Study) -> bool:
    return _own_heartbeat_interval_s(study._storage) is not None


def fail_stale(study: optuna.Study) -> None:
    """Fail (and retry) the trials whose worker stopped beating; only with heartbeats."""
    if heartbeat_enabled(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)


class TrialRunner:
    """Runs trials one at a time with ``guard`` active (see ``run``)."""

    def __init__(self, guard: SignalGuard, callbacks: Sequence[Callback] = (), *,
                 periodic: Callable[[optuna.Study], Any] = lambda study: fail_stale(study),
                 periodic_interval_s: float = 0.0,
                 heartbeat_interval_s: float | None = None) -> None:
        """``periodic`` (by default: fail the trials of workers whose Optuna heartbeat
        stopped) runs before a trial, at most every ``periodic_interval_s``;
        ``heartbeat_interval_s``: beat this often on storages without heartbeats of their
        own (journal files); database storages beat at their own interval."""
        self.guard = guard
        self.heartbeat_interval_s = heartbeat_interval_s
        self.callbacks = tuple(callbacks)
        self.periodic = periodic
        self.periodic_interval_s = periodic_interval_s
        self._last_periodic_s = -float("inf")

    def run(self, study: optuna.Study, objective: Objective) -> FrozenTrial:
        """Ask, evaluate, tell. Exceptions from the objective (signals included, which it
        lets in with ``guard.interruptible()``) mark the trial FAIL and propagate;
        ``optuna.TrialPruned`` marks it PRUNED. A trial taken from the queue (a baseline, a
        retried trial) and stopped by a signal goes back to the queue. A trial that another
        worker failed meanwhile (its heartbeat was judged lost) is left as it is: its result
        is dropped with a warning and the worker goes on."""
        self._before(study)
        with warnings.catch_warnings():  # Optuna: "heartbeats are for Study.optimize"; this
            warnings.simplefilter("ignore")  # runner beats as optimize does
            trial = study.ask()
        return self._run(study, trial, objective)

    def run_waiting(self, study: optuna.Study, objective: Objective) -> FrozenTrial | None:
        """As ``run``, for a trial taken from the study's queue only: None when none is
        waiting (another worker may have taken the last one), never a new trial that the
        sampler would fill."""
        self._before(study)
        trial = pop_waiting(study)
        return None if trial is None else self._run(study, trial, objective)

    def run_batch(self, study: optuna.Study, objective: BatchObjective, count: int,
                  worker: Callable[[], dict | None] = lambda: None) -> list[FrozenTrial]:
        """Ask ``count`` trials, then evaluate their candidates together
        (``BatchObjective``) and tell each. A trial past the budget is pruned; a trial
        another worker failed meanwhile is left as it is (its result dropped with a
        warning). An exception (a signal included) fails every trial of the batch not yet
        told, sends those taken from the queue back to it, and propagates: no trial is left
        running, and the batches before are kept. ``worker()``: each trial's worker record."""
        self._before(study)
        asked: list[tuple[optuna.trial.Trial, _Heartbeat]] = []
        told: set[int] = set()
        finished: list[FrozenTrial] = []
        try:
            for _ in range(count):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trial = study.ask()
                asked.append((trial, _Heartbeat(study._storage, trial._trial_id,
                                                self.heartbeat_interval_s)))
            candidates = [objective.begin(trial, worker()) for trial, _ in asked]
            for (trial, heartbeat), candidate in zip(asked, candidates):
                if candidate is None:  # past the budget
                    told.add(trial._trial_id)
                    finished.append(self._tell(study, trial, heartbeat,
                                               state=TrialState.PRUNED))
            pending = [(pair, c) for pair, c in zip(asked, candidates) if c is not None]
            evaluations = objective.evaluate_many([c for _, c in pending])
            for ((trial, heartbeat), _), evaluation in zip(pending, evaluations):
                try:
                    values = objective.finish(trial, evaluation)
                except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker
                    told.add(trial._trial_id)
                    heartbeat.stop()
                    frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                    warn_taken_over(frozen.number)
                    finished.append(frozen)
                    continue
                told.add(trial._trial_id)
                finished.append(self._tell(study, trial, heartbeat, values=values))
        except BaseException as exc:
            self.guard.hold()
            for trial, heartbeat in asked:
                if trial._trial_id in told:
                    continue
                self._tell(study, trial, heartbeat, state=TrialState.FAIL,
                           reason=f"{type(exc).__name__}: {exc}".rstrip(": "))
                if isinstance(exc, KeyboardInterrupt):
                    with contextlib.suppress(Exception):
                        requeue(study, trial._trial_id)
            raise
        return finished

    def _before(self, study: optuna.Study) -> None:
        self.guard.check()
        if self._periodic_due():
            self.periodic(study)

    def _run(self, study: optuna.Study, trial: optuna.trial.Trial, objective: Objective
             ) -> FrozenTrial:
        heartbeat = _Heartbeat(study._storage, trial._trial_id, self.heartbeat_interval_s)
        try:
            values = [float(value) for value in _as_sequence(objective(trial))]
        except optuna.TrialPruned:
            self.guard.hold()
            return self._tell(study, trial, heartbeat, state=TrialState.PRUNED)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker
            self.guard.hold()
            heartbeat.stop()
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            warn_taken_over(frozen.number)
            return frozen
        except BaseException as exc:
            self.guard.hold()
            self._tell(study, trial, heartbeat, state=TrialState.FAIL,
                       reason=f"{type(exc).__name__}: {exc}".rstrip(": "))
            if isinstance(exc, KeyboardInterrupt):
                with contextlib.suppress(Exception):  # the signal is what the caller must see
                    requeue(study, trial._trial_id)
            raise
        return self._tell(study, trial, heartbeat, values=values)

    def _tell(self, study: optuna.Study, trial: optuna.trial.Trial, heartbeat: "_Heartbeat", *,
              values: list[float] | None = None, state: TrialState | None = None,
              reason: str | None = None) -> FrozenTrial:
        """Finish the trial; callbacks run only for trials that ended normally (a failing
        trial's exception is what the caller sees)."""
        try:
            if reason is not None:
                with contextlib.suppress(Exception):  # the state matters more than the note
                    trial.set_user_attr(FAIL_REASON_ATTR, reason)
        finally:
            heartbeat.stop()
        frozen = study.tell(trial, values, state=state, skip_if_finished=True)
        expected = state or TrialState.COMPLETE
        if frozen.state != expected:
            warn_taken_over(frozen.number)
        elif reason is None:
            for callback in self.callbacks:
                callback(study, frozen)
        return frozen

    def _periodic_due(self) -> bool:
        now_s = time.monotonic()
        if now_s - self._last_periodic_s < self.periodic_interval_s:
            return False
        self._last_periodic_s = now_s
        return True


def pop_waiting(study: optuna.Study) -> optuna.trial.Trial | None:
    """The first waiting trial that this worker moves to RUNNING (the storage lets exactly
    one worker do so), as ``study.ask`` takes one; None when none is left."""
    storage = study._storage
    for waiting in storage.get_all_trials(study._study_id, deepcopy=False,
                                          states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(waiting._trial_id, TrialState.RUNNING):
                continue  # another worker took it
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        cache = getattr(study, "_thread_local", None)
        if cache is not None:  # as ``study.ask``: the sampler reads the study afresh
            cache.cached_all_trials = None
        return optuna.trial.Trial(study, waiting._trial_id)
    return None


def warn_taken_over(number: int) -> None:
    _warn(f"trial {number} was failed by another worker, which judged its heartbeat lost; "
          "its result is dropped (is --grace-period long enough?)")


def _warn(message: str) -> None:
    logger.warning(" ".join(message.split()))


def _as_sequence(values: Any) -> Sequence[Any]:
    return values if isinstance(values, (list, tuple)) else [values]
