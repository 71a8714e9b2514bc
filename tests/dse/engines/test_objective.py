"""The Optuna objective: signals act during sampling where writes are batched."""
from __future__ import annotations

import os
import signal

import optuna
import pytest

from dse.storage.storage import open_storage


class _SignallingSampler(optuna.samplers.RandomSampler):
    """A sampler whose third draw is interrupted by SIGTERM (sent from inside the draw, so
    that the moment is exact, not a matter of timing)."""

    draws = 0

    def sample_independent(self, study, trial, name, distribution):
        type(self).draws += 1
        if type(self).draws == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().sample_independent(study, trial, name, distribution)


def test_a_signal_stops_a_slow_sampler_at_once(toy_table, tmp_path):
    from toy import toy_accuracy, toy_problem

    from dse.engines.objective import make_objective
    from dse.engines.runner import TrialRunner
    from dse.signals import SignalGuard, Terminated
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"),
                                sampler=_SignallingSampler(seed=0), directions=["minimize"] * 3)
    problem = toy_problem(toy_table)
    with SignalGuard() as guard:
        objective = make_objective(problem, toy_accuracy(problem), engine="optuna",
                                   guard=guard)
        with pytest.raises(Terminated):
            TrialRunner(guard).run(study, objective)
    trial = study.trials[0]
    assert len(study.trials[0].distributions) < 3  # stopped within the third draw
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["worker"]["pid"] == os.getpid()  # the batch was committed
    assert trial.params == {name: trial.params[name] for name in trial.distributions}
