"""Worker liveness on storages without Optuna's heartbeats (SQLite, journal files), and of
trials that Optuna's heartbeats leave alone (an engine's claim of a unit of work, on every
storage): the heartbeat attribute a worker writes, the check that fails a gone worker's
trials, and the requeue of a failed trial that came from the queue."""
from __future__ import annotations

import time
from typing import Any

import optuna

from dse.config import GRACE_PERIOD_S
from dse.host import dead_here
from dse.results.ledger import REQUEUED_ATTR, UNIT_ATTR, labels_to_keep
from dse.storage.storage import journal_path, liveness_of, sqlite_path

HEARTBEAT_ATTR = "dse:heartbeat"  # trial system attribute: Unix time of the last beat


class OrphanCheck:
    """Fails the RUNNING trials whose worker is gone, on storages without Optuna's
    heartbeats; calling it returns how many it failed.

    On SQLite (one worker at a time, under a file lock: this one) every RUNNING trial was
    left by a worker that died. On a journal file, a trial whose heartbeat (written by its
    worker's runner) has not changed for ``grace_period_s`` as timed by this checker's own
    clock (so clock skew between nodes and a stalled file lock do not count; a fresh
    checker waits a grace period before it judges), or whose worker ran in this host's
    process namespace and no longer exists. A failed trial that came from the queue (a
    baseline, a retry) goes back to it. On a database, Optuna's heartbeats judge trials;
    this check judges only the claims of units (``UNIT_ATTR``), which beat with the
    attribute as on a journal file.
    """

    def __init__(self, storage_url: str, grace_period_s: float = GRACE_PERIOD_S) -> None:
        self.sqlite = sqlite_path(storage_url) is not None
        self.journal = journal_path(storage_url) is not None
        self.database = storage_url.split(":", 1)[0].split("+", 1)[0] in ("postgresql",
                                                                          "mysql")
        self.grace_period_s = grace_period_s
        self._seen: dict[int, tuple[Any, float]] = {}  # trial id: (beat, when it was seen)

    @classmethod
    def of(cls, study: optuna.Study) -> "OrphanCheck":
        """The check for the study's storage, timed as it was opened."""
        liveness = liveness_of(study)
        check = cls("", liveness.grace_period_s)
        check.sqlite, check.journal = liveness.kind == "sqlite", liveness.kind == "journal"
        check.database = liveness.kind == "database"
        return check

    def __call__(self, study: optuna.Study) -> int:
        if not (self.sqlite or self.journal or self.database):
            return 0
        now_s = time.monotonic()
        failed = 0
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        self._seen = {key: value for key, value in self._seen.items()
                      if key in {t._trial_id for t in running}}
        for trial in running:
            if self.database and UNIT_ATTR not in trial.system_attrs:
                continue  # Optuna's heartbeat judges it
            if not (self.sqlite or self._silent(trial, now_s)
                    or dead_here(trial.user_attrs.get("worker", {}))):
                continue
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                                   "its worker stopped without finishing it")
                study._storage.set_trial_state_values(trial._trial_id,
                                                      optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile, or failed by another worker
            requeue(study, trial._trial_id, worker_died=True)
            failed += 1
        return failed

    def _silent(self, trial: optuna.trial.FrozenTrial, now_s: float) -> bool:
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != beat:
            self._seen[trial._trial_id] = (beat, now_s)
            return False
        return now_s - seen[1] > self.grace_period_s


MAX_REQUEUES = 3  # a queued trial whose worker died is queued again this many times


def requeue(study: optuna.Study, trial_id: int, *, worker_died: bool = False) -> None:
    """Put a queued trial's parameters back in the queue (with its labels, e.g. baseline).
    A trial whose worker died (it may be what killed it) goes back ``MAX_REQUEUES`` times
    at most; one stopped by a signal always does."""
    frozen = study._storage.get_trial(trial_id)
    fixed = frozen.system_attrs.get("fixed_params")
    if not fixed:
        return  # sampled, not queued: the sampler proposes again
    labels = labels_to_keep(frozen.user_attrs)
    if worker_died:
        labels[REQUEUED_ATTR] = labels.get(REQUEUED_ATTR, 0) + 1
        if labels[REQUEUED_ATTR] > MAX_REQUEUES:
            return
    study.enqueue_trial(fixed, user_attrs=labels or None)
