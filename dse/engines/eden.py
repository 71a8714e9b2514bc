"""``--engine eden``: EDEN's method (Koppula et al., MICRO 2019, arXiv 1910.05340) on a fixed
channel split, in the paper's order: retrain for the device, characterise, map.

For each split (``--mapping``, default: each baseline mapping), with the data that live in
DRAM for it (``weights/<layer>`` of streamed weights, ``activations/<layer>`` of stored
tensors in DRAM; ``hw_models.traffic``):

1. **Retrain** (EDEN's first idea: "retrain the DNN for the target approximate DRAM
   device"): the split's network trained on for ``--eden-retrain-epochs`` epochs over the
   training split with the device's DRAM error model injected into every datum in DRAM, the
   BER rising over the epochs (curricular; ``networks.eden_retrain``), up to
   ``retrain_target_ber``: the BER of the most aggressive point of the study's grid for the
   chosen DIMM quantile, capped at ``RETRAIN_BER_CAP``. Once per device, error model, split,
   base checkpoint and epochs: the weights are kept (``StartsFrom.keep_weights``) with an
   index entry per key (``RetrainCache``), so a rerun or another worker reads them back.
2. **Characterise** (EDEN section 5.3) the retrained network as it is, without a fine-tune
   at each BER (the probe with 0 steps, one fine-tune seed; ``Characterising``), on the
   ``val-a`` half of the validation images: the largest BER each data type tolerates, by
   bisection in log-BER between ``BER_FLOOR`` and ``BER_CEILING``; a BER is tolerated when
   the accuracy drop against the original network (EDEN's target: "within 1 % of the
   original DNN"; the study's checkpoint at the same split without errors, as it is),
   paired on the same images and seeds, meets ``--max-accuracy-drop`` under
   ``--drop-rule`` (its estimate, or the upper end of its interval). *Coarse*: one BER for
   all the data; *fine*: one per data type with the others error-free.
3. **Map** (EDEN's Algorithm 1, ``assign``): with one partition (``whole-device``, what a
   BIOS sets) every datum takes the coarse tolerance, as EDEN's coarse-grained mapping;
   with several, each datum its fine tolerance. Each partition gets an operating point of
   the device data (``choose_points``: among the lowest error-free point and the most
   aggressive grid point within each datum's tolerance, ``dse.problem.most_aggressive_point``)
   and so its own BER (``dse.problem.point_ber``); the data, sorted by tolerance, each go to
   the most aggressive partition whose BER they tolerate and that has room for their bytes.
4. **Validate** the composed mapping on the other half of the validation images
   (``val-b``), which the characterisation never saw; if it misses the target, tighten
   every tolerance tenfold and map again (at most ``MAX_TIGHTENING`` times; then the lowest
   error-free point).

Each split's result is one trial (``engine = eden``), measured by the study's probe (its
usual split and fine-tune) from the retrained weights, which the trial names
(``DELIVERED_WEIGHTS_ATTR``, with the training samples the retraining used) so that ``dse
confirm`` measures it from them too. The study keeps every split's tolerances, one
attribute per split (``dse tolerance``, ``tolerance.json``), and ``dse pareto`` writes each
result as a partitions file that ``dse cost/probe --partition-layout`` accept. Workers
sharing the study map each split once (``dse.engines.units``).

Where the paper gives no number (retraining epochs and schedule, the target BER of the
retraining, the order of Algorithm 1's sort, how partition points are chosen) the choice
is labelled *chosen* where it is made; ``docs/search.md`` lists what deviates and why.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator, Protocol

import numpy as np

from dse.accuracy import (
    AccuracyEstimator,
    ProbeCandidate,
    ProbeResult,
    accuracy_drop_pp,
    within_limit,
)
from dse.accuracy.abilities import Batched, Characterising, StartsFrom, measure_many
from dse.accuracy.defaults import MAX_EPOCHS
from dse.engines import EngineJob, EngineSpec, Progress, register, setting
from dse.engines.odimo import (
    DEFAULT_DNAS_EPOCHS,
    DEFAULT_FINETUNE_EPOCHS,
    DEFAULT_LAMBDAS,
    DEFAULT_PATIENCE_EPOCHS,
    ODIMO_TARGETS,
    OdimoSettings,
    check_settings,
    lambda_units,
    odimo_label,
    probe_searcher,
    recorded_lambda,
)
from dse.engines.units import Outcome, RecordedKey, Unit, run_units
from dse.evaluate import candidate_cost, evaluate, placement, probe_candidate
from dse.problem import Problem, most_aggressive_point, point_ber
from dse.results.claims import EDEN_DROP_PP
from dse.results.ledger import (
    DELIVERED_WEIGHTS_ATTR,
    EDEN_ATTR,
    EDEN_TOLERANCE_PREFIX,
    ENGINE_ATTR,
    ENGINE_LABEL_ATTR,
    ODIMO_LAMBDA_ATTR,
    ODIMO_SEARCH_ATTR,
)
from dse.space import Candidate
from hw_models.errors import ConfigError
from hw_models.mapping import HEURISTICS, resolve_split
from hw_models.traffic import (
    layer_traffic,
    placed_activations,
    shortcut_partition_slot,
    tensor_bytes,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

BER_FLOOR = 1e-9      # below every measured non-zero BER of the Voltron / DIVA tables
BER_CEILING = 0.5     # a cell that lost its charge reads as random data
BISECTION_STEPS = 6   # halvings of the log-BER interval (2.2 decades per step at the start)
MAX_TIGHTENING = 3
# Chosen, not published (the paper's schedule was not retrieved: eden_dram.md 5.1): four
# epochs of geometric ramp from 1 % of the target BER, then one at the target; the research
# notes suggest 5-10 ramp steps of 1-2 epochs, so this is the short end, a sixth of the
# baseline's 30 training epochs (dse.accuracy.defaults.DEFAULT_EPOCHS).
DEFAULT_RETRAIN_EPOCHS = 5
# Chosen: ten times the largest BER the baseline's quantisation-aware training already
# sees (networks.train.TrainConfig.max_train_ber, 1e-3), the order-of-magnitude gain in
# tolerable BER that EDEN reports for retraining (abstract). Beyond it, a grid point whose
# BER is 0.44 (vendor B's max at the bottom of the tRCD grid) would train on noise.
RETRAIN_BER_CAP = 1e-2
RETRAIN_SEED = 0      # fixed: every worker and rerun asks for the same weights
RETRAIN_VERSION = 1   # of the retraining's recipe (networks.eden_retrain); part of its key
RETRAIN_INDEX = "eden-retrained"  # under the weights folder: one JSON per retraining key
CHARACTERISE_SPLIT = "val-a"  # networks.datasets.VALIDATION_HALVES
VALIDATE_SPLIT = "val-b"
_RETRAINED_IN_MEMORY: dict[str, dict[str, Any]] = {}  # the index without a results folder


@dataclass(frozen=True)
class DataType:
    """One kind of data EDEN characterises and places, with the bytes it holds in DRAM."""

    name: str            # weights/<layer> or activations/<layer>
    kind: str            # weights | activations
    layer: int           # the layer (for activations: the tensor's first reader)
    size_bytes: float = 0.0


class Retrainer(Protocol):
    """Retrains a split for the device: ``train(candidate, epochs, progress)`` gives the
    derived weights and the training samples it processed; ``identity`` is what the
    weights depend on besides the request (base checkpoint, data, error model)."""

    @property
    def identity(self) -> dict[str, Any]: ...

    def train(self, candidate: ProbeCandidate, epochs: int,
              progress: Progress | None) -> tuple[Any, int]: ...


@dataclass
class EdenEngine:
    """EDEN on each of ``mappings`` (mapping specs; default the baselines). ``retrainer``:
    None retrains with the built-in probe's checkpoint and data (``probe_retrainer``)."""

    mappings: tuple[str, ...] = ()
    bisection_steps: int = BISECTION_STEPS
    retrain_epochs: int = DEFAULT_RETRAIN_EPOCHS
    retrainer: Retrainer | None = None
    name: str = "eden"

    def __post_init__(self) -> None:
        check_retrain_epochs(self.retrain_epochs)

    def run(self, job: EngineJob) -> None:
        _check_job(job, "eden")
        retrainer = self.retrainer or probe_retrainer(job)
        problem = job.problem

        def measure(unit: Unit) -> Outcome:
            n_analog, channels = resolve_split(unit.key, problem.table, problem.soc)
            return eden_unit(job, retrainer, unit.key, tuple(int(n) for n in n_analog),
                             channels, self.retrain_epochs, self.bisection_steps,
                             label=lighter_label(self.name, self.retrain_epochs))
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
    retrain_epochs: int = DEFAULT_RETRAIN_EPOCHS
    retrainer: Retrainer | None = None
    name: str = "odimo+eden"
    patience_epochs: int = DEFAULT_PATIENCE_EPOCHS
    finetune_epochs: int = DEFAULT_FINETUNE_EPOCHS

    def __post_init__(self) -> None:
        check_settings(self.cost_weights, self.dnas_epochs, self.target,
                       self.patience_epochs, self.finetune_epochs)
        check_retrain_epochs(self.retrain_epochs)

    def run(self, job: EngineJob) -> None:
        _check_job(job, "odimo+eden")
        search = self.searcher or probe_searcher(
            job, self.dnas_epochs, self.target, patience_epochs=self.patience_epochs,
            finetune_epochs=self.finetune_epochs)
        label = pipeline_label(self.name, self.dnas_epochs, self.finetune_epochs,
                               self.retrain_epochs)

        def measure(unit: Unit) -> Outcome:
            weight = float(unit.key)
            split = f"odimo lambda {weight:g}"
            choice = search(weight)
            # EDEN starts from the network ODiMO delivers: its fine-tuned weights
            on = job if choice.weights is None else from_weights(job, choice.weights)
            retrainer = self.retrainer or probe_retrainer(on)
            return eden_unit(on, retrainer, split, choice.n_analog, choice.analog_channels,
                             self.retrain_epochs, self.bisection_steps, label=label,
                             attrs={ODIMO_LAMBDA_ATTR: weight,
                                    ODIMO_SEARCH_ATTR: choice.record})
        run_units(job, self.name, lambda_units(self.cost_weights,
                                               "lambda {:g} searched and mapped"),
                  measure, recorded_key=recorded_lambda(self.name))


def from_weights(job: EngineJob, weights: Any) -> EngineJob:
    """``job`` whose probe starts from ``weights`` (ODiMO's delivered network)."""
    assert job.accuracy is not None
    estimator = job.accuracy.estimator
    assert isinstance(estimator, StartsFrom)
    return dataclasses.replace(job, accuracy=dataclasses.replace(
        job.accuracy, estimator=estimator.starting_from(weights)))


def pipeline_label(engine: str, dnas_epochs: int, finetune_epochs: int,
                   retrain_epochs: int) -> str | None:
    """odimo+eden as outputs show it: ODiMO's truncation (``odimo_label``) and EDEN's
    shorter retraining named, e.g. "odimo+eden[10 ep, retrain 2 ep]"; None at both
    defaults."""
    odimo = odimo_label(dnas_epochs, finetune_epochs, engine)
    parts = [odimo[len(engine) + 1:-1]] if odimo != engine else []
    if retrain_epochs < DEFAULT_RETRAIN_EPOCHS:
        parts.append(f"retrain {retrain_epochs} ep")
    return f"{engine}[{', '.join(parts)}]" if parts else None


def lighter_label(engine: str, retrain_epochs: int) -> str | None:
    """The engine as outputs show it when it retrained less than EDEN's default
    (``ENGINE_LABEL_ATTR``: "eden[2 ep]"); None at the default or more."""
    if retrain_epochs >= DEFAULT_RETRAIN_EPOCHS:
        return None
    return f"{engine}[{retrain_epochs} ep]"


def eden_unit(job: EngineJob, retrainer: Retrainer, split: str, n_analog: tuple[int, ...],
              channels: Any, epochs: int, bisection_steps: int, *, label: str | None,
              attrs: dict[str, Any] | None = None) -> Outcome:
    """Retrain, characterise, map and validate one split; its trial, measured by the
    study's probe from the retrained weights, and its tolerance record (a study attribute
    of its own: workers never overwrite each other's)."""
    assert job.accuracy is not None
    problem, estimator = job.problem, job.accuracy.estimator
    assert isinstance(estimator, StartsFrom) and isinstance(estimator, Characterising)
    data = data_in_dram(problem, n_analog)
    record: dict[str, Any] | None = None
    trial_estimator: AccuracyEstimator = estimator
    start: Any = estimator
    if data:  # nothing in DRAM: nothing to retrain for
        target = retrain_target_ber(problem)
        request = with_errors(problem, n_analog, channels, {d.name: target for d in data},
                              data)
        weights, record = RetrainCache(estimator).retrained(
            retrainer, request, epochs,
            progress=split_stage(job, split, "EDEN retraining", "step"))
        start = estimator.starting_from(weights)
        trial_estimator = start
    result = eden_for_split(problem, start.characterising(CHARACTERISE_SPLIT), n_analog,
                            channels, validate=start.characterising(VALIDATE_SPLIT),
                            original=(estimator.characterising(CHARACTERISE_SPLIT),
                                      estimator.characterising(VALIDATE_SPLIT)),
                            steps=bisection_steps,
                            progress=split_stage(job, split, "EDEN", "probe"))
    accuracy = dataclasses.replace(job.accuracy, estimator=trial_estimator)
    evaluation = evaluate(result.candidate, problem, accuracy)
    samples = int(record["samples"]) if record is not None else 0
    own: dict[str, Any] = {
        **(attrs or {}),
        EDEN_ATTR: {"mapping": split, **result.summary(), "retrain_epochs": epochs,
                    "retrain_target_ber": None if record is None else record["target_ber"],
                    "samples": samples, "characterised_on": CHARACTERISE_SPLIT,
                    "validated_on": VALIDATE_SPLIT,
                    "partitions_file": partitions_document(problem, result)}}
    if record is not None:
        own[DELIVERED_WEIGHTS_ATTR] = record
    if label is not None:
        own[ENGINE_LABEL_ATTR] = label
    return Outcome(result.candidate, evaluation, attrs=own,
                   study_attrs={EDEN_TOLERANCE_PREFIX + split: result.tolerance_record()})


def retrain_target_ber(problem: Problem) -> float:
    """The BER EDEN's curriculum ends at: that of the most aggressive point of the study's
    grid (the bottom VDD, then the shortest tRCD) for its vendor and DIMM quantile, the
    device as far as the search may push it, capped at ``RETRAIN_BER_CAP``."""
    bottom = most_aggressive_point(problem, math.inf)
    return float(min(point_ber(problem, *bottom), RETRAIN_BER_CAP))


class RetrainCache:
    """EDEN's retrained weights, one per key: the base weights and data, the error model and
    its parameters, the split with each datum's target BER, the epochs, the seed and the
    recipe's version. Kept by the estimator (``StartsFrom.keep_weights``), with a JSON index
    entry per key in ``<weights folder>/eden-retrained/`` (in this process without a
    results folder). Two workers never retrain one split at once: the split is one unit
    (``dse.engines.units``)."""

    def __init__(self, estimator: StartsFrom) -> None:
        self.estimator = estimator
        folder = estimator.weights_dir()
        self.folder = None if folder is None else Path(folder) / RETRAIN_INDEX

    def retrained(self, retrainer: Retrainer, request: ProbeCandidate, epochs: int, *,
                  progress: Progress | None = None) -> tuple[Any, dict[str, Any]]:
        """The weights retrained for ``request`` (from the index, else trained now and
        kept) and the record a trial names them by (with ``samples`` and ``cached``)."""
        key = retrain_key(retrainer.identity, request, epochs)
        found = self._read(key)
        if found is not None:
            try:
                return self.estimator.weights_of(found), {**found, "cached": True}
            except ConfigError:
                pass  # the weights file is gone or damaged: train them again
        weights, samples = retrainer.train(request, epochs, progress)
        record = {**self.estimator.keep_weights(weights), "samples": int(samples),
                  "epochs": epochs, "target_ber": max((*request.weight_ber,
                                                       *request.activation_ber), default=0.0),
                  "key": key}
        self._write(key, record)
        return weights, {**record, "cached": False}

    def _read(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return _RETRAINED_IN_MEMORY.get(key)
        try:
            found = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return found if isinstance(found, dict) else None

    def _write(self, key: str, record: dict[str, Any]) -> None:
        if self.folder is None:
            _RETRAINED_IN_MEMORY[key] = record
            return
        path = self.folder / f"{key}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            raise ConfigError(f"cannot write EDEN's retraining index {path}: "
                              f"{exc.strerror}") from None


def retrain_key(identity: dict[str, Any], request: ProbeCandidate, epochs: int) -> str:
    """The SHA-256 naming one retraining (``RetrainCache``)."""
    channels = (None if request.analog_channels is None else
                [None if chosen is None else [int(c) for c in chosen]
                 for chosen in request.analog_channels])
    text = json.dumps({"version": RETRAIN_VERSION, "identity": identity,
                       "n_analog": [int(n) for n in request.n_analog],
                       "channels": channels,
                       "weight_ber": [float(b) for b in request.weight_ber],
                       "activation_ber": [float(b) for b in request.activation_ber],
                       "epochs": epochs, "seed": RETRAIN_SEED}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _ProbeRetrainer:
    """``networks.eden_retrain`` on the built-in probe's checkpoint, data and error model."""

    setup: Any  # dse.accuracy.probe_estimator.ProbeSetup

    @property
    def identity(self) -> dict[str, Any]:
        from networks.quantize import QUANTIZER_VERSION  # the network it retrains

        setup = self.setup
        return {"checkpoint": setup.checkpoint.tensors_sha256, "data": setup.data_sha256,
                "dataset": setup.bundle.spec.name, "error_model": setup.config.error_model,
                "error_params": dataclasses.asdict(setup.error_params),
                "row_bytes": setup.row_bytes, "quantizer": QUANTIZER_VERSION}

    def train(self, candidate: ProbeCandidate, epochs: int,
              progress: Progress | None) -> tuple[Any, int]:
        from networks.eden_retrain import RetrainConfig, eden_retrain

        setup = self.setup
        config = RetrainConfig(epochs=epochs, error_model=setup.config.error_model,
                               error_params=setup.error_params, row_bytes=setup.row_bytes,
                               seed=RETRAIN_SEED)
        weights, report = eden_retrain(setup.checkpoint, setup.bundle, candidate, config,
                                       device=setup.device, progress=progress)
        return weights, report.samples


def probe_retrainer(job: EngineJob) -> Retrainer:
    """EDEN's retraining on the built-in probe's checkpoint and training data."""
    from dse.accuracy.probe_estimator import ProbeEstimator

    estimator = None if job.accuracy is None else job.accuracy.estimator
    if not isinstance(estimator, ProbeEstimator):
        raise ConfigError("--engine eden retrains the network on the probe's data: it needs "
                          "the built-in probe (not --accuracy-estimator)")
    return _ProbeRetrainer(estimator.setup)


def recorded_split(engine: str) -> RecordedKey:
    """The unit of a trial of ``engine`` recorded before units were claimed: its split."""
    def key(trial: FrozenTrial) -> str | None:
        mapping = trial.user_attrs.get(EDEN_ATTR, {}).get("mapping")
        if trial.user_attrs.get(ENGINE_ATTR) != engine or not isinstance(mapping, str):
            return None
        return mapping
    return key


def split_stage(job: EngineJob, split: str, what: str, unit: str) -> Progress | None:
    """The progress of one stage of EDEN's work on a split, each status prefixed by
    ``split``."""
    if job.stage is None:
        return None
    progress = job.stage(what, unit)
    return lambda done, total, status: progress(done, total, f"{split}: {status}")


def _check_job(job: EngineJob, engine: str) -> None:
    if job.problem.device is None:
        raise ConfigError(f"--engine {engine} maps data to DRAM partitions: it needs a DRAM "
                          "device (not --dram none)")
    if job.accuracy is None:
        raise ConfigError(f"--engine {engine} characterises error tolerance by accuracy: it "
                          "needs accuracy among the objectives")
    estimator = job.accuracy.estimator
    if not (isinstance(estimator, StartsFrom) and isinstance(estimator, Characterising)):
        raise ConfigError(f"--engine {engine} measures the network it retrained, as it is: "
                          "it needs the built-in probe (not --accuracy-estimator)")


@dataclass
class EdenResult:
    candidate: Candidate
    data: list[DataType]
    coarse_ber: float | None     # None: no datum of the split lives in DRAM
    fine_ber: dict[str, float]
    partition_ber: list[float]   # per partition: the BER of its operating point
    tightened: int
    met: bool
    probes: int
    used: str = "none"           # the tolerances mapped: coarse, fine (none: no data)

    def tolerance_record(self) -> dict[str, Any]:
        return {"coarse_ber": self.coarse_ber, "fine_ber": self.fine_ber,
                "data": [d.name for d in self.data], "mapped_with": self.used}

    def summary(self) -> dict[str, Any]:
        return {"partition_ber": self.partition_ber, "tolerance_used": self.used,
                "tightened": self.tightened, "target_met": self.met, "probes": self.probes}


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


def data_in_dram(problem: Problem, n_analog: tuple[int, ...]) -> list[DataType]:
    """The data EDEN places for this split: streamed weights and stored tensors in DRAM,
    each with its bytes (what ``hw_models.partitions.check_capacity`` counts)."""
    table = problem.table
    traffic = layer_traffic(table, problem.soc, np.array(n_analog))
    sizes = tensor_bytes(table, problem.soc)
    found = [DataType(f"weights/{table.name[i]}", "weights", i,
                      float(traffic.weight_read_bytes[i]))
             for i in range(table.n_layers) if traffic.weight_read_bytes[i] > 0]
    placed = placed_activations(table, traffic)  # downsample shortcuts with their source
    found += [DataType(f"activations/{table.name[i]}", "activations", i, float(sizes[i]))
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
    return ProbeCandidate(tuple(int(n) for n in n_analog), tuple(weight), activation,
                          analog_channels=channels,
                          shortcut_ber=shortcut if any(shortcut) else ())


def eden_for_split(problem: Problem, estimator: Any, n_analog: tuple[int, ...], channels: Any,
                   *, validate: Any = None, original: tuple[Any, Any] | None = None,
                   steps: int = BISECTION_STEPS,
                   progress: Progress | None = None) -> EdenResult:
    """Characterise with ``estimator``, map, and validate with ``validate`` (None: the same
    estimator) one split (the module docstring, steps 2-4). Drops are measured against
    the original network, EDEN's reference ("within 1 % of the original DNN"):
    ``original`` measures it on the characterisation's and the validation's images (None:
    the estimators themselves), paired with them on the same images and error seeds.
    ``progress`` is told (probes done, probes planned, what is measured) before each
    probe; the plan is the most a bisection takes, so EDEN may finish early."""
    data = data_in_dram(problem, n_analog)
    if not data:  # nothing to corrupt, but the DRAM still has to work: the safe point
        candidate, bers = map_to_partitions(problem, n_analog, [], {})
        _done(progress, 0)
        return EdenResult(dataclasses.replace(candidate, analog_channels=channels), [], None,
                          {}, bers, 0, True, 0)
    validate = estimator if validate is None else validate
    limit_pp = problem.limits.max_accuracy_drop_pp
    limit_pp = EDEN_DROP_PP if limit_pp is None else limit_pp  # no limit: EDEN's own 1 %
    rule = problem.limits.drop_rule
    searches = len(data) + 1  # coarse, then each datum alone
    planned = 2 + searches * (steps + 2) + 1 + MAX_TIGHTENING  # references, bisections,
    probes = [0]                                               # validations

    def measure(on: Any, candidate: ProbeCandidate, doing: str) -> ProbeResult:
        if progress is not None:
            progress(probes[0], max(planned, probes[0] + 1), doing)
        result: ProbeResult = on(candidate)
        probes[0] += 1
        return result

    original_a, original_b = original if original is not None else (estimator, validate)
    error_free = with_errors(problem, n_analog, channels, {}, data)
    reference = measure(original_a, error_free, "the original split without errors")
    held_out: list[ProbeResult] = []

    def meets_target(on: Any, base: ProbeResult, candidate: ProbeCandidate,
                     doing: str) -> bool:
        """The paired drop against the error-free split, bounded under the drop rule."""
        drop, _, high = accuracy_drop_pp(base, measure(on, candidate, doing))
        bound = high if rule == "upper" and math.isfinite(high) else drop
        return within_limit(bound, limit_pp)

    def bisection() -> Generator[float, bool, float]:
        """The largest tolerated BER on the log grid: sends a BER, hears whether it is
        tolerated, returns the largest."""
        if (yield BER_CEILING):
            return BER_CEILING
        low, high = math.log10(BER_FLOOR), math.log10(BER_CEILING)
        if not (yield BER_FLOOR):
            return 0.0
        for _ in range(steps):
            middle = (low + high) / 2
            if (yield 10 ** middle):
                low = middle
            else:
                high = middle
        return float(10 ** low)

    def largest(searches: list[tuple[list[str], str]]) -> list[float]:
        """Each search's largest tolerated BER (the data it corrupts together, what it is
        called). The searches are independent, so they run in lockstep: each round's
        probes, one per search still going, are measured together (``measure_many``: the
        results they give one at a time)."""
        running = [bisection() for _ in searches]
        asked = {i: next(search) for i, search in enumerate(running)}
        found: dict[int, float] = {}
        while asked:
            order = sorted(asked)
            candidates = [with_errors(problem, n_analog, channels,
                                      {name: asked[i] for name in searches[i][0]}, data)
                          for i in order]
            size = len(order) if isinstance(estimator, Batched) else 1
            results = []
            for start in range(0, len(order), size):
                chunk = order[start:start + size]
                if progress is not None:
                    what = (searches[chunk[0]][1] if len(chunk) == 1
                            else f"{len(chunk)} searches together")
                    progress(probes[0], max(planned, probes[0] + 1), f"characterising {what}")
                results += measure_many(estimator, candidates[start:start + size])
                probes[0] += len(chunk)
            for i, result in zip(order, results):
                drop, _, high = accuracy_drop_pp(reference, result)
                bound = high if rule == "upper" and math.isfinite(high) else drop
                try:
                    asked[i] = running[i].send(within_limit(bound, limit_pp))
                except StopIteration as done:
                    found[i] = done.value
                    del asked[i]
        return [found[i] for i in range(len(searches))]

    def validated(candidate: Candidate) -> bool:
        if not held_out:
            held_out.append(measure(original_b, error_free,
                                    "the original split without errors, held-out images"))
        return meets_target(validate, held_out[0],
                            probe_candidate(candidate, candidate_cost(candidate, problem)),
                            "validating the mapping on held-out images")

    coarse, *each = largest([([d.name for d in data], f"all {len(data)} data")]
                            + [([d.name], d.name) for d in data])
    fine = {d.name: ber for d, ber in zip(data, each)}
    used = "coarse" if problem.space.partitions == 1 else "fine"
    tolerance = {d.name: coarse for d in data} if used == "coarse" else dict(fine)
    tightened = 0
    while True:
        candidate, bers = map_to_partitions(problem, n_analog, data, tolerance)
        candidate = dataclasses.replace(candidate, analog_channels=channels)
        if validated(candidate):
            _done(progress, probes[0])
            return EdenResult(candidate, data, coarse, fine, bers, tightened, True,
                              probes[0], used)
        if tightened == MAX_TIGHTENING:
            candidate, bers = map_to_partitions(problem, n_analog, data,
                                                {d.name: 0.0 for d in data})
            _done(progress, probes[0])
            return EdenResult(dataclasses.replace(candidate, analog_channels=channels), data,
                              coarse, fine, bers, tightened, False, probes[0], used)
        tolerance = {name: ber / 10 for name, ber in tolerance.items()}
        tightened += 1


def _done(progress: Progress | None, probes: int) -> None:
    if progress is not None:
        progress(probes, probes, "mapped")


# ---- EDEN's Algorithm 1 ----------------------------------------------------------------

Point = tuple[float, float]  # (VDD in V, tRCD in ns)


def aggressiveness(point: Point) -> Point:
    """Sort key, most aggressive first: the lowest VDD, then the shortest tRCD (the order
    of ``dse.problem.most_aggressive_point``)."""
    return point


def assign(data: list[DataType], tolerance: dict[str, float], bers: list[float],
           points: list[Point], capacity_bytes: list[float]) -> list[int] | None:
    """EDEN's Algorithm 1 (Koppula et al. 2019, as eden_dram.md 5.4 paraphrases it): the
    data sorted by tolerance, each to the most aggressive partition whose BER (``bers``)
    it tolerates and that still has room for its bytes; per datum (in ``data``'s order)
    its partition, or None when one fits nowhere. The sort is ascending (chosen: the
    paper's direction was not retrieved): the least tolerant datum, which has the fewest
    partitions it may use, chooses first."""
    free = list(capacity_bytes)
    by_aggressiveness = sorted(range(len(points)), key=lambda k: aggressiveness(points[k]))
    chosen: dict[str, int] = {}
    for datum in sorted(data, key=lambda d: (tolerance.get(d.name, 0.0), d.name)):
        for k in by_aggressiveness:
            if bers[k] <= tolerance.get(datum.name, 0.0) and free[k] >= datum.size_bytes:
                chosen[datum.name] = k
                free[k] -= datum.size_bytes
                break
        else:
            return None
    return [chosen[d.name] for d in data]


def map_to_partitions(problem: Problem, n_analog: tuple[int, ...], data: list[DataType],
                      tolerance: dict[str, float]) -> tuple[Candidate, list[float]]:
    """The partitions' points (``choose_points``) and the data placed by Algorithm 1; the
    candidate and each partition's BER."""
    points, where = choose_points(problem, n_analog, data, tolerance)
    candidate = _candidate(problem, n_analog, data, points, where)
    assert problem.device is not None
    placement(candidate, problem.device)  # the device holds these partitions
    return candidate, [point_ber(problem, *p) for p in points]


def choose_points(problem: Problem, n_analog: tuple[int, ...], data: list[DataType],
                  tolerance: dict[str, float]) -> tuple[list[Point], list[int]]:
    """Each partition's operating point, from the device data: the options are the lowest
    error-free point of the grid and, per datum, the most aggressive grid point within its
    tolerance (``most_aggressive_point``), so every option is a BER some datum tolerates.
    Starting with every partition at the safe point, each partition in turn takes the
    option that most lowers the mapping's cost (energy, then latency, in the order of the
    study's objectives) with the data placed by ``assign``, until no change lowers it
    (chosen: EDEN's partitions are fixed hardware with characterised points, so the paper
    does not choose them; this is coordinate descent over the same data). A partition
    left without data goes back to the safe point: it still has to work, and below that
    most modules do not."""
    count = problem.space.partitions
    device = problem.device
    assert device is not None
    safe = most_aggressive_point(problem, 0.0)
    options = sorted({safe, *(most_aggressive_point(problem, tolerance.get(d.name, 0.0))
                              for d in data)}, key=aggressiveness)
    capacity = [float(device.capacity_bytes // count)] * count
    ber_of = {option: point_ber(problem, *option) for option in options}

    def placed(points: list[Point]) -> tuple[list[Point], list[int]] | None:
        where = assign(data, tolerance, [ber_of[p] for p in points], points, capacity)
        if where is None:
            return None
        used = set(where)
        return [p if k in used else safe for k, p in enumerate(points)], where

    def score(points: list[Point], where: list[int]) -> tuple[float, ...]:
        cost = candidate_cost(_candidate(problem, n_analog, data, points, where), problem)
        totals = {"energy": float(cost.total_energy_j()),
                  "latency": float(cost.total_latency_s())}
        order = [name for name in problem.objectives if name in totals]
        order += [name for name in ("energy", "latency") if name not in order]
        return tuple(totals[name] for name in order)

    start = placed([safe] * count)
    if start is None:
        raise ConfigError(f"the data of this split ({sum(d.size_bytes for d in data):.0f} "
                          f"bytes) do not fit DRAM '{device.name}' in {count} equal "
                          "partitions")
    best_points, best_where = start
    best = score(best_points, best_where)
    for _ in range(len(options) * count):  # each pass lowers the cost, or ends
        improved = False
        for k in range(count):
            for option in options:
                if option == best_points[k]:
                    continue
                found = placed([*best_points[:k], option, *best_points[k + 1:]])
                if found is None:
                    continue
                value = score(*found)
                if value < best:
                    best, (best_points, best_where), improved = value, found, True
        if not improved:
            break
    return best_points, best_where


def _candidate(problem: Problem, n_analog: tuple[int, ...], data: list[DataType],
               points: list[Point], where: list[int]) -> Candidate:
    weights = [0] * problem.table.n_layers
    tensors = [0] * problem.table.n_layers
    for datum, k in zip(data, where):
        (weights if datum.kind == "weights" else tensors)[datum.layer] = k
    readers = tuple(tensors[int(first)] for first in problem.table.input_tensor)
    return Candidate(tuple(int(n) for n in n_analog), tuple(p[0] for p in points),
                     tuple(p[1] for p in points), tuple(weights), readers)


# ---- the engines' registrations --------------------------------------------------------

def _retrain_epochs() -> Any:
    return setting(
        DEFAULT_RETRAIN_EPOCHS, flag="--eden-retrain-epochs", metavar="N", binding=True,
        help="epochs of EDEN's retraining for the device, once per split and kept in the "
             "results folder (the BER rises over them to the BER of the grid's most "
             "aggressive point, at most 1e-2; the default is chosen, the paper's was not "
             "retrieved); the tolerances are then characterised on the retrained network")


def check_retrain_epochs(epochs: int, flag: str = "--eden-retrain-epochs") -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) \
            or not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(f"{flag} must be an integer in [1, {MAX_EPOCHS:,}] (got {epochs})")


# Options earlier dse had: a study that bound one is refused on resume, saying why.
REMOVED_OPTIONS = {
    "--eden-retrain-steps": "EDEN now retrains once per split (--eden-retrain-epochs) and "
                            "characterises the retrained network without a fine-tune at "
                            "each BER"}


@dataclass(frozen=True)
class EdenSettings:
    mapping: str | None = setting(
        None, metavar="SPEC", shown_default="each of the four baselines",
        help="the split to map (a heuristic name or a mapping JSON file)")
    retrain_epochs: int = _retrain_epochs()

    def __post_init__(self) -> None:
        check_retrain_epochs(self.retrain_epochs)


def _check_mapping(settings: EdenSettings, problem: Problem) -> None:
    if settings.mapping is not None:  # a bad --mapping fails before training
        resolve_split(settings.mapping, problem.table, problem.soc)


def _eden(settings: EdenSettings, problem: Any, study: Any) -> EdenEngine:
    return EdenEngine(mappings=() if settings.mapping is None else (settings.mapping,),
                      retrain_epochs=settings.retrain_epochs)


EDEN = register(EngineSpec(
    name="eden", settings=EdenSettings, factory=_eden, check=_check_mapping,
    summary="EDEN: retrain once for the device, characterise coarse and fine tolerances, "
            "map data to DRAM partitions (Algorithm 1), per --mapping split",
    needs=frozenset({"accuracy", "probe", "dram"}), removed=REMOVED_OPTIONS))


@dataclass(frozen=True)
class OdimoEdenSettings(OdimoSettings):
    retrain_epochs: int = _retrain_epochs()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_retrain_epochs(self.retrain_epochs)


def _odimo_eden(settings: OdimoEdenSettings, problem: Any, study: Any) -> OdimoEdenEngine:
    return OdimoEdenEngine(cost_weights=settings.cost_weights,
                           dnas_epochs=settings.dnas_epochs, target=settings.target,
                           retrain_epochs=settings.retrain_epochs,
                           patience_epochs=settings.patience_epochs,
                           finetune_epochs=settings.finetune_epochs)


ODIMO_EDEN = register(EngineSpec(
    name="odimo+eden", settings=OdimoEdenSettings, factory=_odimo_eden,
    summary="ODiMO's split for each lambda, then EDEN on it",
    needs=frozenset({"accuracy", "probe", "dram"}), removed=REMOVED_OPTIONS))
