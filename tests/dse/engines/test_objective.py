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


def test_a_trial_counts_the_queued_trials_numbered_before_it(toy_table, tmp_path):
    """A trial made while a queued one waits, and that queued one taken after it, both
    within a budget of one: only one goes ahead, whichever order they are evaluated in."""
    from toy import toy_accuracy, toy_problem

    from dse.engines.objective import make_objective
    from dse.engines.runner import TrialRunner
    from dse.results.ledger import SURPLUS_ATTR, enqueue_baselines
    from dse.signals import SignalGuard
    problem = toy_problem(toy_table)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"),
                                directions=problem.directions)
    enqueue_baselines(study, problem, budget=1)
    made = study._storage.create_new_trial(study._study_id)  # another worker's, running
    objective = make_objective(problem, toy_accuracy(problem), engine="optuna", budget=1)
    with pytest.raises(optuna.TrialPruned):
        objective(optuna.trial.Trial(study, made))
    study._storage.set_trial_state_values(made, optuna.trial.TrialState.PRUNED)
    with SignalGuard() as guard:
        queued = TrialRunner(guard).run(study, objective)  # takes the queued trial
    assert queued.state == optuna.trial.TrialState.COMPLETE and queued.number == 0
    assert study.trials[1].user_attrs[SURPLUS_ATTR] is True
