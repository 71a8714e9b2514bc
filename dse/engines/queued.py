"""Run a study's queued trials (the baselines and their safe DRAM points) for engines that
propose their own candidates: every engine's study holds the same reference points.

Only waiting trials run here: when another worker takes the last one first, this worker
takes none (``study.ask`` would make a new trial and let the sampler fill it, recorded
under this engine's name).
"""
from __future__ import annotations

import optuna

from dse.engines import EngineJob
from dse.engines.objective import make_objective
from dse.engines.runner import TrialRunner, fail_stale
from dse.storage.liveness import OrphanCheck
from dse.storage.storage import liveness_of


class QueueRunner:
    """Runs the study's waiting trials one at a time for ``engine``, as the Optuna engine
    runs its trials: signals cut no write, a trial stopped by a signal goes back to the
    queue, each trial beats (journal files included) and dead workers' trials are failed
    (and requeued) before each trial."""

    def __init__(self, job: EngineJob, engine: str) -> None:
        self.job, self.engine = job, engine
        study = job.ledger.study
        liveness = liveness_of(study)
        self.orphans = OrphanCheck.of(study)
        beat = liveness.heartbeat_interval_s if liveness.kind == "journal" else None
        self.runner = TrialRunner(job.guard, periodic=self.look_for_dead_workers,
                                  periodic_interval_s=liveness.heartbeat_interval_s,
                                  heartbeat_interval_s=beat)

    def look_for_dead_workers(self, study: optuna.Study) -> None:
        fail_stale(study)
        self.orphans(study)

    def run_one(self) -> bool:
        """Run one waiting trial; False when none was waiting."""
        return self.runner.run_waiting(self.job.ledger.study, self._objective) is not None

    def _objective(self, trial: optuna.trial.Trial) -> list[float]:
        job = self.job
        worker = job.before_trial() if job.before_trial is not None else None
        return make_objective(job.problem, job.accuracy, guard=job.guard, worker=worker,
                              budget=None if job.budget.per_worker_trials is not None
                              else job.budget.total_trials, engine=self.engine,
                              named_constraints=job.ledger.named_constraints)(trial)
