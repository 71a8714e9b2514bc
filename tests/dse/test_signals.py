"""SignalGuard: held signals, restored handlers, nothing lost."""
from __future__ import annotations

import os
import signal

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
