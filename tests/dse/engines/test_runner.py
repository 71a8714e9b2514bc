"""The trial runner: a signal at any moment leaves no trial RUNNING."""
from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest

from dse.engines.runner import TrialRunner
from dse.signals import SignalGuard, Terminated

State = optuna.trial.TrialState


def _quadratic(trial: optuna.trial.Trial) -> list[float]:
    x = trial.suggest_float("x", -1.0, 1.0)
    y = trial.suggest_int("y", 0, 8)
    return [x * x + y]


def _interruptible_quadratic(guard: SignalGuard):
    def objective(trial: optuna.trial.Trial) -> list[float]:
        x = trial.suggest_float("x", -1.0, 1.0)
        with guard.interruptible():
            value = sum(i * x for i in range(20_000))  # a little work a signal may cut
        trial.set_user_attr("value", value)
        return [value]
    return objective


STORAGE_METHODS = ("create_new_trial", "set_trial_param", "set_trial_state_values",
                   "set_trial_user_attr", "set_trial_system_attr", "get_trial",
                   "get_all_trials", "get_trial_id_from_study_id_trial_number")


def _signalling(base: type, signum: int, at_call: int) -> type:
    """``base`` storage that sends ``signum`` to this process during its ``at_call``-th call
    (counting the calls the runner makes: ask, parameters, attributes, tell): the signal
    lands at that exact moment, inside the storage call."""
    calls = {"n": 0}

    def wrap(name: str):
        method = getattr(base, name)

        def wrapped(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at_call:
                os.kill(os.getpid(), signum)
            return method(self, *args, **kwargs)
        return wrapped

    return type(f"Signalling{base.__name__}", (base,),
                {name: wrap(name) for name in STORAGE_METHODS})


def _storage(kind: str, signum: int, at_call: int, tmp_path):
    if kind == "memory":
        return _signalling(optuna.storages.InMemoryStorage, signum, at_call)()
    return _signalling(optuna.storages.RDBStorage, signum, at_call)(
        f"sqlite:///{tmp_path / f'study{at_call}.db'}")


@pytest.mark.parametrize("kind", ["memory", pytest.param("sqlite", marks=pytest.mark.slow)])
@pytest.mark.parametrize("signum, exception", [(signal.SIGTERM, Terminated),
                                               (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_at_any_moment_leaves_no_running_trial(tmp_path, kind, signum, exception):
    # the signal is sent from inside the n-th storage call, for every n over three trials:
    # inside ask, the parameter writes, the attribute writes and tell; a signal that lands
    # outside an interruptible block is held until the next one (or the end of the guard)
    moments = range(1, 40, 1 if kind == "memory" else 3)
    for at_call in moments:
        study = optuna.create_study(storage=_storage(kind, signum, at_call, tmp_path))
        stopped = False
        with pytest.raises(exception):
            with SignalGuard() as guard:
                runner = TrialRunner(guard)
                for _ in range(20):
                    runner.run(study, _interruptible_quadratic(guard))
        stopped = True
        states = [t.state for t in study.trials]
        assert stopped and State.RUNNING not in states, at_call
        assert all(t.user_attrs["fail_reason"] == exception.__name__
                   for t in study.trials if t.state == State.FAIL), at_call
        complete = [t for t in study.trials if t.state == State.COMPLETE]
        assert len(complete) + states.count(State.FAIL) == len(states), at_call
        assert all(t.values == [t.user_attrs["value"]] for t in complete), at_call


def test_a_signal_outside_interruptible_blocks_is_held(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    with SignalGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        trial = study.ask()  # still runs: the signal is held
        study.tell(trial, [1.0])
        with pytest.raises(Terminated):
            guard.check()
        guard.check()  # raised once only
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            with guard.interruptible():
                raise AssertionError("a held signal raises on entering the block")
    assert study.trials[0].state == State.COMPLETE


def test_objective_errors_fail_the_trial_and_propagate(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")

    def broken(trial):
        trial.suggest_float("x", 0, 1)
        raise ValueError("diverged")

    with SignalGuard() as guard:
        runner = TrialRunner(guard, callbacks=[
            lambda s, frozen: s.set_user_attr("last", frozen.number)])
        with pytest.raises(ValueError, match="diverged"):
            runner.run(study, broken)
        pruned = runner.run(study, lambda t: (_ for _ in ()).throw(optuna.TrialPruned()))
        done = runner.run(study, _quadratic)
    assert [t.state for t in study.trials] == [State.FAIL, State.PRUNED, State.COMPLETE]
    assert study.trials[0].user_attrs["fail_reason"] == "ValueError: diverged"
    assert pruned.state == State.PRUNED and done.values == [done.params["x"] ** 2
                                                              + done.params["y"]]
    assert study.user_attrs["last"] == 2


def test_an_objective_may_return_a_plain_number(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    with SignalGuard() as guard:
        frozen = TrialRunner(guard).run(study, lambda trial: 0.5)
    assert frozen.state == State.COMPLETE and frozen.values == [0.5]
    assert [thread.name for thread in threading.enumerate()
            if thread.name.startswith("dse-heartbeat")] == []


def test_a_queued_trial_stopped_by_a_signal_goes_back_to_the_queue(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.enqueue_trial({"x": 0.25, "y": 3}, user_attrs={"baseline": "all-digital"})

    with SignalGuard() as guard:
        def stopped(trial):
            trial.suggest_float("x", -1.0, 1.0)
            trial.suggest_int("y", 0, 8)
            os.kill(os.getpid(), signal.SIGTERM)
            with guard.interruptible():
                raise AssertionError("the held signal raises first")

        runner = TrialRunner(guard)
        with pytest.raises(Terminated):
            runner.run(study, stopped)
        again = runner.run(study, _quadratic)
    first = study.trials[0]
    assert first.state == State.FAIL and first.user_attrs["fail_reason"] == "Terminated"
    assert again.params == {"x": 0.25, "y": 3} and again.user_attrs == {"baseline":
                                                                        "all-digital"}
    assert again.values == [0.25 ** 2 + 3]


@pytest.mark.parametrize("when", ["during", "after"])
def test_a_trial_failed_by_another_worker_is_dropped_not_fatal(tmp_path, caplog, when):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")

    def judged_dead(trial):
        trial.suggest_float("x", 0, 1)
        study._storage.set_trial_state_values(trial._trial_id, State.FAIL)  # another worker
        if when == "during":
            trial.set_user_attr("metrics", {})  # the next write is refused
        return 1.0

    with SignalGuard() as guard:
        runner = TrialRunner(guard)
        frozen = runner.run(study, judged_dead)
        after = runner.run(study, _quadratic)  # the worker goes on
    assert frozen.state == State.FAIL and after.state == State.COMPLETE
    assert f"trial {frozen.number} was failed by another worker" in caplog.text  # a warning


def test_a_heartbeat_that_fails_keeps_beating(caplog):
    from dse.engines.runner import _Heartbeat

    class Flaky:
        def __init__(self):
            self.calls = 0

        def set_trial_system_attr(self, trial_id, key, value):
            self.calls += 1
            if self.calls <= 2:
                raise OSError("stale NFS file handle")

    storage = Flaky()
    heartbeat = _Heartbeat(storage, 7, fallback_interval_s=0.01)
    deadline = time.monotonic() + 5
    while storage.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    heartbeat.stop()
    assert storage.calls >= 5
    err = caplog.text  # the warning, logged once
    assert err.count("heartbeat of trial id 7 failed (OSError: stale NFS file handle)") == 1


def test_run_waiting_takes_only_a_queued_trial(tmp_path):
    """When another worker took the last queued trial, none is made in its place (the
    sampler would fill it)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.enqueue_trial({"x": 0.25, "y": 3}, user_attrs={"baseline": "all-digital"})
    with SignalGuard() as guard:
        runner = TrialRunner(guard)
        taken = runner.run_waiting(study, _quadratic)
        assert runner.run_waiting(study, _quadratic) is None
    assert taken is not None and taken.params == {"x": 0.25, "y": 3}
    assert [t.state for t in study.trials] == [State.COMPLETE]
