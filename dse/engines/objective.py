"""The objective of one trial of a dse study, for any engine: the candidate of the trial's
parameters (a sampler's draw, or the parameters queued with it), evaluated and stored, with
the ``engine`` that ran it.

Each trial's writes are batched into as few storage transactions as the storage allows;
signals act only while nothing is being written.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.accuracy import AccuracyModel
from dse.evaluate import evaluate, objective_values
from dse.host import worker_identity
from dse.problem import Problem
from dse.results.ledger import (
    ENGINE_ATTR,
    METRICS_ATTR,
    OPTUNA_CONSTRAINTS,
    SURPLUS_ATTR,
    WORKER_ATTR,
    constraint_values,
    metrics_record,
)
from dse.signals import SignalGuard
from dse.space import suggest_candidate
from dse.storage.storage import batched


def make_objective(problem: Problem, accuracy: AccuracyModel | None = None, *, engine: str,
                   budget: int | None = None, guard: SignalGuard | None = None,
                   worker: dict | None = None, named_constraints: bool = False
                   ) -> Callable[[optuna.trial.Trial], list[float]]:
    """The Optuna objective; with a ``budget``, a trial that would exceed the study's total of
    complete trials is pruned before any work (marked ``surplus``). ``worker`` (default: this
    process's identity) is recorded with each trial. With a ``guard``, signals
    act at once during the evaluation (cost model and probe) and, where the storage collects
    the trial's writes for one transaction, during sampling; never during a write.
    ``named_constraints``: store the constraints as Optuna 5's named keys, for a study an
    earlier dse filled that way (``Ledger.named_constraints``)."""
    interruptible = guard.interruptible if guard is not None else contextlib.nullcontext

    def objective(trial: optuna.trial.Trial) -> list[float]:
        # storage time matters on a shared database: each block is one transaction
        with batched(trial.study) as collecting:
            try:
                trial.set_user_attr(WORKER_ATTR, worker or worker_identity())
                trial.set_user_attr(ENGINE_ATTR, engine)
                surplus = budget is not None and ahead_of(trial) >= budget
                if surplus:
                    trial.set_user_attr(SURPLUS_ATTR, True)
                else:
                    with interruptible() if collecting else contextlib.nullcontext():
                        candidate = suggest_candidate(trial, problem.space)
            finally:
                if guard is not None:
                    guard.hold()  # the batch commits next: no signal may cut it
        if surplus:
            raise optuna.TrialPruned("the study's trial budget is reached")
        with interruptible():
            evaluation = evaluate(candidate, problem, accuracy)
        if guard is not None:
            guard.hold()
        with batched(trial.study):
            trial.set_user_attr(METRICS_ATTR, metrics_record(evaluation))
            set_constraints(trial, evaluation.constraints, named=named_constraints)
        return objective_values(evaluation, problem)
    return objective


def ahead_of(trial: optuna.trial.Trial) -> int:
    """The trials that go before ``trial`` in the study's budget (``trials_ahead``)."""
    return trials_ahead(trial.study.get_trials(deepcopy=False), trial.number)


def trials_ahead(trials: Sequence[FrozenTrial], number: int) -> int:
    """Complete trials, plus those numbered before ``number`` still waiting or running.

    A trial goes ahead only while fewer than the budget are ahead of it, read once it runs;
    then no more than the budget complete, however workers interleave: of the trials that
    complete, the highest-numbered one saw each of the others waiting, running or complete
    (they were made before it, and a trial's state only moves on from waiting to running to
    complete). A waiting trial made before it counts too: a trial taken from the queue after
    it started (a baseline another worker had not reached yet) is numbered before it."""
    states = (TrialState.WAITING, TrialState.RUNNING)
    return sum(1 for other in trials if other.state == TrialState.COMPLETE
               or (other.state in states and other.number < number))


def set_constraints(trial: optuna.trial.Trial, constraints: dict[str, float], *,
                    named: bool = False) -> None:
    """Store the constraints where Optuna (4.9 and 5.x: samplers, ``study.best_trials``) and
    optuna-dashboard read them: Optuna's list system attribute, in ``CONSTRAINT_NAMES``
    order, and no named copy that Optuna 5 would read as further constraints (Optuna 4.x
    samplers, given ``constraints_func``, store the same list again after the trial).
    ``named``: Optuna 5's ``set_constraint`` instead."""
    if named:
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        return
    trial.storage.set_trial_system_attr(trial._trial_id, OPTUNA_CONSTRAINTS,
                                        constraint_values(constraints))
