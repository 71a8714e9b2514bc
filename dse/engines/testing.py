"""The contract every engine passes (as Optuna's sampler tests do): subclass
``EngineContract`` in a test module and implement ``make_engine(problem, study)``, as an
engine's registered factory is called (``dse.engines.EngineSpec``).

The checks use a five-layer toy problem, a deterministic stub estimator and a SQLite study,
so they run in seconds and need no torch.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import optuna
import pytest

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult
from dse.accuracy.abilities import Confirmable, Confirming
from dse.engines import Budget, Engine, EngineJob
from dse.evaluate import evaluate, objective_values
from dse.problem import Limits, Problem, build_problem
from dse.results.ledger import (
    BASELINE_ATTR,
    BASELINES,
    ENGINE_ATTR,
    METRICS_ATTR,
    WORKER_ATTR,
    Ledger,
    open_ledger,
)
from dse.signals import SignalGuard
from dse.space import decode
from hw_models.layer_table import LayerTable

TOY_LAYERS = [
    dict(name="first", kind="conv", cin=3, cout=16, kx=3, ky=3, ox=16, oy=16),
    dict(name="dw", kind="depthwise", cin=16, cout=16, kx=3, ky=3, ox=16, oy=16, groups=16),
    dict(name="mid", kind="conv", cin=16, cout=32, kx=3, ky=3, ox=8, oy=8, stride=2),
    dict(name="big", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=64, oy=64),
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


class StubEstimator(Confirmable, Confirming):
    """Accuracy falls with the analog share and the weight BER; optionally sends SIGTERM
    to this process during its ``signal_at``-th call (from inside the evaluation).

    Its per-image correctness is that of ``IMAGES`` fixed images of ``split``: image ``i``
    is right when a fixed uniform draw ``u_i`` is below the accuracy, so a more accurate
    candidate gets a superset of a less accurate one's images right (as real candidates
    mostly agree), and the validation and test images differ."""

    IMAGES = 400

    def __init__(self, signal_at: int | None = None, *, split: str = "val") -> None:
        self.calls = 0
        self.signal_at = signal_at
        self.split = split
        self._draws = np.random.default_rng(0 if split == "val" else 1).random(self.IMAGES)

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        self.calls += 1
        if self.calls == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        accuracy = 0.95 - 0.04 * sum(candidate.n_analog) / 138 - 50 * max(
            candidate.weight_ber)
        return ProbeResult.from_correct((self._draws < accuracy)[None, None], seconds=0.0)

    def settings(self) -> dict[str, object]:
        return {"split": self.split, "stub": True}

    def confirming(self, *, steps: int = 0, finetune_seeds: int = 1, split: str = "test"
                   ) -> "StubEstimator":
        """The same stub on the images of ``split`` (a search's test-split estimator; it
        has no fine-tune, so ``steps`` and ``finetune_seeds`` change nothing)."""
        return StubEstimator(split=split)


def toy_problem() -> Problem:
    return build_problem(network="toy", dataset=None, objectives="accuracy,latency,energy",
                         limits=Limits(max_accuracy_drop_pp=None),
                         table=LayerTable.from_records(TOY_LAYERS))


class EngineContract:
    """Checks every engine must pass."""

    def make_engine(self, problem: Problem, study: optuna.Study) -> Engine:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------

    def _run(self, tmp_path: Path, trials: int, estimator: StubEstimator | None = None,
             seed: int = 0) -> tuple[optuna.Study, StubEstimator]:
        url = f"sqlite:///{tmp_path / 'study.db'}"
        problem = toy_problem()
        study, _ = open_ledger(name="contract", storage=url, identity={"toy": 1},
                               problem=problem)
        estimator = estimator or StubEstimator()
        accuracy = AccuracyModel(estimator, 0.95)
        with SignalGuard() as guard:
            job = EngineJob(problem=problem, ledger=Ledger(study, problem),
                            budget=Budget(trials), seed=seed, accuracy=accuracy, guard=guard)
            self.make_engine(problem, study).run(job)
        return study, estimator

    @staticmethod
    def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))

    # -- the contract -------------------------------------------------------------------

    def test_writes_complete_trials_with_their_evaluation(self, tmp_path: Path) -> None:
        study, estimator = self._run(tmp_path, trials=6)
        complete = self._complete(study)
        assert len(complete) == 6 and estimator.calls >= 1
        problem = toy_problem()
        accuracy = AccuracyModel(StubEstimator(), 0.95)
        for trial in complete:
            candidate = decode(trial.params, problem.space)
            evaluation = evaluate(candidate, problem, accuracy)
            metrics = trial.user_attrs[METRICS_ATTR]
            assert metrics["latency_s"] == evaluation.metrics["latency_s"]
            assert metrics["accuracy"] == evaluation.metrics["accuracy"]
            assert trial.values == objective_values(evaluation, problem)
            assert trial.user_attrs[ENGINE_ATTR]
            assert trial.user_attrs[WORKER_ATTR]["pid"] > 0

    def test_evaluates_the_baselines(self, tmp_path: Path) -> None:
        study, _ = self._run(tmp_path, trials=len(BASELINES) + 2)
        labels = {t.user_attrs.get(BASELINE_ATTR) for t in self._complete(study)}
        assert set(BASELINES) <= labels

    def test_respects_the_budget_and_resumes(self, tmp_path: Path) -> None:
        study, _ = self._run(tmp_path, trials=5)
        assert len(self._complete(study)) == 5
        study, _ = self._run(tmp_path, trials=5, seed=1)
        assert len(self._complete(study)) == 5  # nothing more to do
        study, _ = self._run(tmp_path, trials=8, seed=2)
        assert len(self._complete(study)) == 8

    def test_a_sigterm_keeps_finished_trials_and_the_study_resumes(
            self, tmp_path: Path) -> None:
        from dse.signals import Terminated
        with pytest.raises(Terminated):
            self._run(tmp_path, trials=8, estimator=StubEstimator(signal_at=4))
        study = optuna.load_study(study_name="contract",
                                  storage=f"sqlite:///{tmp_path / 'study.db'}")
        states = [t.state for t in study.trials]
        assert optuna.trial.TrialState.RUNNING not in states
        kept = len(self._complete(study))
        assert 0 < kept < 8
        study, _ = self._run(tmp_path, trials=8)
        assert len(self._complete(study)) == 8

    def test_runs_without_accuracy(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'study.db'}"
        problem = build_problem(network="toy", dataset=None, objectives="latency,energy",
                                table=LayerTable.from_records(TOY_LAYERS))
        study, _ = open_ledger(name="costs", storage=url, identity={}, problem=problem)
        with SignalGuard() as guard:
            self.make_engine(problem, study).run(EngineJob(
                problem=problem, ledger=Ledger(study, problem), budget=Budget(5), seed=0,
                guard=guard))
        complete = self._complete(study)
        assert len(complete) == 5
        assert all(t.user_attrs[METRICS_ATTR].get("accuracy") is None for t in complete)

