"""Fewer database round trips per trial.

Optuna's ``RDBStorage`` commits every sampled parameter and every trial attribute in a
transaction of its own: about 2 ms each on a local PostgreSQL server, 25 or more per
trial for a ResNet-8 design space. ``BatchedRDBStorage.batch()`` collects those writes
for the trial in hand and commits them together in one transaction when the block ends.

Reads inside the block do not see the collected writes (Optuna's cache of parameter
distributions learns a new parameter when it is collected, before it is committed); dse
only batches blocks that write (the sampled parameters, the worker and the metrics), and
Optuna's ``Trial`` keeps its own copy of what it set. A write Optuna refuses (a parameter
whose distribution changed, a trial already finished) raises when the block ends, and
none of the block's writes are kept. If the private Optuna helpers this relies on are
missing (another Optuna version), ``batch()`` changes nothing and every write commits at
once.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import optuna
from optuna import distributions
from optuna.storages import RDBStorage

try:  # private to Optuna: checked, with a fallback to plain writes
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
    _CAN_BATCH = all(hasattr(RDBStorage, name) for name in (
        "_set_trial_param", "_set_trial_param_without_commit", "_set_trial_attr_without_commit"))
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _CAN_BATCH = False


class BatchedRDBStorage(RDBStorage):
    """An ``RDBStorage`` that can commit a trial's parameter and attribute writes at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[Any, ...]] | None = None
        self._batch_thread: int | None = None

    @property
    def can_batch(self) -> bool:
        return _CAN_BATCH

    @contextlib.contextmanager
    def batch(self) -> Iterator[bool]:
        """Collect this thread's trial writes; commit them in one transaction at the end
        (also when the block raises, so that what was sampled is recorded). Yields whether
        writes are collected (False: Optuna lacks the helpers, or an outer batch collects)."""
        if not _CAN_BATCH or self._pending is not None:
            yield self._collecting()
            return
        self._pending, self._batch_thread = [], threading.get_ident()
        try:
            yield True
        finally:
            pending, self._pending, self._batch_thread = self._pending, None, None
            if pending:
                self._commit(pending)

    def _collecting(self) -> bool:
        return self._pending is not None and threading.get_ident() == self._batch_thread

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: Any, previous_distribution: Any) -> None:
        if not self._collecting():
            return super()._set_trial_param(trial_id, param_name, param_value_internal,
                                            distribution, previous_distribution)
        self._pending.append(("param", trial_id, param_name, param_value_internal,
                              distribution, previous_distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._collecting():
            return super().set_trial_user_attr(trial_id, key, value)
        self._pending.append(("user", trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._collecting():
            return super().set_trial_system_attr(trial_id, key, value)
        self._pending.append(("system", trial_id, key, value))

    def _commit(self, pending: list[tuple[Any, ...]]) -> None:
        checked: set[int] = set()  # trials already found and checked to be RUNNING
        with _create_scoped_session(self.scoped_session) as session:
            for kind, trial_id, *rest in pending:
                if kind in ("user", "system"):
                    model = (_models.TrialUserAttributeModel if kind == "user"
                             else _models.TrialSystemAttributeModel)
                    self._set_trial_attr_without_commit(session, model, trial_id, *rest)
                    checked.add(trial_id)
                elif trial_id not in checked or rest[3] is None:
                    self._set_trial_param_without_commit(session, trial_id, *rest)
                    checked.add(trial_id)
                else:  # what that does, less the trial lookup: the rows go in one INSERT
                    name, value, distribution, previous = rest
                    distributions.check_distribution_compatibility(previous, distribution)
                    session.add(_models.TrialParamModel(
                        trial_id=trial_id, param_name=name, param_value=value,
                        distribution_json=distributions.distribution_to_json(distribution)))


@contextlib.contextmanager
def batched(study: optuna.Study) -> Iterator[bool]:
    """``BatchedRDBStorage.batch()`` for the study's storage; nothing for other storages.
    Yields whether the block's trial writes are collected (until the block ends, no write
    reaches the storage)."""
    backend = getattr(study._storage, "_backend", study._storage)
    if isinstance(backend, BatchedRDBStorage):
        with backend.batch() as collecting:
            yield collecting
    else:
        yield False
