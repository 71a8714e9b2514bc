"""SignalGuard: held signals, restored handlers, nothing lost."""
from __future__ import annotations

import os
import signal

import optuna
import pytest

from dse.signals import SignalGuard, Terminated


def test_the_guard_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with SignalGuard():
        assert signal.getsignal(signal.SIGTERM) not in (before[0], signal.SIG_DFL)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_signal_held_to_the_end_is_not_lost():
    with pytest.raises(Terminated):
        with SignalGuard():
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))  # held: nothing raises here
    with pytest.raises(ValueError):  # an exception already on its way is not replaced
        with SignalGuard():
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError("first")


def test_a_storage_call_is_never_cut_half_way(tmp_path, monkeypatch):
    """A signal inside an interruptible block waits for the storage call under way (a read
    cut half-way kept SQLite locked, so that the trial could not be failed), then raises."""
    from optuna.storages import RDBStorage

    from dse.signals import deferred
    from dse.storage.storage import open_storage

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'study.db'}"))
    finished = []
    original = RDBStorage._get_trials

    def read_with_a_signal(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the read
        result = original(self, *args, **kwargs)
        finished.append(True)
        return result

    monkeypatch.setattr(RDBStorage, "_get_trials", read_with_a_signal)
    with SignalGuard() as guard, pytest.raises(KeyboardInterrupt), guard.interruptible():
        study.get_trials(deepcopy=False)
    assert finished == [True]
    with SignalGuard() as guard, pytest.raises(KeyboardInterrupt), guard.interruptible():
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)  # the block finishes first
    assert finished == [True, True]
