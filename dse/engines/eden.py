"""``--engine eden``: EDEN's method (Koppula et al., MICRO 2019) on a fixed channel split.

For each split (``--mapping``, default: each baseline mapping), with the data that live in
DRAM for it (``weights/<layer>`` of streamed weights, ``activations/<layer>`` of stored
tensors in DRAM; ``hw_models.traffic``):

1. **Characterise** (EDEN section 5.3): the largest bit error rate each data type tolerates,
   by bisection in log-BER between ``BER_FLOOR`` and ``BER_CEILING``; a BER is tolerated
   when the accuracy drop against the same split without errors, paired on the same images
   and seeds, meets ``--max-accuracy-drop`` under ``--drop-rule`` (its estimate, or the upper
   end of its interval). *Coarse*: one BER for all the data; *fine*: one per data type with
   the others error-free. Every measurement is the study's own probe, whose fine-tune ramps
   the BER up (EDEN's curricular retraining); ``retrain_steps`` lengthens that fine-tune
   for the characterisation and the validation (None: the probe's own length, so that
   EDEN spends its samples as every other engine's candidates do). The trial itself is
   measured by the study's probe, as every engine's.
2. **Map** (EDEN's Algorithm 1): sort the data by tolerance; with N partitions, partition k
   takes the k-th N-quantile group of that order and is set to the most aggressive grid point
   (lowest VDD first, then the shortest tRCD) whose BER, for the chosen DIMM quantile, is within
   the smallest tolerance of its group, so every datum sits where its tolerance holds; a
   partition holding no datum (every partition, for a split with nothing in DRAM) at the
   lowest error-free point. ``whole-device`` (one partition) is EDEN's coarse mapping.
3. **Validate**: measure the composed candidate; if it misses the target, tighten every
   tolerance tenfold and map again (at most ``MAX_TIGHTENING`` times; then nominal DRAM).

Each split's result is one trial (``engine = eden``) with its tolerances; the study keeps
every split's tolerances, one attribute per split (``dse tolerance``, ``tolerance.json``),
and ``dse pareto`` writes each result as a partitions file that ``dse cost/probe
--partition-layout`` accept. Workers sharing the study map each split once
(``dse.engines.units``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dse.accuracy import (
    AccuracyEstimator,
    ProbeCandidate,
    ProbeResult,
    accuracy_drop_pp,
    within_limit,
)
from dse.accuracy.abilities import Retrainable
from dse.accuracy.defaults import check_probe_counts
from dse.engines import EngineJob, EngineSpec, Progress, register, setting
from dse.engines.odimo import (
    DEFAULT_DNAS_EPOCHS,
    DEFAULT_LAMBDAS,
    ODIMO_TARGETS,
    OdimoSettings,
    check_settings,
    lambda_units,
    probe_searcher,
    recorded_lambda,
)
from dse.engines.units import Outcome, RecordedKey, Unit, run_units
from dse.evaluate import candidate_cost, evaluate, placement, probe_candidate
from dse.problem import Problem, most_aggressive_point
from dse.results.claims import EDEN_DROP_PP
from dse.results.ledger import (
    EDEN_ATTR,
    EDEN_TOLERANCE_PREFIX,
    ENGINE_ATTR,
    ODIMO_LAMBDA_ATTR,
    ODIMO_SEARCH_ATTR,
)
from dse.space import Candidate
from hw_models.errors import ConfigError
from hw_models.mapping import HEURISTICS, resolve_split
from hw_models.traffic import layer_traffic, placed_activations, shortcut_partition_slot

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

BER_FLOOR = 1e-9      # below every measured non-zero BER of the Voltron / DIVA tables
BER_CEILING = 0.5     # a cell that lost its charge reads as random data
BISECTION_STEPS = 6   # halvings of the log-BER interval (2.2 decades per step at the start)
MAX_TIGHTENING = 3


@dataclass(frozen=True)
class DataType:
    """One kind of data EDEN characterises and places."""

    name: str            # weights/<layer> or activations/<layer>
    kind: str            # weights | activations
    layer: int           # the layer (for activations: the tensor's first reader)


@dataclass
class EdenEngine:
    """EDEN on each of ``mappings`` (mapping specs; default the baselines)."""

    mappings: tuple[str, ...] = ()
    bisection_steps: int = BISECTION_STEPS
    retrain_steps: int | None = None
    name: str = "eden"

    def run(self, job: EngineJob) -> None:
        _check_job(job, "eden")
        assert job.accuracy is not None
        characterise = retraining(job.accuracy.estimator, self.retrain_steps)
        problem = job.problem

        def measure(unit: Unit) -> Outcome:
            n_analog, channels = resolve_split(unit.key, problem.table, problem.soc)
            result = eden_for_split(problem, characterise, tuple(int(n) for n in n_analog),
                                    channels, steps=self.bisection_steps,
                                    progress=_stage(job, unit.key))
            return eden_outcome(job, unit.key, result, self.retrain_steps)
        run_units(job, self.name, [Unit(spec, f"{spec} mapped")
                                   for spec in self.mappings or tuple(HEURISTICS)],
                  measure, recorded_key=recorded_split(self.name))


@dataclass
class OdimoEdenEngine:
    """The sequential pipeline a researcher would otherwise script: ODiMO's split for each
    cost weight (``dse.engines.odimo``), then EDEN on it; one trial per lambda."""

    cost_weights: tuple[float, ...] = DEFAULT_LAMBDAS
    dnas_epochs: int = DEFAULT_DNAS_EPOCHS
    target: str = ODIMO_TARGETS[0]
    searcher: Any = None
    bisection_steps: int = BISECTION_STEPS
    retrain_steps: int | None = None
    name: str = "odimo+eden"

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target)

    def run(self, job: EngineJob) -> None:
        _check_job(job, "odimo+eden")
        assert job.accuracy is not None
        characterise = retraining(job.accuracy.estimator, self.retrain_steps)
        search = self.searcher or probe_searcher(job, self.dnas_epochs, self.target)
        problem = job.problem

        def measure(unit: Unit) -> Outcome:
            weight = float(unit.key)
            label = f"odimo lambda {weight:g}"
            choice = search(weight)
            result = eden_for_split(problem, characterise, choice.n_analog,
                                    choice.analog_channels, steps=self.bisection_steps,
                                    progress=_stage(job, label))
            return eden_outcome(job, label, result, self.retrain_steps, {
                ODIMO_LAMBDA_ATTR: weight, ODIMO_SEARCH_ATTR: choice.record})
        run_units(job, self.name, lambda_units(self.cost_weights,
                                               "lambda {:g} searched and mapped"),
                  measure, recorded_key=recorded_lambda(self.name))


def eden_outcome(job: EngineJob, split: str, result: EdenResult, retrain_steps: int | None,
                 attrs: dict[str, Any] | None = None) -> Outcome:
    """The trial of ``split``'s mapping, measured by the study's probe, and the split's
    tolerance record (a study attribute of its own: workers never overwrite each other's)."""
    evaluation = evaluate(result.candidate, job.problem, job.accuracy)
    return Outcome(result.candidate, evaluation, attrs={
        **(attrs or {}), EDEN_ATTR: {"mapping": split, **result.summary(),
                                     "retrain_steps": retrain_steps,
                                     "partitions_file": partitions_document(job.problem,
                                                                            result)}},
        study_attrs={EDEN_TOLERANCE_PREFIX + split: result.tolerance_record()})


def recorded_split(engine: str) -> RecordedKey:
    """The unit of a trial of ``engine`` recorded before units were claimed: its split."""
    def key(trial: FrozenTrial) -> str | None:
        mapping = trial.user_attrs.get(EDEN_ATTR, {}).get("mapping")
        if trial.user_attrs.get(ENGINE_ATTR) != engine or not isinstance(mapping, str):
            return None
        return mapping
    return key


def _stage(job: EngineJob, split: str) -> Progress | None:
    """The progress of EDEN's probes on one split, each status prefixed by ``split``."""
    if job.stage is None:
        return None
    progress = job.stage("EDEN", "probe")
    return lambda done, total, status: progress(done, total, f"{split}: {status}")


def _check_job(job: EngineJob, engine: str) -> None:
    if job.problem.device is None:
        raise ConfigError(f"--engine {engine} maps data to DRAM partitions: it needs a DRAM "
                          "device (not --dram none)")
    if job.accuracy is None:
        raise ConfigError(f"--engine {engine} characterises error tolerance by accuracy: it "
                          "needs accuracy among the objectives")


@dataclass
class EdenResult:
    candidate: Candidate
    data: list[DataType]
    coarse_ber: float | None     # None: no datum of the split lives in DRAM
    fine_ber: dict[str, float]
    budgets: list[float]          # per partition: the BER it was set for
    tightened: int
    met: bool
    probes: int

    def tolerance_record(self) -> dict[str, Any]:
        return {"coarse_ber": self.coarse_ber, "fine_ber": self.fine_ber,
                "data": [d.name for d in self.data]}

    def summary(self) -> dict[str, Any]:
        return {"partition_ber_budgets": self.budgets, "tightened": self.tightened,
                "target_met": self.met, "probes": self.probes}


def partitions_document(problem: Problem, result: EdenResult) -> dict[str, Any]:
    """The mapping as a partitions file (``hw_models.partitions``) for ``dse cost/probe``."""
    assert problem.device is not None
    partitions = placement(result.candidate, problem.device).partitions
    names = [p.name for p in partitions]
    tensors = {}
    for datum in result.data:
        index = (result.candidate.weight_partition if datum.kind == "weights"
                 else result.candidate.activation_partition)[datum.layer]
        tensors[datum.name] = names[index]
    return {"partitions": [{"name": p.name, "capacity_bytes": p.capacity_bytes,
                            "vdd_v": p.vdd_v, "trcd_ns": p.trcd_ns} for p in partitions],
            "default": names[0], "tensors": tensors}


def retraining(estimator: AccuracyEstimator, steps: int | None) -> AccuracyEstimator:
    """The estimator EDEN characterises and validates with: the probe with a fine-tune of
    ``steps`` steps (None: the estimator as it is)."""
    if steps is None:
        return estimator
    if not isinstance(estimator, Retrainable):
        raise ConfigError("--eden-retrain-steps sets the built-in probe's fine-tune; this "
                          "accuracy estimator has none")
    return estimator.retraining(steps)


def data_in_dram(problem: Problem, n_analog: tuple[int, ...]) -> list[DataType]:
    """The data EDEN places for this split: streamed weights and stored tensors in DRAM."""
    table = problem.table
    traffic = layer_traffic(table, problem.soc, np.array(n_analog))
    found = [DataType(f"weights/{table.name[i]}", "weights", i)
             for i in range(table.n_layers) if traffic.weight_read_bytes[i] > 0]
    placed = placed_activations(table, traffic)  # downsample shortcuts with their source
    found += [DataType(f"activations/{table.name[i]}", "activations", i)
              for i in range(table.n_layers) if placed[i]]
    return found


def with_errors(problem: Problem, n_analog: tuple[int, ...], channels: Any,
                bers: dict[str, float], data: list[DataType]) -> ProbeCandidate:
    """The probe candidate with each named datum at its BER (the rest error-free)."""
    table = problem.table
    weight = [0.0] * table.n_layers
    tensor = [0.0] * table.n_layers
    for datum in data:
        ber = bers.get(datum.name, 0.0)
        (weight if datum.kind == "weights" else tensor)[datum.layer] = ber
    activation = tuple(tensor[int(first)] for first in table.input_tensor)
    # a shortcut in DRAM has the BER of its placement (its source tensor's)
    in_dram = layer_traffic(table, problem.soc, np.array(n_analog)).shortcut_in_dram
    source = table.input_tensor[shortcut_partition_slot(table)]
    shortcut = tuple(float(tensor[int(t)]) if flag else 0.0
                     for t, flag in zip(source, in_dram))
    return ProbeCandidate(n_analog, tuple(weight), activation, analog_channels=channels,
                          shortcut_ber=shortcut if any(shortcut) else ())


def eden_for_split(problem: Problem, estimator: Any, n_analog: tuple[int, ...], channels: Any,
                   *, steps: int = BISECTION_STEPS,
                   progress: Progress | None = None) -> EdenResult:
    """Characterise, map and validate one split (the module docstring). ``progress`` is
    told (probes done, probes planned, what is measured) before each probe; the plan is
    the most a bisection takes, so EDEN may finish early."""
    data = data_in_dram(problem, n_analog)
    limit_pp = problem.limits.max_accuracy_drop_pp
    limit_pp = EDEN_DROP_PP if limit_pp is None else limit_pp  # no limit: EDEN's own 1 %
    rule = problem.limits.drop_rule
    searches = len(data) + 1 if data else 0  # coarse, then each datum alone
    planned = 1 + searches * (steps + 2) + 1  # reference, bisections, validation
    probes = [0]

    def measure(candidate: ProbeCandidate, doing: str) -> ProbeResult:
        if progress is not None:
            progress(probes[0], max(planned, probes[0] + 1), doing)
        result: ProbeResult = estimator(candidate)
        probes[0] += 1
        return result

    reference = measure(with_errors(problem, n_analog, channels, {}, data),
                        "the split without errors")

    def meets_target(candidate: ProbeCandidate, doing: str) -> bool:
        """The paired drop against the error-free split, bounded under the drop rule."""
        drop, _, high = accuracy_drop_pp(reference, measure(candidate, doing))
        bound = high if rule == "upper" and math.isfinite(high) else drop
        return within_limit(bound, limit_pp)

    def largest(names: list[str], what: str) -> float:
        def tolerated(ber: float) -> bool:
            return meets_target(with_errors(problem, n_analog, channels,
                                            {name: ber for name in names}, data),
                                f"characterising {what}")
        if not names or tolerated(BER_CEILING):
            return BER_CEILING
        low, high = math.log10(BER_FLOOR), math.log10(BER_CEILING)
        if not tolerated(BER_FLOOR):
            return 0.0
        for _ in range(steps):
            middle = (low + high) / 2
            if tolerated(10 ** middle):
                low = middle
            else:
                high = middle
        return float(10 ** low)

    coarse = largest([d.name for d in data], f"all {len(data)} data") if data else None
    fine = {d.name: largest([d.name], d.name) for d in data}
    tolerance = dict(fine)
    candidate, budgets = map_to_partitions(problem, n_analog, data, tolerance)
    tightened = 0
    while True:
        candidate = dataclasses.replace(candidate, analog_channels=channels)
        if meets_target(probe_candidate(candidate, candidate_cost(candidate, problem)),
                        "validating the mapping"):
            _done(progress, probes[0])
            return EdenResult(candidate, data, coarse, fine, budgets, tightened, True,
                              probes[0])
        if tightened == MAX_TIGHTENING:
            nominal = {d.name: 0.0 for d in data}
            candidate, budgets = map_to_partitions(problem, n_analog, data, nominal)
            _done(progress, probes[0])
            return EdenResult(dataclasses.replace(candidate, analog_channels=channels), data,
                              coarse, fine, budgets, tightened, False, probes[0])
        tolerance = {name: ber / 10 for name, ber in tolerance.items()}
        candidate, budgets = map_to_partitions(problem, n_analog, data, tolerance)
        tightened += 1


def _done(progress: Progress | None, probes: int) -> None:
    if progress is not None:
        progress(probes, probes, "mapped")


def map_to_partitions(problem: Problem, n_analog: tuple[int, ...], data: list[DataType],
                      tolerance: dict[str, float]) -> tuple[Candidate, list[float]]:
    """EDEN's Algorithm 1 over the space's equal partitions: data sorted by tolerance, in N
    consecutive groups; each partition at the most aggressive point within its group's
    smallest tolerance. A partition holding no datum goes to the lowest error-free point
    (budget 0): it still has to work, and below that most modules do not."""
    space = problem.space
    count = space.partitions
    order = sorted(data, key=lambda d: tolerance.get(d.name, 0.0))
    groups = [list(part) for part in np.array_split(np.arange(len(order)), count)]
    weights = [0] * problem.table.n_layers
    tensors = [0] * problem.table.n_layers
    budgets, points = [], []
    for k, members in enumerate(groups):
        budget = (min(tolerance.get(order[i].name, 0.0) for i in members) if members
                  else 0.0)
        budgets.append(float(budget))
        points.append(most_aggressive_point(problem, budget))
        for i in members:
            datum = order[i]
            (weights if datum.kind == "weights" else tensors)[datum.layer] = k
    readers = tuple(tensors[int(first)] for first in problem.table.input_tensor)
    candidate = Candidate(tuple(n_analog), tuple(p[0] for p in points),
                          tuple(p[1] for p in points), tuple(weights), readers)
    assert problem.device is not None
    placement(candidate, problem.device)  # the device holds these partitions
    return candidate, budgets


# ---- the engines' registrations --------------------------------------------------------

def _retrain_steps() -> Any:
    return setting(
        None, flag="--eden-retrain-steps", metavar="N", shown_default="the probe's",
        binding=True,
        help="fine-tune steps of each characterisation and validation probe (EDEN's "
             "curricular retraining, longer); the trials are measured by the study's probe")


def check_retrain_steps(steps: int | None) -> None:
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--eden-retrain-steps must be >= 1 (got {steps})")
        check_probe_counts(steps, {}, steps_option="--eden-retrain-steps")


def _own_probe(settings: Any) -> tuple[str, ...]:
    """EDEN's own retraining is the built-in probe's fine-tune, made longer."""
    return ("probe",) if settings.retrain_steps is not None else ()


@dataclass(frozen=True)
class EdenSettings:
    mapping: str | None = setting(
        None, metavar="SPEC", shown_default="each of the four baselines",
        help="the split to map (a heuristic name or a mapping JSON file)")
    retrain_steps: int | None = _retrain_steps()

    def __post_init__(self) -> None:
        check_retrain_steps(self.retrain_steps)


def _check_mapping(settings: EdenSettings, problem: Problem) -> None:
    if settings.mapping is not None:  # a bad --mapping fails before training
        resolve_split(settings.mapping, problem.table, problem.soc)


def _eden(settings: EdenSettings, problem: Any, study: Any) -> EdenEngine:
    return EdenEngine(mappings=() if settings.mapping is None else (settings.mapping,),
                      retrain_steps=settings.retrain_steps)


EDEN = register(EngineSpec(
    name="eden", settings=EdenSettings, factory=_eden, check=_check_mapping,
    summary="EDEN's tolerance characterisation and mapping of data to DRAM partitions, per "
            "--mapping split",
    needs=frozenset({"accuracy", "dram"}), needs_of=_own_probe))


@dataclass(frozen=True)
class OdimoEdenSettings(OdimoSettings):
    retrain_steps: int | None = _retrain_steps()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_retrain_steps(self.retrain_steps)


def _odimo_eden(settings: OdimoEdenSettings, problem: Any, study: Any) -> OdimoEdenEngine:
    return OdimoEdenEngine(cost_weights=settings.cost_weights,
                           dnas_epochs=settings.dnas_epochs, target=settings.target,
                           retrain_steps=settings.retrain_steps)


ODIMO_EDEN = register(EngineSpec(
    name="odimo+eden", settings=OdimoEdenSettings, factory=_odimo_eden,
    summary="ODiMO's split for each lambda, then EDEN on it",
    needs=frozenset({"accuracy", "probe", "dram"})))
