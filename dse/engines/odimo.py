"""``--engine odimo``: ODiMO's differentiable channel-split search, one trial per lambda.

For each cost weight lambda of the grid (ascending), ``networks.odimo.odimo_search`` trains
the supernet from the baseline checkpoint and keeps each channel's argmax; the split, with
the DRAM at its nominal point (ODiMO does not model DRAM), is then measured by the study's
own accuracy estimator and cost model, as every engine's candidates are, and recorded with
``engine = odimo``, its lambda, the channels chosen and the search's own numbers. The
study's queued baselines run first. A rerun skips the lambdas already measured; workers
sharing the study measure each lambda once (``dse.engines.units``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from dse.accuracy.abilities import TrainsOnProbeData
from dse.accuracy.defaults import MAX_EPOCHS
from dse.engines import EngineJob, EngineSpec, register, setting
from dse.engines.units import Outcome, RecordedKey, Unit, UnitFailed, run_units
from dse.evaluate import evaluate
from dse.results.ledger import ENGINE_ATTR
from dse.results.ledger import ODIMO_LAMBDA_ATTR as LAMBDA_ATTR
from dse.results.ledger import ODIMO_SEARCH_ATTR as SEARCH_ATTR
from dse.space import at_point
from hw_models.errors import ConfigError

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

DEFAULT_LAMBDAS = (0.01, 0.1, 1.0, 10.0)  # dimensionless: the cost is normalised
DEFAULT_DNAS_EPOCHS = 10
ODIMO_TARGETS = ("latency", "energy")  # the cost ODiMO's loss weighs


@dataclass(frozen=True)
class SplitChoice:
    """What one search chose: counts, channels and its own record."""

    n_analog: tuple[int, ...]
    analog_channels: tuple[tuple[int, ...] | None, ...]
    record: dict[str, Any] = field(default_factory=dict)


Searcher = Callable[[float], SplitChoice]


@dataclass
class OdimoEngine:
    """ODiMO over the lambda grid ``cost_weights``; ``searcher`` replaces the supernet search
    (tests: a stub), else it is built from the probe's checkpoint and data."""

    cost_weights: tuple[float, ...] = DEFAULT_LAMBDAS
    dnas_epochs: int = DEFAULT_DNAS_EPOCHS
    target: str = ODIMO_TARGETS[0]
    searcher: Searcher | None = None
    name: str = "odimo"

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target)

    def run(self, job: EngineJob) -> None:
        search = self.searcher or self._probe_searcher(job)
        problem = job.problem

        def measure(unit: Unit) -> Outcome:
            weight = float(unit.key)
            choice = search(weight)
            candidate = dataclasses.replace(at_point(problem.space, choice.n_analog, None),
                                            analog_channels=choice.analog_channels)
            return Outcome(candidate, evaluate(candidate, problem, job.accuracy),
                           attrs={LAMBDA_ATTR: weight, SEARCH_ATTR: choice.record})
        run_units(job, self.name, lambda_units(self.cost_weights, "lambda {:g} measured"),
                  measure, recorded_key=recorded_lambda(self.name))

    def _probe_searcher(self, job: EngineJob) -> Searcher:
        return probe_searcher(job, self.dnas_epochs, self.target)


def probe_searcher(job: EngineJob, dnas_epochs: int, target: str) -> Searcher:
    """ODiMO's supernet search on the probe's checkpoint and training data."""
    if job.accuracy is None or not isinstance(job.accuracy.estimator, TrainsOnProbeData):
        raise ConfigError("--engine odimo trains on the probe's data: it needs accuracy "
                          "among the objectives and the built-in probe (not "
                          "--accuracy-estimator)")
    setup = job.accuracy.estimator.setup
    from networks.odimo import OdimoConfig, odimo_search

    problem = job.problem

    def search(weight: float) -> SplitChoice:
        config = OdimoConfig(cost_weight=weight, epochs=dnas_epochs, target=target,
                             seed=job.seed)
        progress = job.stage("DNAS", "step") if job.stage is not None else None
        result = odimo_search(setup.checkpoint, setup.bundle, problem.table, problem.soc,
                              config, device=setup.device, progress=progress)
        if result.best_epoch == 0:  # no epoch ended with a finite validation cross-entropy
            raise UnitFailed(f"ODiMO's search at lambda {weight:g} diverged (no epoch "
                             "ended with a finite loss)")
        return SplitChoice(result.n_analog, result.analog_channels, {
            "target": target, "epochs": dnas_epochs, "best_epoch": result.best_epoch,
            "samples": result.samples, "seconds": result.seconds,
            "history": result.history})
    return search


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """'0.01,0.1, 1' -> (0.01, 0.1, 1.0); one line naming ``option`` on anything else (an
    empty entry included)."""
    parts = [part.strip() for part in text.split(",")]
    if text.strip() and not all(parts):
        raise ConfigError(f"{option} has an empty entry: '{text}'")
    try:
        return tuple(float(part) for part in parts if part)
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, not '{text}'") from None


@dataclass(frozen=True)
class OdimoSettings:
    cost_weights: tuple[float, ...] = setting(
        DEFAULT_LAMBDAS, flag="--lambdas", metavar="L1,L2,...", parse=parse_floats,
        help="cost weights of ODiMO's loss, dimensionless (the cost is normalised by "
             "all-digital)")
    dnas_epochs: int = setting(DEFAULT_DNAS_EPOCHS, binding=True,
                               help="supernet search epochs per lambda")
    target: str = setting(ODIMO_TARGETS[0], flag="--odimo-target", choices=ODIMO_TARGETS,
                          binding=True, help="the cost its loss weighs")

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target)


def _factory(settings: OdimoSettings, problem: Any, study: Any) -> OdimoEngine:
    return OdimoEngine(cost_weights=settings.cost_weights, dnas_epochs=settings.dnas_epochs,
                       target=settings.target)


SPEC = register(EngineSpec(
    name="odimo", settings=OdimoSettings, factory=_factory,
    summary="ODiMO's differentiable channel-split search, one trial per --lambdas value, "
            "DRAM at nominal",
    needs=frozenset({"accuracy", "probe"})))


def lambda_units(cost_weights: tuple[float, ...], done_status: str) -> list[Unit]:
    """One unit of work per cost weight, ascending (``done_status``: its status, formatted
    with the weight)."""
    return [Unit(repr(float(weight)), done_status.format(weight))
            for weight in sorted(set(cost_weights))]


def recorded_lambda(engine: str) -> RecordedKey:
    """The unit of a trial of ``engine`` recorded before units were claimed: its lambda."""
    def key(trial: FrozenTrial) -> str | None:
        weight = trial.user_attrs.get(LAMBDA_ATTR)
        if trial.user_attrs.get(ENGINE_ATTR) != engine or not isinstance(weight, (int, float)):
            return None
        return repr(float(weight))
    return key


def check_settings(cost_weights: tuple[float, ...], dnas_epochs: int, target: str) -> None:
    if not cost_weights:
        raise ConfigError("--lambdas is empty: give at least one cost weight")
    if any(not (math.isfinite(weight) and weight >= 0) for weight in cost_weights):
        raise ConfigError("--lambdas must be finite numbers >= 0")
    twice = sorted({weight for weight in cost_weights if cost_weights.count(weight) > 1})
    if twice:
        raise ConfigError(f"--lambdas gives {', '.join(f'{w:g}' for w in twice)} more than "
                          "once: each lambda is one search")
    if not 1 <= dnas_epochs <= MAX_EPOCHS:
        raise ConfigError(f"--dnas-epochs must be in [1, {MAX_EPOCHS:,}] (got {dnas_epochs})")
    if target not in ODIMO_TARGETS:
        raise ConfigError(f"--odimo-target must be latency or energy, not '{target}'")
