"""Run a study's queued trials (the baselines and their safe DRAM points) for engines that
propose their own candidates: every engine's study holds the same reference points."""
from __future__ import annotations

import optuna

from dse.engines import EngineJob
from dse.engines.objective import make_objective
from dse.engines.runner import TrialRunner, fail_stale


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def budget_left(job: EngineJob, ran: int) -> bool:
    """Whether this worker may run another trial (its own count, or the study's total)."""
    per_worker = job.budget.per_worker_trials
    if per_worker is not None:
        return ran < per_worker
    return job.ledger.complete_count() < job.budget.total_trials


def run_queued(job: EngineJob, engine: str) -> int:
    """Evaluate the queued trials while the budget allows; return how many ran. Each is
    asked and told as the Optuna engine does (signals cut no write; a trial stopped by a
    signal goes back to the queue)."""
    study = job.ledger.study
    runner = TrialRunner(job.guard, periodic=fail_stale)
    ran = 0
    if job.progress is not None:  # the start: the display's clock and count begin here
        job.progress(job.ledger.complete_count(), job.budget.total_trials, "starting")
    while waiting_count(study) and budget_left(job, ran):
        worker = job.before_trial() if job.before_trial is not None else None
        objective = make_objective(job.problem, job.accuracy, guard=job.guard, worker=worker,
                                   budget=None if job.budget.per_worker_trials is not None
                                   else job.budget.total_trials, engine=engine,
                                   named_constraints=job.ledger.named_constraints)
        runner.run(study, objective)
        ran += 1
        if job.progress is not None:
            job.progress(job.ledger.complete_count(), job.budget.total_trials, "baselines")
    return ran
