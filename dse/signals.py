"""Signals that stop a worker only where stopping is safe.

SIGTERM (a scheduler's time limit) and SIGINT (Ctrl-C) are held while a worker writes to its
storage and act at once only inside ``SignalGuard.interruptible()`` blocks (an evaluation,
waiting for other workers), so that no write is cut in half. Every engine runs its work
under one guard.
"""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit): the running trial is failed, the worker stops."""




class SignalGuard:
    """While active, SIGTERM and SIGINT are held until ``check()`` or the next
    ``interruptible()`` block, where they raise ``Terminated`` / ``KeyboardInterrupt``."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._open = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "SignalGuard":
        global _active
        _active = self
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        global _active
        if _active is self:
            _active = None
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._open = 0
        if exc_type is None:
            self.check()  # a signal held until the end still stops the program

    def _handle(self, signum: int, frame: Any) -> None:
        if self._open and not _deferred:
            raise _exception_for(signum)
        self._pending = self._pending or signum

    def check(self) -> None:
        """Raise a held signal now."""
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise _exception_for(signum)

    def hold(self) -> None:
        """Hold signals again from here on: an ``interruptible()`` block cut short by a
        signal may not have closed yet when its exception is handled."""
        self._open = 0

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Signals raise at once inside this block (which must not write to the storage)."""
        self.check()
        self._open += 1
        try:
            yield
        finally:
            self._open = max(0, self._open - 1)


_active: SignalGuard | None = None  # the guard entered last, while it is active
_deferred = 0                       # storage calls under way (``deferred``)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A storage call: a signal inside an ``interruptible()`` block waits until the call is
    done, then raises. A read cut half-way leaves its cursor, referenced by the exception's
    frames, holding SQLite's lock, so that the trial cannot even be failed."""
    global _deferred
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
    if not _deferred and _active is not None and _active._open:
        _active.check()


def _exception_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
