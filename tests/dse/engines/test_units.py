"""An engine's units of work as trials: a claim stopped by a signal frees its unit."""
from __future__ import annotations

import optuna
import pytest
import test_contract

from dse.engines.testing import StubEstimator
from dse.results.ledger import EDEN_ATTR, UNIT_ATTR
from dse.signals import Terminated


def test_a_unit_stopped_by_a_signal_is_failed_and_measured_on_resume(tmp_path):
    contract = test_contract.TestEdenEngine()  # its toy study, on SQLite
    eight_queued = 8
    with pytest.raises(Terminated):  # in the unit's second probe
        contract._run(tmp_path, trials=9, estimator=StubEstimator(signal_at=eight_queued + 2))
    study = optuna.load_study(study_name="contract",
                              storage=f"sqlite:///{tmp_path / 'study.db'}")
    [claim] = [t for t in study.trials if UNIT_ATTR in t.system_attrs]
    assert claim.state == optuna.trial.TrialState.FAIL
    assert claim.user_attrs["fail_reason"] == "Terminated"
    assert claim.system_attrs[UNIT_ATTR] == "eden:all-digital" and not claim.params
    study, _ = contract._run(tmp_path, trials=9)
    [mapped] = [t for t in contract._complete(study) if EDEN_ATTR in t.user_attrs]
    assert mapped.system_attrs[UNIT_ATTR] == "eden:all-digital"
    assert mapped.user_attrs[EDEN_ATTR]["mapping"] == "all-digital"
    assert len(contract._complete(study)) == 9
