"""Run one Optuna trial at a time so that a signal never leaves a trial RUNNING.

``study.optimize`` lets a signal's exception land anywhere: inside ``study.ask`` after the
trial row is written, inside the final ``tell``, or halfway through a database commit, which
can leave the connection unusable. The trial then stays RUNNING until a heartbeat fails it,
and SQLite and journal storages have no heartbeat. Here SIGTERM and SIGINT are held while
the storage is in use and act at once only inside ``SignalGuard.interruptible()`` blocks
(the evaluation of a candidate, waiting for other workers); the trial in hand is then told
FAIL before the exception goes on.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit): the running trial is failed, the worker stops."""


Objective = Callable[[optuna.trial.Trial], Sequence[float]]
Callback = Callable[[optuna.Study, FrozenTrial], None]


class SignalGuard:
    """While active, SIGTERM and SIGINT are held until ``check()`` or the next
    ``interruptible()`` block, where they raise ``Terminated`` / ``KeyboardInterrupt``."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._open = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "SignalGuard":
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._open:
            raise _exception_for(signum)
        self._pending = self._pending or signum

    def check(self) -> None:
        """Raise a held signal now."""
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise _exception_for(signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Signals raise at once inside this block (which must not use the storage)."""
        self.check()
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1


def _exception_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _Heartbeat:
    """Records the trial's heartbeat every interval, as ``study.optimize`` would."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        if interval is not None:
            self._thread = threading.Thread(target=self._beat, args=(interval,), daemon=True,
                                            name=f"dse-heartbeat-{trial_id}")
            self._thread.start()

    def _beat(self, interval_s: float) -> None:
        while True:
            self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def heartbeat_enabled(study: optuna.Study) -> bool:
    return getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None


class TrialRunner:
    """Runs trials one at a time with ``guard`` active (see ``run``)."""

    def __init__(self, guard: SignalGuard, callbacks: Sequence[Callback] = (), *,
                 stale_check_interval_s: float = 0.0) -> None:
        self.guard = guard
        self.callbacks = tuple(callbacks)
        self.stale_check_interval_s = stale_check_interval_s
        self._last_stale_check_s = -float("inf")

    def run(self, study: optuna.Study, objective: Objective) -> FrozenTrial:
        """Ask, evaluate, tell. Exceptions from the objective (signals included, which it
        lets in with ``guard.interruptible()``) mark the trial FAIL and propagate;
        ``optuna.TrialPruned`` marks it PRUNED. Trials of dead workers are failed (and
        retried) first, at most every ``stale_check_interval_s`` (a query each time)."""
        self.guard.check()
        if heartbeat_enabled(study) and self._stale_check_due():
            fail_stale_trials(study)
        trial = study.ask()
        heartbeat = _Heartbeat(study._storage, trial._trial_id)
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            return _tell(study, trial, heartbeat, self.callbacks, state=TrialState.PRUNED)
        except BaseException as exc:
            _tell(study, trial, heartbeat, self.callbacks, state=TrialState.FAIL,
                  reason=f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise
        return _tell(study, trial, heartbeat, self.callbacks, values=list(values))

    def _stale_check_due(self) -> bool:
        now_s = time.monotonic()
        if now_s - self._last_stale_check_s < self.stale_check_interval_s:
            return False
        self._last_stale_check_s = now_s
        return True


def _tell(study: optuna.Study, trial: optuna.trial.Trial, heartbeat: _Heartbeat,
          callbacks: Sequence[Callback], *,
          values: list[float] | None = None, state: TrialState | None = None,
          reason: str | None = None) -> FrozenTrial:
    heartbeat.stop()
    if reason is not None:
        trial.set_user_attr("fail_reason", reason)
    frozen = study.tell(trial, values, state=state)
    for callback in callbacks:
        callback(study, frozen)
    return frozen
