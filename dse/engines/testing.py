"""The contract every engine passes (as Optuna's sampler tests do): subclass
``EngineContract`` in a test module and implement ``make_engine(problem, study)``, as an
engine's registered factory is called (``dse.engines.EngineSpec``).

The checks use a five-layer toy problem, a deterministic stub estimator and a SQLite study
(a journal file for two workers), so they run in seconds and need no torch.
"""
from __future__ import annotations

import hashlib
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import optuna
import pytest

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult
from dse.accuracy.abilities import Characterising, Confirmable, Confirming, StartsFrom
from dse.engines import WAITING_STATUS, Budget, Engine, EngineJob, Stage
from dse.evaluate import evaluate, objective_values
from dse.problem import Limits, Problem, build_problem
from dse.results.ledger import (
    BASELINE_ATTR,
    BASELINES,
    ENGINE_ATTR,
    METRICS_ATTR,
    SAFE_DRAM_ATTR,
    UNIT_ATTR,
    WORKER_ATTR,
    Ledger,
    open_ledger,
)
from dse.signals import SignalGuard
from dse.space import decode
from dse.storage.storage import open_storage
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable

TOY_LAYERS = [
    dict(name="first", kind="conv", cin=3, cout=16, kx=3, ky=3, ox=16, oy=16),
    dict(name="dw", kind="depthwise", cin=16, cout=16, kx=3, ky=3, ox=16, oy=16, groups=16),
    dict(name="mid", kind="conv", cin=16, cout=32, kx=3, ky=3, ox=8, oy=8, stride=2),
    dict(name="big", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=64, oy=64),
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


@dataclass(frozen=True)
class StubWeights:
    """Weights a stub method delivered: the stub's accuracy loss per unit of weight BER is
    divided by ``tolerance_gain`` when measured from them."""

    tensors_sha256: str
    tolerance_gain: float = 1.0
    train_config: dict[str, Any] = field(default_factory=dict)


class StubEstimator(Confirmable, Confirming, StartsFrom, Characterising):
    """Accuracy falls with the analog share and the weight BER; optionally sends SIGTERM
    to this process during the ``signal_at``-th call of it and the estimators derived from
    it (from inside the evaluation).

    Its per-image correctness is that of ``IMAGES`` fixed images of ``split``: image ``i``
    is right when a fixed uniform draw ``u_i`` is below the accuracy, so a more accurate
    candidate gets a superset of a less accurate one's images right (as real candidates
    mostly agree), and the images of different splits differ.

    It can start from delivered weights (``StubWeights``: their gain divides the loss per
    BER) and measure without a fine-tune on another split; the estimators so derived share
    ``measured``, a log of (split, fine-tuned, gain, candidate) per call, and the kept
    weights (``kept``; ``folder`` stands for the results folder)."""

    IMAGES = 400
    SPLIT_SEEDS = {"val": 0, "test": 1, "val-a": 2, "val-b": 3}

    def __init__(self, signal_at: int | None = None, *, split: str = "val",
                 gain: float = 1.0, fine_tuned: bool = True, folder: Path | None = None,
                 shared: dict[str, Any] | None = None) -> None:
        self.calls = 0
        self.signal_at = signal_at
        self.split = split
        self.gain, self.fine_tuned, self.folder = gain, fine_tuned, folder
        self.shared = shared if shared is not None else {"measured": [], "kept": {},
                                                         "signal_at": signal_at}
        self._draws = np.random.default_rng(self.SPLIT_SEEDS.get(split, 9)).random(
            self.IMAGES)

    @property
    def measured(self) -> list[tuple[str, bool, float, ProbeCandidate]]:
        return self.shared["measured"]

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        self.calls += 1
        self.measured.append((self.split, self.fine_tuned, self.gain, candidate))
        if len(self.measured) == self.shared.get("signal_at"):
            os.kill(os.getpid(), signal.SIGTERM)
        accuracy = 0.95 - 0.04 * sum(candidate.n_analog) / 138 - 50 * max(
            candidate.weight_ber) / self.gain
        return ProbeResult.from_correct((self._draws < accuracy)[None, None], seconds=0.0)

    def _derived(self, *, split: str, gain: float, fine_tuned: bool) -> "StubEstimator":
        return StubEstimator(split=split, gain=gain, fine_tuned=fine_tuned,
                             folder=self.folder, shared=self.shared)

    def settings(self) -> dict[str, object]:
        return {"split": self.split, "stub": True}

    def confirming(self, *, steps: int = 0, finetune_seeds: int = 1, split: str = "test"
                   ) -> "StubEstimator":
        """The same stub on the images of ``split`` (a search's test-split estimator; it
        has no fine-tune, so ``steps`` and ``finetune_seeds`` change nothing)."""
        return self._derived(split=split, gain=self.gain, fine_tuned=True)

    def characterising(self, split: str) -> "StubEstimator":
        return self._derived(split=split, gain=self.gain, fine_tuned=False)

    def starting_from(self, weights: Any) -> "StubEstimator":
        return self._derived(split=self.split, gain=weights.tolerance_gain,
                             fine_tuned=self.fine_tuned)

    def keep_weights(self, weights: Any) -> dict[str, object]:
        self.shared["kept"][weights.tensors_sha256] = weights
        return {"tensors_sha256": weights.tensors_sha256, "trained_by": "stub"}

    def weights_of(self, record: dict[str, object]) -> Any:
        found = self.shared["kept"].get(record.get("tensors_sha256"))
        if found is None:
            raise ConfigError("the stub's delivered weights are gone")
        return found

    def weights_dir(self) -> Path | None:
        return self.folder


class BatchedStub(StubEstimator):
    """The stub, measuring candidates ``size`` at a time when asked for many (``Batched``)
    and logging each call's count in ``groups``; otherwise the stub (``signal_at`` as
    there)."""

    def __init__(self, size: int, signal_at: int | None = None, *, split: str = "val"
                 ) -> None:
        super().__init__(signal_at, split=split)
        self.size = size
        self.groups: list[int] = []

    def group_size(self) -> int:
        return self.size

    def many(self, candidates: Sequence[ProbeCandidate]) -> list[ProbeResult]:
        self.groups.append(len(candidates))
        return [self(candidate) for candidate in candidates]


class StubRetrainer:
    """EDEN's retraining for the stub: weights whose weight-BER loss is ``gain`` times
    smaller, named by the request; ``calls`` holds each request it trained for."""

    def __init__(self, gain: float = 10.0, samples_per_epoch: int = 100) -> None:
        self.gain, self.samples_per_epoch = gain, samples_per_epoch
        self.calls: list[tuple[ProbeCandidate, int]] = []
        self.identity = {"stub": True, "gain": gain}

    def train(self, candidate: ProbeCandidate, epochs: int,
              progress: Any) -> tuple[StubWeights, int]:
        self.calls.append((candidate, epochs))
        if progress is not None:
            progress(epochs, epochs, "retrained")
        digest = hashlib.sha256(repr((candidate, epochs, self.gain)).encode()).hexdigest()
        return StubWeights(digest, self.gain), self.samples_per_epoch * epochs


def toy_problem() -> Problem:
    return build_problem(network="toy", dataset=None, objectives="accuracy,latency,energy",
                         limits=Limits(max_accuracy_drop_pp=None),
                         table=LayerTable.from_records(TOY_LAYERS))


class PausingEstimator(StubEstimator):
    """The stub, that calls ``pause()`` from inside its ``at``-th call."""

    def __init__(self, at: int, pause: Callable[[], None]) -> None:
        super().__init__()
        self.at, self.pause = at, pause

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        if self.calls + 1 == self.at:
            self.pause()
        return super().__call__(candidate)


@dataclass
class Worker:
    """One worker of ``TwoWorkers``: its engine (None: the pair's), estimator and hooks."""

    engine: Engine | None = None
    estimator: Any = field(default_factory=StubEstimator)
    before_trial: Callable[[], dict[str, Any]] | None = None
    stage: Stage | None = None
    statuses: list[str] = field(default_factory=list)  # what it told its progress


class TwoWorkers:
    """Two workers of one study (``url``: a journal file or a database), each with its own
    storage connection: worker A runs in the calling thread; ``pause()``, called from inside
    A's run (its estimator, its searcher, a hook of its job), runs worker B in a thread and
    holds A until B waits for A's work (it tells ``WAITING_STATUS``) or ends. The test, not
    timing, sets where the workers interleave; both then run on to the end."""

    TIMEOUT_S = 120.0  # a worker B that neither waits nor ends by then is a failure

    def __init__(self, url: str, make_engine: Callable[[Problem, optuna.Study], Engine], *,
                 trials: int, problem: Problem | None = None) -> None:
        self.url, self.make_engine, self.trials = url, make_engine, trials
        self.problem = problem or toy_problem()
        study, _ = open_ledger(name="workers", storage=open_storage(url), identity={"toy": 1},
                               problem=self.problem, budget=trials)
        self.queued = len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))
        self._b: Worker | None = None
        self._b_thread: threading.Thread | None = None
        self._b_idle = threading.Event()
        self._b_error: BaseException | None = None

    def run(self, a: Worker, b: Worker) -> optuna.Study:
        """Run A, pausing where its hooks call ``pause()`` (if none does, B runs after A);
        the study when both have ended (B's error, if any, raised here)."""
        self._b = b
        self._work(a, None)
        self.pause()
        assert self._b_thread is not None
        self._b_thread.join(self.TIMEOUT_S)
        assert not self._b_thread.is_alive(), "worker B did not end"
        if self._b_error is not None:
            raise self._b_error
        return self.study()

    def pause(self) -> None:
        """Run B (once) until it waits for A's work or ends."""
        if self._b_thread is not None:
            return
        self._b_thread = threading.Thread(target=self._run_b, name="worker B", daemon=True)
        self._b_thread.start()
        assert self._b_idle.wait(self.TIMEOUT_S), "worker B neither waited nor ended"

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name="workers", storage=open_storage(self.url))

    def _run_b(self) -> None:
        try:
            assert self._b is not None
            self._work(self._b, self._b_idle)
        except BaseException as exc:  # raised again in the calling thread
            self._b_error = exc
        finally:
            self._b_idle.set()

    def _work(self, worker: Worker, idle: threading.Event | None) -> None:
        def progress(done: int, total: int, status: str) -> None:
            worker.statuses.append(status)
            if idle is not None and status == WAITING_STATUS:
                idle.set()

        study = self.study()
        job = EngineJob(problem=self.problem, ledger=Ledger(study, self.problem),
                        budget=Budget(self.trials), seed=0 if idle is None else 1,
                        accuracy=AccuracyModel(worker.estimator, 0.95),
                        guard=SignalGuard(),  # not entered: signals are the main thread's
                        progress=progress, stage=worker.stage,
                        before_trial=worker.before_trial)
        (worker.engine or self.make_engine(self.problem, study)).run(job)


def check_shared_work(study: optuna.Study, trials: int, *, sampled: bool = False) -> None:
    """What two workers of one study must leave: exactly ``trials`` complete trials, each
    queued point complete once, no unit of work complete twice, and (unless the engine
    samples candidates: ``sampled``) every complete trial queued or holding its unit."""
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == trials, [(t.number, t.state.name) for t in study.trials]
    queued = [(t.user_attrs.get(BASELINE_ATTR), t.user_attrs.get(SAFE_DRAM_ATTR))
              for t in complete if "fixed_params" in t.system_attrs]
    assert len(queued) == len(set(queued)), queued
    units = [t.system_attrs[UNIT_ATTR] for t in complete if UNIT_ATTR in t.system_attrs]
    assert len(units) == len(set(units)), units
    if not sampled:
        own = [t.number for t in complete
               if "fixed_params" not in t.system_attrs and UNIT_ATTR not in t.system_attrs]
        assert not own, f"trials {own} hold neither a queued point nor a unit"


class EngineContract:
    """Checks every engine must pass."""

    samples_candidates = False  # True: the engine's own trials are a sampler's draws

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

    def test_two_workers_share_the_work(self, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """Worker B runs while worker A evaluates its first candidate after the queued
        points: neither repeats the other's work, and the budget holds exactly."""
        for module in ("dse.engines.units", "dse.engines.optuna_engine.engine"):
            monkeypatch.setattr(f"{module}.POLL_S", 0.01)
        workers = TwoWorkers(f"journal:{tmp_path / 'study.log'}", self.make_engine, trials=10)
        first_own = workers.queued + 1
        study = workers.run(Worker(estimator=PausingEstimator(first_own, workers.pause)),
                            Worker())
        check_shared_work(study, 10, sampled=self.samples_candidates)
