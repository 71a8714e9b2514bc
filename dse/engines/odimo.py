"""``--engine odimo``: ODiMO's differentiable channel-split search, one trial per lambda.

For each cost weight lambda of the grid (ascending), ``networks.odimo.odimo_search`` trains
the supernet from the baseline checkpoint and keeps each channel's argmax, and
``networks.odimo.odimo_finetune`` fine-tunes the searched weights of that discrete split, as
ODiMO's code does (200 + 200 epochs by default). Those weights are delivered with the split:
the probe keeps them (``delivered_weights``), measures the split from them with the DRAM at
its nominal point (ODiMO does not model DRAM) and ``dse confirm`` continues from them. The
trial is recorded with ``engine = odimo``, its lambda, the channels chosen and the search's
own numbers, its samples counting both stages; a run with fewer epochs than ODiMO's is
labelled with them (``odimo[10 ep]``, ``engine_label``). The study's queued baselines run
first. A rerun skips the lambdas already measured; workers sharing the study measure each
lambda once (``dse.engines.units``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from dse.accuracy.abilities import StartsFrom, TrainsOnProbeData
from dse.accuracy.defaults import MAX_EPOCHS
from dse.engines import EngineJob, EngineSpec, register, setting
from dse.engines.units import Outcome, RecordedKey, Unit, UnitFailed, run_units
from dse.evaluate import evaluate
from dse.results.ledger import DELIVERED_WEIGHTS_ATTR, ENGINE_ATTR, ENGINE_LABEL_ATTR
from dse.results.ledger import ODIMO_LAMBDA_ATTR as LAMBDA_ATTR
from dse.results.ledger import ODIMO_SEARCH_ATTR as SEARCH_ATTR
from dse.space import at_point
from hw_models.errors import ConfigError

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# ODiMO's lambda grid for ResNet20 on CIFAR-10 (per cycle: 0, 1e-9, 5e-9, 1e-8, 2.5e-8, 5e-8,
# 1e-7; its run scripts, research note odimo_diana.md section 2.3) times ResNet20's
# all-digital latency in the same DIANA model (257,673 cycles, `dse cost --network resnet20
# --dataset cifar10 --mapping all-digital`): dimensionless, as dse's cost is normalised by
# the all-digital cost, so the same penalty per cycle of ResNet20 as ODiMO's
ODIMO_LAMBDAS_PER_CYCLE = (0.0, 1e-9, 5e-9, 1e-8, 2.5e-8, 5e-8, 1e-7)
RESNET20_ALL_DIGITAL_CYCLES = 257_673
DEFAULT_LAMBDAS = tuple(float(f"{value * RESNET20_ALL_DIGITAL_CYCLES:.3g}")
                        for value in ODIMO_LAMBDAS_PER_CYCLE)
# ODiMO's own schedule (eml-eda/odimo run_ic_fulltest.sh; networks.odimo)
DEFAULT_DNAS_EPOCHS = 200
DEFAULT_PATIENCE_EPOCHS = 50
DEFAULT_FINETUNE_EPOCHS = 200
ODIMO_TARGETS = ("latency", "energy")  # the cost ODiMO's loss weighs


@dataclass(frozen=True)
class SplitChoice:
    """What one search chose: counts, channels, its own record and the weights it trained
    for the split (a ``networks.train.Checkpoint``; None: the study's checkpoint)."""

    n_analog: tuple[int, ...]
    analog_channels: tuple[tuple[int, ...] | None, ...]
    record: dict[str, Any] = field(default_factory=dict)
    weights: Any = None


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
    patience_epochs: int = DEFAULT_PATIENCE_EPOCHS
    finetune_epochs: int = DEFAULT_FINETUNE_EPOCHS

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target,
                       self.patience_epochs, self.finetune_epochs)

    def run(self, job: EngineJob) -> None:
        search = self.searcher or self._probe_searcher(job)
        problem = job.problem
        label = odimo_label(self.dnas_epochs, self.finetune_epochs)

        def measure(unit: Unit) -> Outcome:
            weight = float(unit.key)
            choice = search(weight)
            candidate = dataclasses.replace(at_point(problem.space, choice.n_analog, None),
                                            analog_channels=choice.analog_channels)
            accuracy, attrs = with_delivered_weights(job, choice)
            if label != self.name:
                attrs[ENGINE_LABEL_ATTR] = label
            return Outcome(candidate, evaluate(candidate, problem, accuracy),
                           attrs={LAMBDA_ATTR: weight, SEARCH_ATTR: choice.record, **attrs})
        run_units(job, self.name, lambda_units(self.cost_weights, "lambda {:g} measured"),
                  measure, recorded_key=recorded_lambda(self.name))

    def _probe_searcher(self, job: EngineJob) -> Searcher:
        return probe_searcher(job, self.dnas_epochs, self.target,
                              patience_epochs=self.patience_epochs,
                              finetune_epochs=self.finetune_epochs)


def odimo_label(dnas_epochs: int, finetune_epochs: int, name: str = "odimo") -> str:
    """The engine as shown: ``name`` at ODiMO's schedule, else its epochs named
    (``odimo[10 ep]``: 10 search epochs; ``odimo[10 ep, ft 5 ep]``: a shorter fine-tune)."""
    if dnas_epochs >= DEFAULT_DNAS_EPOCHS and finetune_epochs >= DEFAULT_FINETUNE_EPOCHS:
        return name
    parts = [f"{dnas_epochs} ep"]
    if finetune_epochs < DEFAULT_FINETUNE_EPOCHS:
        parts.append(f"ft {finetune_epochs} ep")
    return f"{name}[{', '.join(parts)}]"


def with_delivered_weights(job: EngineJob, choice: SplitChoice
                           ) -> tuple[Any, dict[str, Any]]:
    """The accuracy model that measures ``choice`` from the weights it delivered, and the
    trial attributes naming them (none and the study's model without weights)."""
    if choice.weights is None or job.accuracy is None:
        return job.accuracy, {}
    estimator = job.accuracy.estimator
    if not isinstance(estimator, StartsFrom):
        raise ConfigError("ODiMO delivers the weights it fine-tuned: it needs the built-in "
                          "probe, which can start from them")
    record = {**estimator.keep_weights(choice.weights),
              "samples": int(choice.record.get("samples", 0))}
    accuracy = dataclasses.replace(job.accuracy,
                                   estimator=estimator.starting_from(choice.weights))
    return accuracy, {DELIVERED_WEIGHTS_ATTR: record}


def probe_searcher(job: EngineJob, dnas_epochs: int, target: str, *,
                   patience_epochs: int = DEFAULT_PATIENCE_EPOCHS,
                   finetune_epochs: int = DEFAULT_FINETUNE_EPOCHS) -> Searcher:
    """ODiMO's supernet search and fine-tune on the probe's checkpoint and training data."""
    if job.accuracy is None or not isinstance(job.accuracy.estimator, TrainsOnProbeData):
        raise ConfigError("--engine odimo trains on the probe's data: it needs accuracy "
                          "among the objectives and the built-in probe (not "
                          "--accuracy-estimator)")
    setup = job.accuracy.estimator.setup
    from networks.odimo import OdimoConfig, odimo_finetune, odimo_search

    problem = job.problem

    def search(weight: float) -> SplitChoice:
        config = OdimoConfig(cost_weight=weight, epochs=dnas_epochs, target=target,
                             patience_epochs=patience_epochs,
                             finetune_epochs=finetune_epochs, seed=job.seed)
        progress = job.stage("DNAS", "step") if job.stage is not None else None
        result = odimo_search(setup.checkpoint, setup.bundle, problem.table, problem.soc,
                              config, device=setup.device, progress=progress)
        if result.best_epoch == 0:  # no epoch ended with a finite validation cross-entropy
            raise UnitFailed(f"ODiMO's search at lambda {weight:g} diverged (no epoch "
                             "ended with a finite loss)")
        progress = (job.stage("ODiMO fine-tune", "step") if job.stage is not None
                    and finetune_epochs else None)
        tuned = odimo_finetune(setup.checkpoint, setup.bundle, result, config,
                               device=setup.device, progress=progress)
        record = {"target": target, "epochs": dnas_epochs, "best_epoch": result.best_epoch,
                  "epochs_run": len(result.history), "patience_epochs": patience_epochs,
                  "finetune_epochs": finetune_epochs,
                  "finetune_best_epoch": tuned.best_epoch,
                  "finetune_val_accuracy": tuned.val_accuracy,
                  "search_samples": result.samples, "finetune_samples": tuned.samples,
                  "samples": result.samples + tuned.samples,
                  "seconds": result.seconds + tuned.seconds, "history": result.history,
                  "finetune_history": tuned.history}
        weights = setup.checkpoint.derived(tuned.state_dict, trained_by={
            "engine": "odimo", "lambda": weight, "target": target, "epochs": dnas_epochs,
            "finetune_epochs": finetune_epochs, "seed": job.seed},
            val_accuracy=tuned.val_accuracy)
        return SplitChoice(result.n_analog, result.analog_channels, record, weights)
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
             "all-digital); the default is ODiMO's ResNet20 grid per cycle times ResNet20's "
             "all-digital cycles")
    dnas_epochs: int = setting(DEFAULT_DNAS_EPOCHS, binding=True,
                               help="supernet search epochs per lambda, at most (ODiMO: "
                                    "200; fewer is a truncated run, labelled so)")
    target: str = setting(ODIMO_TARGETS[0], flag="--odimo-target", choices=ODIMO_TARGETS,
                          binding=True, help="the cost its loss weighs")
    patience_epochs: int = setting(DEFAULT_PATIENCE_EPOCHS, flag="--odimo-patience-epochs",
                                   binding=True,
                                   help="the search stops after this many epochs without a "
                                        "better kept epoch (ODiMO: 50)")
    finetune_epochs: int = setting(DEFAULT_FINETUNE_EPOCHS, flag="--odimo-finetune-epochs",
                                   binding=True,
                                   help="fine-tune epochs of the searched weights on the "
                                        "discrete split (ODiMO: 200; 0 delivers the search's "
                                        "weights; fewer is labelled)")

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target, self.patience_epochs,
                       self.finetune_epochs)


def _factory(settings: OdimoSettings, problem: Any, study: Any) -> OdimoEngine:
    return OdimoEngine(cost_weights=settings.cost_weights, dnas_epochs=settings.dnas_epochs,
                       target=settings.target, patience_epochs=settings.patience_epochs,
                       finetune_epochs=settings.finetune_epochs)


SPEC = register(EngineSpec(
    name="odimo", settings=OdimoSettings, factory=_factory,
    summary="ODiMO's differentiable channel-split search and fine-tune, one trial per "
            "--lambdas value, measured from its weights, DRAM at nominal",
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


def check_settings(cost_weights: tuple[float, ...], dnas_epochs: int, target: str,
                   patience_epochs: int = DEFAULT_PATIENCE_EPOCHS,
                   finetune_epochs: int = DEFAULT_FINETUNE_EPOCHS) -> None:
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
    if not 1 <= patience_epochs <= MAX_EPOCHS:
        raise ConfigError(f"--odimo-patience-epochs must be in [1, {MAX_EPOCHS:,}] (got "
                          f"{patience_epochs})")
    if not 0 <= finetune_epochs <= MAX_EPOCHS:
        raise ConfigError(f"--odimo-finetune-epochs must be in [0, {MAX_EPOCHS:,}] (got "
                          f"{finetune_epochs})")
    if target not in ODIMO_TARGETS:
        raise ConfigError(f"--odimo-target must be latency or energy, not '{target}'")
