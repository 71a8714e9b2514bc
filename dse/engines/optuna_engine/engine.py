"""The Optuna engine's worker loop: a batch of trials at a time until the study's budget is met."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from dse.accuracy.abilities import Batched
from dse.engines import WAITING_STATUS, EngineJob, Progress
from dse.engines.objective import BatchObjective
from dse.engines.optuna_engine.samplers import BATCH_SAMPLERS, DEFAULT_SAMPLER, make_sampler
from dse.engines.runner import TrialRunner, fail_stale
from dse.results.ledger import metrics_of
from dse.results.tables import front_trials
from dse.storage.liveness import OrphanCheck
from dse.storage.storage import liveness_of

POLL_S = 1.0                 # how often a worker waiting for others looks again
# Proposals of one batch learn nothing from each other (TPE's constant liar spreads them as
# if run by parallel workers), so a batch is capped to keep a 50-trial study adaptive: 16,
# what a 2-core machine's probe measured at once before its default grew to 64 fine-tunes
MAX_PROPOSALS = 16
PROGRESS_INTERVAL_S = 0.5    # the progress line is redrawn at most this often


@dataclass
class OptunaEngine:
    """Optuna's ask-and-tell with ``sampler`` (``dse.engines.optuna_engine.samplers``).

    Dead workers are found as the study's storage allows (``dse.storage.storage.Liveness``:
    Optuna's heartbeats on databases, dse's own on journal files, the file lock on SQLite),
    timed as the storage was opened.
    """

    sampler: str = DEFAULT_SAMPLER
    name: str = "optuna"

    def __post_init__(self) -> None:
        make_sampler(self.sampler, 0)  # an unknown sampler fails before any work

    def batch_size(self, job: EngineJob) -> int:
        """Trials asked and measured together: as many candidates as the probe measures at
        once (``Batched.group_size``), at most ``MAX_PROPOSALS``, for a sampler that
        proposes a batch well (``BATCH_SAMPLERS``), else one."""
        estimator: object = job.accuracy.estimator if job.accuracy is not None else None
        if self.sampler not in BATCH_SAMPLERS or not isinstance(estimator, Batched):
            return 1
        return max(1, min(MAX_PROPOSALS, estimator.group_size()))

    def run(self, job: EngineJob) -> None:
        """Run trials until the budget is met, a batch at a time (``batch_size``).

        While the budget is only reached by counting trials still running elsewhere, wait:
        if their worker died, the heartbeat fails them after the grace period and their
        parameters come back as waiting trials, which this worker then runs.
        """
        study = job.ledger.study
        study.sampler = make_sampler(self.sampler, job.seed)
        per_worker = job.budget.per_worker_trials
        total = job.budget.total_trials
        callback = (_ProgressCallback(job, total, per_worker) if job.progress is not None
                    else None)
        liveness = liveness_of(study)
        orphans = OrphanCheck.of(study)

        def look_for_dead_workers(study: optuna.Study) -> None:
            fail_stale(study)
            orphans(study)

        beat = liveness.heartbeat_interval_s if liveness.kind == "journal" else None
        if callback is not None:
            callback.report(study)  # the start: the display's clock and count begin here
        runner = TrialRunner(job.guard, [callback] if callback else [],
                             periodic=look_for_dead_workers,
                             periodic_interval_s=liveness.heartbeat_interval_s,
                             heartbeat_interval_s=beat)
        size = self.batch_size(job)
        objective = BatchObjective(job.problem, job.accuracy, engine=self.name,
                                   budget=None if per_worker else total, guard=job.guard,
                                   named_constraints=job.ledger.named_constraints)

        def worker() -> dict | None:
            return job.before_trial() if job.before_trial is not None else None
        ran = 0
        waiting = False
        while True:
            job.guard.check()
            if per_worker is not None:
                if ran >= per_worker:
                    break
                count = min(size, per_worker - ran)
            else:
                complete, running = _counts(study)
                if complete >= total:
                    break
                if complete + running >= total:
                    if not waiting and job.progress is not None:
                        job.progress(min(complete, total), total, WAITING_STATUS)
                    waiting = True
                    look_for_dead_workers(study)
                    with job.guard.interruptible():
                        time.sleep(POLL_S)
                    continue
                count = min(size, total - complete - running)
            runner.run_batch(study, objective, count, worker)
            ran += count
            waiting = False
        if callback is not None:
            callback.report(study)


def _counts(study: optuna.Study) -> tuple[int, int]:
    """Complete and running trials, in one storage query."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    trials = study.get_trials(deepcopy=False, states=states)
    complete = sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return complete, len(trials) - complete


class _ProgressCallback:
    """After a trial: trials done, front size and the fastest front point so far.

    Redraws at most every ``PROGRESS_INTERVAL_S`` (``report`` draws the last state), reading
    the study without copying it, so that long studies on a shared database stay cheap to
    watch.
    """

    def __init__(self, job: EngineJob, total: int, per_worker: int | None) -> None:
        assert job.progress is not None
        self.progress: Progress = job.progress
        self.objectives = list(job.problem.objectives)
        self.total = total
        self.per_worker = per_worker  # with --trials-per-worker: this worker's own count
        self.ran = 0
        self.last_s = -np.inf

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        self.ran += 1
        if time.monotonic() - self.last_s >= PROGRESS_INTERVAL_S:
            self.report(study)

    def report(self, study: optuna.Study) -> None:
        self.last_s = time.monotonic()
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        front = front_trials(complete, self.objectives)
        status = f"front {len(front)}"
        if front:
            fastest = metrics_of(min(front, key=lambda t: metrics_of(t).get("latency_s",
                                                                            np.inf)))
            status += f", fastest {fastest['latency_s'] * 1e3:.3f} ms"
            if fastest.get("accuracy") is not None:
                status += f" at {fastest['accuracy']:.2%}"
        if self.per_worker is not None:
            self.progress(self.ran, self.per_worker,
                          f"(this worker; study {len(complete)} complete) {status}")
        else:
            self.progress(min(len(complete), self.total), self.total, status)
