"""Reading a whole study fast, for the read-only commands.

Optuna's ``RDBStorage`` builds a SQLAlchemy object for every stored row: a study of 10,000
trials with 25 parameters each (250,000 rows) takes about 12 s to load on SQLite. Here the
rows come in one plain query per table, each distribution's JSON is parsed once, and the
trials are built directly: about 1 s for the same study. Other storages (journal files,
in-memory) are read through Optuna as usual.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable, Sequence

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState


class StudySnapshot:
    """The trials and user attributes of a study as read at one moment (what the tables,
    plots and reports read: ``study_name``, ``user_attrs``, ``get_trials``)."""

    def __init__(self, study_name: str, user_attrs: dict[str, Any],
                 trials: list[FrozenTrial]) -> None:
        self.study_name = study_name
        self.user_attrs = user_attrs
        self._trials = trials

    @property
    def trials(self) -> list[FrozenTrial]:
        return list(self._trials)

    def get_trials(self, deepcopy: bool = True,
                   states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
        kept = set(states) if states is not None else None
        return [t for t in self._trials if kept is None or t.state in kept]


def snapshot(study: optuna.Study) -> Any:
    """A ``StudySnapshot`` of ``study`` read in a few queries (RDB storages), else the
    study itself."""
    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, RDBStorage):
        return study
    try:
        trials = _read_trials(backend.engine, study._study_id)
    except Exception:  # another schema version or driver: Optuna's own reader, always right
        return study
    return StudySnapshot(study.study_name, study.user_attrs, trials)


def _rows(cursor: Any, table: str, columns: Sequence[str], trial_ids: str) -> list[Any]:
    """Plain tuples from the driver's cursor (SQLAlchemy's rows cost more than the query)."""
    cursor.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE trial_id IN "
                   f"({trial_ids})")
    return list(cursor.fetchall())


def _read_trials(engine: Any, study_id: int) -> list[FrozenTrial]:
    from optuna.storages._rdb.models import TrialValueModel  # private: checked by a test
    study = int(study_id)  # Optuna's integer key, written into the queries as a literal
    trial_ids = f"SELECT trial_id FROM trials WHERE study_id = {study}"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT trial_id, number, state, datetime_start, datetime_complete "
                       f"FROM trials WHERE study_id = {study} ORDER BY number")
        trials = list(cursor.fetchall())
        params = _rows(cursor, "trial_params", ("trial_id", "param_id", "param_name",
                                                "param_value", "distribution_json"),
                       trial_ids)
        values = _rows(cursor, "trial_values", ("trial_id", "objective", "value",
                                                "value_type"), trial_ids)
        user = _rows(cursor, "trial_user_attributes", ("trial_id", "key", "value_json"),
                     trial_ids)
        system = _rows(cursor, "trial_system_attributes", ("trial_id", "key", "value_json"),
                       trial_ids)
    finally:
        raw.close()
    by_trial: dict[str, dict[int, list[Any]]] = {
        "params": defaultdict(list), "values": defaultdict(list), "user": defaultdict(list),
        "system": defaultdict(list)}
    for kind, rows in (("params", params), ("values", values), ("user", user),
                       ("system", system)):
        for row in rows:
            by_trial[kind][row[0]].append(row)
    parsed: dict[str, BaseDistribution] = {}
    value_type = TrialValueModel.TrialValueType
    built = []
    for trial_id, number, state_name, start, complete in trials:
        distributions, external = {}, {}
        for _, _, name, value, text in sorted(by_trial["params"][trial_id],
                                              key=lambda row: row[1]):
            distribution = parsed.get(text)
            if distribution is None:
                distribution = parsed[text] = json_to_distribution(text)
            distributions[name] = distribution
            external[name] = distribution.to_external_repr(value)
        stored = sorted(by_trial["values"][trial_id], key=lambda row: row[1])
        trial_values = [TrialValueModel.stored_repr_to_value(value, value_type[kind])
                        for _, _, value, kind in stored] or None
        built.append(FrozenTrial(
            number=number, state=TrialState[state_name], value=None, values=trial_values,
            datetime_start=_datetime(start), datetime_complete=_datetime(complete),
            params=external, distributions=distributions,
            user_attrs={key: json.loads(text) for _, key, text in by_trial["user"][trial_id]},
            system_attrs={key: json.loads(text)
                          for _, key, text in by_trial["system"][trial_id]},
            intermediate_values={}, trial_id=trial_id))
    return built


def _datetime(value: Any) -> Any:
    """SQLite returns datetimes as text through plain queries."""
    if isinstance(value, str):
        import datetime
        return datetime.datetime.fromisoformat(value)
    return value
