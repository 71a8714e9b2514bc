"""Search engines: what proposes candidates. Every engine writes into the same ledger.

The lifecycle of a run: the caller builds the ``Problem`` and the accuracy model, opens
the ledger (the study) and enters a ``SignalGuard``; then ``engine.run(job)`` proposes
candidates, evaluates them with ``dse.evaluate.evaluate`` inside
``job.guard.interruptible()`` blocks (and nowhere else: a signal must never cut a write)
and records each as a complete trial, until the study holds ``job.budget.total_trials``
complete trials (or this worker ran ``job.budget.per_worker_trials``). A rerun of the same
study resumes: trials already complete count toward the budget. A signal propagates as
``KeyboardInterrupt`` (``dse.signals.Terminated`` for SIGTERM) after the trial in hand is
marked failed; the caller writes the results. ``dse.engines.testing.EngineContract`` is
the contract every engine passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from dse.accuracy import AccuracyModel
from dse.problem import Problem
from dse.results.ledger import Ledger
from dse.signals import SignalGuard
from hw_models.errors import ConfigError

Progress = Callable[[int, int, str], None]   # (done, total, status text)
Stage = Callable[[str, str], Progress]       # (what, unit) -> the progress of that work


@dataclass(frozen=True)
class Budget:
    """How much an engine may run: the study's total of complete trials, or this worker's
    own count instead."""

    total_trials: int
    per_worker_trials: int | None = None


@dataclass
class EngineJob:
    """What one run of an engine gets.

    Attributes:
        problem: what is searched and how it is costed.
        ledger: where candidates are recorded (the study).
        budget: when to stop.
        seed: this worker's seed.
        accuracy: the accuracy estimator and its baseline, when accuracy is an objective.
        guard: the active signal guard (entered by the caller).
        progress: told (trials done, total, status) when the run starts and after trials.
        stage: opens the progress of long work inside one trial, by its name and unit
            (ODiMO's DNAS: "DNAS", "step"; EDEN's characterisation: "EDEN", "probe");
            each call starts that work's count afresh.
        before_trial: called before each trial; returns attributes of this worker to record
            with the trial (host, pid, threads: see ``dse.threads``).
    """

    problem: Problem
    ledger: Ledger
    budget: Budget
    seed: int
    accuracy: AccuracyModel | None = None
    guard: SignalGuard = field(default_factory=SignalGuard)
    progress: Progress | None = None
    stage: Stage | None = None
    before_trial: Callable[[], dict[str, Any]] | None = None


class Engine(Protocol):
    """A search method (see the module docstring for the lifecycle)."""

    name: str

    def run(self, job: EngineJob) -> None: ...


def engine_names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def make_engine(name: str, **settings: Any) -> Engine:
    """The engine ``name`` with its settings (e.g. ``sampler`` for ``optuna``)."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown engine '{name}' (choose from {', '.join(_FACTORIES)})")
    return _FACTORIES[name](**settings)


def _optuna(**settings: Any) -> Engine:
    from dse.engines.optuna_engine import OptunaEngine
    return OptunaEngine(**settings)


def _odimo(**settings: Any) -> Engine:
    from dse.engines.odimo import OdimoEngine
    return OdimoEngine(**settings)


def _eden(**settings: Any) -> Engine:
    from dse.engines.eden import EdenEngine
    return EdenEngine(**settings)


def _odimo_eden(**settings: Any) -> Engine:
    from dse.engines.eden import OdimoEdenEngine
    return OdimoEdenEngine(**settings)


_FACTORIES: dict[str, Callable[..., Engine]] = {"optuna": _optuna, "odimo": _odimo,
                                                 "eden": _eden, "odimo+eden": _odimo_eden}
