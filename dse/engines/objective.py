"""The objective of one trial of a dse study, for any engine: the candidate of the trial's
parameters (a sampler's draw, or the parameters queued with it), evaluated and stored, with
the ``engine`` that ran it.

Each trial's writes are batched into as few storage transactions as the storage allows;
signals act only while nothing is being written.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.accuracy import AccuracyModel, ProbeResult
from dse.accuracy.abilities import measure_many
from dse.evaluate import Evaluation, finish_evaluation, objective_values, plan_evaluation
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
from dse.space import Candidate, suggest_candidate
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
    batch = BatchObjective(problem, accuracy, engine=engine, budget=budget, guard=guard,
                           named_constraints=named_constraints)

    def objective(trial: optuna.trial.Trial) -> list[float]:
        candidate = batch.begin(trial, worker)
        if candidate is None:
            raise optuna.TrialPruned("the study's trial budget is reached")
        evaluation = batch.evaluate_many([candidate])[0]
        return batch.finish(trial, evaluation)
    return objective


@dataclass
class BatchObjective:
    """The objective in three steps, so that several trials' candidates can be measured
    together: ``begin`` each trial (its candidate from its parameters), ``evaluate_many``
    their candidates (costs, then the accuracies of those within budget in one call of the
    estimator: ``measure_many``), ``finish`` each trial (its metrics and constraints stored;
    the values to tell). Settings as ``make_objective``'s."""

    problem: Problem
    accuracy: AccuracyModel | None
    engine: str
    budget: int | None = None
    guard: SignalGuard | None = None
    named_constraints: bool = False

    def begin(self, trial: optuna.trial.Trial, worker: dict | None = None
              ) -> Candidate | None:
        """The trial's candidate, its worker and engine recorded; None for a trial past the
        study's budget (marked ``surplus``: prune it)."""
        guard = self.guard
        interruptible = guard.interruptible if guard is not None else contextlib.nullcontext
        # storage time matters on a shared database: each block is one transaction
        with batched(trial.study) as collecting:
            try:
                trial.set_user_attr(WORKER_ATTR, worker or worker_identity())
                trial.set_user_attr(ENGINE_ATTR, self.engine)
                if self.budget is not None and ahead_of(trial) >= self.budget:
                    trial.set_user_attr(SURPLUS_ATTR, True)
                    return None
                with interruptible() if collecting else contextlib.nullcontext():
                    return suggest_candidate(trial, self.problem.space)
            finally:
                if guard is not None:
                    guard.hold()  # the batch commits next: no signal may cut it

    def evaluate_many(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Each candidate's evaluation; signals act at once throughout."""
        guard = self.guard
        interruptible = guard.interruptible if guard is not None else contextlib.nullcontext
        with interruptible():
            planned = [plan_evaluation(candidate, self.problem) for candidate in candidates]
            measured = [p for p in planned if p.probed]
            results: list[ProbeResult] = []
            seconds = 0.0
            if measured and self.accuracy is not None:
                start = time.perf_counter()
                results = measure_many(self.accuracy.estimator,
                                       [p.probe_candidate() for p in measured])
                seconds = (time.perf_counter() - start) / len(measured)
            by_plan = dict(zip(map(id, measured), results))
            evaluations = [finish_evaluation(p, self.problem, self.accuracy,
                                             by_plan.get(id(p)), seconds if p.probed else 0.0)
                           for p in planned]
        if guard is not None:
            guard.hold()
        return evaluations

    def finish(self, trial: optuna.trial.Trial, evaluation: Evaluation) -> list[float]:
        """Store the trial's metrics and constraints; the values to tell."""
        with batched(trial.study):
            trial.set_user_attr(METRICS_ATTR, metrics_record(evaluation))
            set_constraints(trial, evaluation.constraints, named=self.named_constraints)
        return objective_values(evaluation, self.problem)


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
