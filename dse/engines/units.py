"""An engine's own work as units that the study's workers share: each unit (an EDEN split,
an ODiMO lambda) is measured by exactly one worker and recorded as one trial.

A worker claims a unit by making a RUNNING trial that names it (the system attribute
``dse:unit``, stored with the trial in one write). The storage numbers trials one at a time
(a database locks the study's row to count them; a journal file is one ordered log), so
among the trials naming a unit, the lowest-numbered one still running or complete holds
it, and every worker that reads the trials after making its own claim sees the same holder.
A worker whose claim is not the holder prunes it at once (``claim_lost_to``). The holder
measures the unit and completes the same trial with the candidate, its evaluation and the
engine's attributes.

The study's budget holds exactly: a claim goes ahead only while fewer trials than the
budget are ahead of it (``dse.engines.objective.trials_ahead``), as every trial of the
study does; one that would exceed it is pruned (``surplus``).

A claim beats (the heartbeat attribute, on every storage: Optuna must not fail and retry it
as a trial of its own) while its unit is measured; ``dse.storage.liveness.OrphanCheck``
fails the claim of a worker that stopped beating or is gone from this host, which frees
its unit. A worker with nothing left to claim waits while other workers hold units or run
trials the budget counts, and takes over the units of one that dies.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.engines import WAITING_STATUS, EngineJob
from dse.engines.objective import trials_ahead
from dse.engines.queued import QueueRunner
from dse.engines.runner import _Heartbeat, warn_taken_over
from dse.evaluate import Evaluation
from dse.host import worker_identity
from dse.results.ledger import (
    CLAIM_LOST_ATTR,
    ENGINE_ATTR,
    FAIL_REASON_ATTR,
    SURPLUS_ATTR,
    UNIT_ATTR,
    UNIT_FAILED_ATTR,
    WORKER_ATTR,
)
from dse.space import Candidate
from dse.storage.storage import batched, liveness_of

POLL_S = 1.0  # how often a worker waiting for others looks again
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One unit of an engine's work."""

    key: str                # unique among the engine's units (a split's name, a lambda)
    done_status: str = ""   # the progress status once it is recorded ("all-digital mapped")


@dataclass
class Outcome:
    """What measuring a unit found: recorded as the unit's trial.

    Attributes:
        candidate: the candidate the trial holds.
        evaluation: its evaluation (``dse.evaluate.evaluate``).
        attrs: trial user attributes of the engine's own.
        columns: the engine's own values for trials.csv (``Ledger.record``).
        study_attrs: study user attributes, written before the trial completes; a key
            per unit, so that workers never overwrite each other's records.
    """

    candidate: Candidate
    evaluation: Evaluation
    attrs: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, float | int | str] | None = None
    study_attrs: dict[str, Any] = field(default_factory=dict)


class UnitFailed(Exception):
    """Raised by ``measure`` when a unit's method cannot give a result however often it
    runs (ODiMO's search diverged): the unit's trial is failed with this reason and the
    unit counts as done, the worker going on with the others, and later runs too."""


Measure = Callable[[Unit], Outcome]
MeasureMany = Callable[[Sequence[Unit]], "list[Outcome | UnitFailed]"]
RecordedKey = Callable[[FrozenTrial], "str | None"]


def run_units(job: EngineJob, engine: str, units: Sequence[Unit], measure: Measure, *,
              recorded_key: RecordedKey | None = None,
              measure_many: MeasureMany | None = None, batch: int = 1) -> int:
    """Run the study's queued trials, then each unit that no trial holds, until every unit
    is recorded or the budget is met; return how many trials this worker ran.

    ``measure(unit)`` runs inside ``job.guard.interruptible()`` (it must not write to the
    storage). ``recorded_key(trial)``: the unit a complete trial recorded before units were
    claimed (a study of an earlier dse) holds, or None. A unit's claim stopped by an error
    or a signal is failed (its unit is free again) and the exception goes on.

    With ``measure_many`` and ``batch`` > 1, up to ``batch`` free units are claimed at once
    and measured in one call (each its ``Outcome``, or the ``UnitFailed`` it ends in); each
    is recorded when the call returns, and an exception frees them all."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if measure_many is None:
        batch = 1

        def measure_many(found: Sequence[Unit]) -> list[Outcome | UnitFailed]:
            return [_measured_alone(measure, unit) for unit in found]
    return _UnitRunner(job, engine, recorded_key, batch).run(units, measure_many)


def _measured_alone(measure: Measure, unit: Unit) -> Outcome | UnitFailed:
    try:
        return measure(unit)
    except UnitFailed as exc:
        return exc


def unit_name(engine: str, key: str) -> str:
    """What ``UNIT_ATTR`` holds for ``engine``'s unit ``key``."""
    return f"{engine}:{key}"


def holders(trials: Sequence[FrozenTrial], engine: str,
            recorded_key: RecordedKey | None = None) -> dict[str, FrozenTrial]:
    """Unit key -> the trial that holds it: complete, else the lowest-numbered running
    claim (failed and pruned claims hold nothing)."""
    prefix = unit_name(engine, "")
    found: dict[str, FrozenTrial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state not in (TrialState.RUNNING, TrialState.COMPLETE) \
                and not _settled_failure(trial):
            continue
        name = trial.system_attrs.get(UNIT_ATTR)
        key = name[len(prefix):] if isinstance(name, str) and name.startswith(prefix) \
            else None
        if key is None and recorded_key is not None and trial.state == TrialState.COMPLETE:
            key = recorded_key(trial)
        if key is None:
            continue
        held = found.get(key)
        if held is None or (held.state == TrialState.RUNNING
                            and trial.state != TrialState.RUNNING):
            found[key] = trial
    return found


class _UnitRunner:
    def __init__(self, job: EngineJob, engine: str, recorded_key: RecordedKey | None,
                 batch: int = 1) -> None:
        self.job, self.engine, self.recorded_key = job, engine, recorded_key
        self.batch = batch
        self.study = job.ledger.study
        self.queue = QueueRunner(job, engine)
        self.beat_s = liveness_of(self.study).heartbeat_interval_s
        self.total = job.budget.total_trials
        self.per_worker = job.budget.per_worker_trials
        self.waiting = False
        self.worker: dict[str, Any] = {}
        self._held: dict[str, FrozenTrial] = {}

    def run(self, units: Sequence[Unit], measure: MeasureMany) -> int:
        self._progress("starting")
        ran = 0
        while self.per_worker is None or ran < self.per_worker:
            self.job.guard.check()
            trials = self.study.get_trials(deepcopy=False)
            count = Counter(t.state for t in trials)
            complete, running = count[TrialState.COMPLETE], count[TrialState.RUNNING]
            if self.per_worker is None and complete >= self.total:
                break
            room = self.per_worker is not None or complete + running < self.total
            # the queued trials first (and any put back since)
            if room and count[TrialState.WAITING] and self.queue.run_one():
                self.waiting = False
                ran += 1
                self._progress("baselines")
                continue
            left = self._left(units, trials)
            free = [unit for unit in left if unit.key not in self._held]
            if room and free:
                # no more claims than the budget has room for (one beyond it is pruned)
                size = (min(self.batch, self.total - complete - running)
                        if self.per_worker is None else min(self.batch, self.per_worker - ran))
                for unit in self._measure(free[:size], measure):
                    ran += 1
                    self._progress(unit.done_status or f"{unit.key} measured")
            elif left and (running or count[TrialState.WAITING]):
                self._wait()  # others hold the rest, or the budget counts their trials
            else:
                break
        return ran

    def _left(self, units: Sequence[Unit], trials: Sequence[FrozenTrial]) -> list[Unit]:
        """The units no finished trial holds (``_held``: the trial holding each unit)."""
        self._held = holders(trials, self.engine, self.recorded_key)
        return [unit for unit in units if not _done(self._held.get(unit.key))]

    def _wait(self) -> None:
        if not self.waiting:  # told once per wait
            self._progress(WAITING_STATUS)
        self.waiting = True
        self.queue.look_for_dead_workers(self.study)
        with self.job.guard.interruptible():
            time.sleep(POLL_S)

    def _measure(self, units: Sequence[Unit], measure: MeasureMany) -> list[Unit]:
        """Claim ``units``; measure those this worker holds in one call and record each;
        the units recorded."""
        self.waiting = False
        claims = [(unit, trial) for unit in units
                  if (trial := self._claim(unit)) is not None]
        if not claims:
            return []
        heartbeats = [_Heartbeat(self.study._storage, trial._trial_id, self.beat_s,
                                 attribute=True) for _, trial in claims]
        try:
            with self.job.guard.interruptible():
                outcomes = measure([unit for unit, _ in claims])
            self.job.guard.hold()
        except BaseException as exc:  # a signal or an error: the units are free again
            self.job.guard.hold()
            for heartbeat in heartbeats:
                heartbeat.stop()
            for _, trial in claims:
                self._fail(trial, exc)
            raise
        for heartbeat in heartbeats:
            heartbeat.stop()
        recorded = []
        for index, ((unit, trial), outcome) in enumerate(zip(claims, outcomes)):
            if isinstance(outcome, UnitFailed):  # no result, ever: done, as a failed trial
                self._finish(trial, TrialState.FAIL, {FAIL_REASON_ATTR: str(outcome),
                                                      UNIT_FAILED_ATTR: True})
                logger.warning("%s: %s failed: %s (trial %d)", self.engine, unit.key,
                               outcome, trial.number)
            else:
                try:
                    self._record(trial, outcome)
                except BaseException as exc:  # a write refused: the rest are free again
                    for _, left in claims[index:]:
                        self._fail(left, exc)
                    raise
            recorded.append(unit)
        return recorded

    def _claim(self, unit: Unit) -> FrozenTrial | None:
        """A running trial that holds ``unit`` within the budget, else None (its trial
        pruned: another worker's claim holds the unit, or the budget is full)."""
        storage, study = self.study._storage, self.study
        self.worker = (self.job.before_trial() if self.job.before_trial is not None
                       else worker_identity())
        template = FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=datetime.now(), datetime_complete=None, params={},
            distributions={}, user_attrs={ENGINE_ATTR: self.engine, WORKER_ATTR: self.worker},
            system_attrs={UNIT_ATTR: unit_name(self.engine, unit.key)},
            intermediate_values={}, trial_id=-1)
        trial_id = storage.create_new_trial(study._study_id, template_trial=template)
        trials = study.get_trials(deepcopy=False)
        [mine] = [t for t in trials if t._trial_id == trial_id]
        holder = holders(trials, self.engine, self.recorded_key).get(unit.key)
        if holder is not None and holder.number != mine.number:
            self._finish(mine, TrialState.PRUNED, {CLAIM_LOST_ATTR: holder.number})
            return None
        if self.per_worker is None and trials_ahead(trials, mine.number) >= self.total:
            self._finish(mine, TrialState.PRUNED, {SURPLUS_ATTR: True})
            return None
        return mine

    def _record(self, trial: FrozenTrial, outcome: Outcome) -> None:
        """Complete the claim's trial with the outcome (as ``Ledger.record`` adds one)."""
        for key, value in outcome.study_attrs.items():
            self.study.set_user_attr(key, value)
        made = self.job.ledger.as_trial(outcome.candidate, outcome.evaluation,
                                        engine=self.engine, attrs=outcome.attrs,
                                        columns=outcome.columns)
        storage, trial_id = self.study._storage, trial._trial_id
        try:
            with batched(self.study):  # one transaction where the storage allows
                for name, value in made.params.items():
                    distribution = made.distributions[name]
                    storage.set_trial_param(trial_id, name,
                                            distribution.to_internal_repr(value), distribution)
                for key, value in {**made.user_attrs, WORKER_ATTR: self.worker}.items():
                    storage.set_trial_user_attr(trial_id, key, value)
                for key, value in made.system_attrs.items():
                    storage.set_trial_system_attr(trial_id, key, value)
            storage.set_trial_state_values(trial_id, TrialState.COMPLETE, made.values)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker
            warn_taken_over(trial.number)

    def _fail(self, trial: FrozenTrial, exc: BaseException) -> None:
        self._finish(trial, TrialState.FAIL,
                     {FAIL_REASON_ATTR: f"{type(exc).__name__}: {exc}".rstrip(": ")})

    def _finish(self, trial: FrozenTrial, state: TrialState, attrs: dict[str, Any]) -> None:
        storage = self.study._storage
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial._trial_id, key, value)
            storage.set_trial_state_values(trial._trial_id, state)

    def _progress(self, status: str) -> None:
        if self.job.progress is not None:
            self.job.progress(self.job.ledger.complete_count(), self.total, status)


def _done(trial: FrozenTrial | None) -> bool:
    """Recorded: complete, or failed for good (``UnitFailed``)."""
    return trial is not None and (trial.state == TrialState.COMPLETE
                                  or _settled_failure(trial))


def _settled_failure(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(UNIT_FAILED_ATTR))
