"""The fast study reader gives exactly what Optuna's own reader gives."""
from __future__ import annotations

import optuna

from dse.storage.reader import StudySnapshot, snapshot
from dse.storage.storage import open_storage

State = optuna.trial.TrialState
FIELDS = ("number", "state", "values", "params", "distributions", "user_attrs",
          "system_attrs", "datetime_start", "datetime_complete", "_trial_id")


def _varied_study(storage) -> optuna.Study:
    study = optuna.create_study(storage=storage, directions=["minimize", "maximize"])
    study.set_user_attr("objectives", {"latency": {}})
    study.enqueue_trial({"x": 0.5}, user_attrs={"baseline": "b"})
    for index in range(6):
        trial = study.ask()
        x = trial.suggest_float("x", -1, 1)
        trial.suggest_int("n", 0, 64, step=16)
        trial.suggest_categorical("flag", [False, True])
        trial.set_user_attr("metrics", {"latency_s": x, "accuracy": None})
        trial.storage.set_trial_system_attr(trial._trial_id, "dse:heartbeat", 1.5)
        if index == 1:
            study.tell(trial, state=State.FAIL)
        elif index == 2:
            study.tell(trial, [float("inf"), float("-inf")])
        elif index != 3:  # index 3 stays RUNNING
            study.tell(trial, [x, -x])
    study.enqueue_trial({"x": 0.1})  # stays WAITING
    return study


def test_the_snapshot_matches_optunas_trials(tmp_path):
    study = _varied_study(open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    fresh = optuna.load_study(study_name=study.study_name,
                              storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    view = snapshot(fresh)
    assert isinstance(view, StudySnapshot) and view.user_attrs == study.user_attrs
    expected = study.get_trials(deepcopy=False)
    assert len(view.trials) == len(expected) == 7
    for mine, theirs in zip(view.trials, expected):
        for field in FIELDS:
            assert getattr(mine, field) == getattr(theirs, field), (mine.number, field)
    assert [t.number for t in view.get_trials(states=(State.COMPLETE,))] == [
        t.number for t in study.get_trials(states=(State.COMPLETE,))]


def test_other_storages_are_read_through_optuna(tmp_path):
    study = _varied_study(open_storage(f"journal:{tmp_path / 'j.log'}"))
    assert snapshot(study) is study
