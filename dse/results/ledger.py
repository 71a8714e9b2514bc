"""The ledger: a study as the record of a search, whichever engine searched.

Every engine writes its candidates as trials of one Optuna study (so ``dse pareto``,
``show``, ``status`` and optuna-dashboard read them all alike): the Optuna engine through
its own ask and tell, any other engine through ``Ledger.record``. The study keeps what the
read-only commands need without torch: its objectives and units, the layer table, and the
settings it is bound to. Attribute keys are named here and nowhere else.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import optuna

from dse.evaluate import CONSTRAINT_NAMES, Evaluation, constraint_names, objective_values
from dse.host import worker_identity
from dse.metrics import BY_NAME, units
from dse.problem import Problem, safe_point
from dse.space import (
    Candidate,
    SearchSpace,
    at_point,
    decode,
    encode,
    nominal_candidate,
    param_distributions,
)
from dse.storage.locks import exclusive
from hw_models.dram import earlier_fingerprints as dram_earlier_fingerprints
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.mapping import HEURISTICS
from hw_models.soc import earlier_fingerprints as soc_earlier_fingerprints
from hw_models.traffic import layer_traffic

# study user attributes
CONFIG_ATTR = "dse_config"            # the settings the study is bound to (its identity)
OBJECTIVES_ATTR = "objectives"        # {name: {direction, column}}
UNITS_ATTR = "units"                  # {column: unit}
LAYERS_ATTR = "dse:layers"            # the layer table, as records
TEST_ACCURACY_ATTR = "test_accuracy"  # dse 0.1: {trial number: accuracy on the test split}
PROBE_SETTINGS_ATTR = "dse:probe-settings"       # the search's probe (dse confirm rebuilds it)
CONFIRM_SETTINGS_ATTR = "dse:confirm-settings"   # the settings the confirmations count under
CONFIRMED_PREFIX = "dse:confirmed:"              # + trial number: its test-split confirmation
CONFIRM_CLAIM_PREFIX = "dse:confirm-claim:"      # + trial number: {host, pid, time} measuring it
EDEN_TOLERANCE_PREFIX = "dse:eden-tolerance:"   # + split: {coarse_ber, fine_ber, data}
EDEN_TOLERANCE_ATTR = "dse:eden-tolerance"       # earlier dse: {split: that record}, whole
ENGINE_SETTINGS_PREFIX = "dse:engine-settings:"  # + engine: its binding settings here
EQUIVALENCE_MARGIN_ATTR = "dse:equivalence-margin"  # pp: the summaries' margin, last given
CONSTRAINT_NAMES_ATTR = "dse:constraint-names"   # what each entry of OPTUNA_CONSTRAINTS is
# trial user attributes
METRICS_ATTR = "metrics"              # measured values, timings and constraints
BASELINE_ATTR = "baseline"            # the baseline mapping's name
SAFE_DRAM_ATTR = "safe_dram_of"       # the baseline this is at its lowest safe DRAM point
SAFE_POINT_ATTR = "safe_dram_point"   # {vdd_v, trcd_ns, ber, in_dram}: that point, its BER
CHANNELS_ATTR = "analog_channels"     # per layer: the analog channel indices an engine chose
ODIMO_LAMBDA_ATTR = "odimo_lambda"    # the cost weight of the ODiMO search behind the trial
ODIMO_SEARCH_ATTR = "odimo_search"    # that search's epochs, best epoch, samples, seconds
DELIVERED_WEIGHTS_ATTR = "delivered_weights"  # the weights an engine trained for the trial
EDEN_ATTR = "eden"                    # the split EDEN mapped, its partition budgets, probes
ENGINE_COLUMNS_ATTR = "dse:columns"   # {column: number or text}: an engine's own per-trial
# values, columns of trials.csv (an engine names them; the results need not know it)
WORKER_ATTR = "worker"                # host, pid, pid namespace, threads
ENGINE_ATTR = "engine"                # the engine that proposed the candidate
ENGINE_LABEL_ATTR = "engine_label"    # the engine as shown, its lighter settings named
#                                       ("odimo[10 ep]"); absent: the engine's name
LEGACY_ENGINE = "optuna"  # the engine of trials recorded before trials named theirs
FAIL_REASON_ATTR = "fail_reason"
SURPLUS_ATTR = "surplus"              # pruned: the study's budget was reached
UNIT_FAILED_ATTR = "unit_failed"      # failed for good: its engine's unit gives no result
REQUEUED_ATTR = "requeued"            # how often a dead worker's queued trial came back
CLAIM_LOST_ATTR = "claim_lost_to"     # pruned: another worker's trial holds the same unit
# trial system attributes (Optuna's own keys)
OPTUNA_CONSTRAINTS = "constraints"    # the constraint values as a list, in CONSTRAINT_NAMES
# order: what Optuna's samplers and study.best_trials (4.9 and 5.x) and optuna-dashboard read
NAMED_CONSTRAINT_PREFIX = "constraints:"  # + name: Optuna 5's set_constraint (earlier dse)
UNIT_ATTR = "dse:unit"                # "<engine>:<key>": the unit of an engine's work the
# trial claimed (running) and then holds (complete); see dse.engines.units

# trials.csv's own columns besides the metrics and the trial parameters (engine columns may
# not take these names)
RESERVED_COLUMNS = frozenset({
    "trial", "state", "is_baseline", "baseline", "safe_dram_of", "odimo_lambda", "engine",
    "probed", "feasible", "worker", "cost_seconds", "probe_seconds", "analog_channel_fraction",
    "is_pareto", "is_pareto_robust", "dram_usable"})
BASELINES = ("all-digital", "all-analog", "diana-heuristic", "min-latency")
CHECKPOINT_DIGEST = "checkpoint_sha256"  # identity key: the baseline checkpoint's tensors
DATA_DIGEST = "data_sha256"              # identity key: the data the probe reads
ADOPTED_KEYS = (CHECKPOINT_DIGEST, DATA_DIGEST)  # a study made before it had one is bound
# to it when resumed
CONFIG_WAIT_S = 60          # how long a joining worker waits for the creator to finish
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")  # Optuna >= 5


def open_ledger(*, name: str, storage: Any, identity: dict[str, Any], problem: Problem,
                sampler: optuna.samplers.BaseSampler | None = None, budget: int | None = None
                ) -> tuple[optuna.Study, bool]:
    """Create the study ``name``, or join it if it exists (checking its settings).

    Safe when many workers start at once: the storage lets exactly one of them create the
    study; that one describes it, enqueues the baselines and then stores the settings,
    which the others wait for. Returns the study and whether this call created it. With
    a ``budget`` (the study's trial count), no more trials are queued than it holds; a
    study joined with a larger budget queues the reference points it lacks
    (``enqueue_missing``).
    """
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=problem.directions)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        check_identity(study, name, identity)
        enqueue_missing(study, problem, budget)
        return study, False
    describe(study, problem)
    enqueue_baselines(study, problem, budget)
    study.set_user_attr(CONFIG_ATTR, identity)  # last: tells joining workers it is ready
    return study, True


def describe(study: optuna.Study, problem: Problem) -> None:
    """What the read-only commands and the dashboard need: objectives, units, layers."""
    study.set_user_attr(OBJECTIVES_ATTR, {
        name: {"direction": BY_NAME[name].direction, "column": BY_NAME[name].column}
        for name in problem.objectives})
    study.set_user_attr(UNITS_ATTR, units())
    study.set_user_attr(LAYERS_ATTR, problem.table.to_records())
    study.set_user_attr(CONSTRAINT_NAMES_ATTR, list(constraint_names(problem)))
    with warnings.catch_warnings():  # "experimental" in Optuna since 3.2; stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([BY_NAME[name].column for name in problem.objectives])


def check_identity(study: optuna.Study, name: str, identity: dict[str, Any]) -> None:
    """Refuse a study made with other settings (waiting for a creator still at work)."""
    deadline = time.monotonic() + CONFIG_WAIT_S
    while (stored := study.user_attrs.get(CONFIG_ATTR)) is None:
        if time.monotonic() > deadline:
            raise ConfigError(f"study '{name}' exists but its creator never finished setting "
                              "it up; delete it or use another --study")
        time.sleep(0.2)
    if "probe_seeds" in stored and "finetune_seeds" in identity:
        raise ConfigError(f"study '{name}' was made by dse 0.1, whose probe had one kind of "
                          "seed and no intervals: its accuracies are not comparable with "
                          "today's; pass --study NEW_NAME (dse pareto still reads it)")
    if "ber_model_sha256" not in stored and identity.get("ber_model_sha256") is not None:
        raise ConfigError(f"study '{name}' was made with an earlier DRAM error model (before "
                          "the usable VDD floors and Voltron's 10 ns test tRCD): its trials' "
                          "BERs are not today's; pass --study NEW_NAME (dse pareto and dse "
                          "show still read it)")
    if "quantizer_version" not in stored and identity.get("quantizer_version") is not None:
        raise ConfigError(f"study '{name}' was made before studies were bound to the probe's "
                          "quantisers, which have changed since: its accuracies and today's "
                          "would not be comparable; pass --study NEW_NAME (dse pareto and dse "
                          "show still read it)")
    # bound to an earlier version of a preset file that, by today's file, costs the same
    stored, rebound = _adopt_earlier_presets(stored, identity)
    # made before studies were bound to the checkpoint's contents (its path is compared,
    # as it was then) or to the data's: compared without them, then bound to them
    legacy = [key for key in ADOPTED_KEYS if key not in stored]
    now = {k: v for k, v in identity.items() if k not in legacy}
    comparable_stored, comparable_now = _comparable(stored), _comparable(now)
    if comparable_stored != comparable_now:
        differing = sorted(k for k in set(comparable_now) | set(comparable_stored)
                           if comparable_stored.get(k) != comparable_now.get(k))
        raise ConfigError(f"study '{name}' exists with other settings ({', '.join(differing)}"
                          "); pass --study NEW_NAME or the original settings")
    if rebound or any(identity.get(key) is not None for key in legacy):
        study.set_user_attr(CONFIG_ATTR, identity)  # from now on bound to these contents


def _adopt_earlier_presets(stored: dict[str, Any], identity: dict[str, Any]
                           ) -> tuple[dict[str, Any], bool]:
    """``stored`` with each preset digest (``hw_sha256``, ``dram_sha256``) that today's
    preset file lists among its earlier versions of the same costs
    (``same_costs_as_sha256``) replaced by today's digest; and whether one was. A study
    made before a preset gained a setting whose absence meant what it says resumes; one
    made under any other version of the file is still refused."""
    adopted, rebound = dict(stored), False
    for key, earlier in (("hw", soc_earlier_fingerprints), ("dram", dram_earlier_fingerprints)):
        was, now, name = stored.get(f"{key}_sha256"), identity.get(f"{key}_sha256"), \
            identity.get(key)
        if not (isinstance(was, str) and isinstance(now, str) and isinstance(name, str)) \
                or was == now:
            continue
        try:
            listed = earlier(name)
        except (ConfigError, OSError):
            continue
        if was in listed:
            adopted[f"{key}_sha256"], rebound = now, True
    return adopted, rebound


def bind_engine_settings(study: optuna.Study, name: str, engine: str,
                         binding: dict[str, Any],
                         removed: Mapping[str, str] | None = None) -> None:
    """The study keeps the binding settings ``engine`` first ran with (by option flag); a
    run with other values is refused, naming them, and so is a study bound to an option the
    engine no longer has (``removed``: flag -> why). A study that predates the record takes
    the settings of the run that finds it so."""
    key = ENGINE_SETTINGS_PREFIX + engine
    stored = study.user_attrs.get(key)
    if stored is None:
        if binding:
            study.set_user_attr(key, binding)
        return
    gone = sorted(flag for flag in stored if flag in (removed or {}) and flag not in binding)
    if gone:
        flag = gone[0]
        raise ConfigError(f"study '{name}' was searched by --engine {engine} with {flag} "
                          f"{stored[flag]}, an option dse no longer has ("
                          f"{(removed or {})[flag]}): its trials mean something else now; "
                          "pass --study NEW_NAME")
    differing = sorted(flag for flag in set(stored) | set(binding)
                       if stored.get(flag) != binding.get(flag))
    if differing:
        was = ", ".join(f"{flag} {stored.get(flag)}" for flag in differing)
        raise ConfigError(f"study '{name}' was searched by --engine {engine} with {was}: "
                          "its trials mean something else under other values; pass "
                          f"--study NEW_NAME or the original {', '.join(differing)}")


def check_bound(storage: Any, name: str, known: dict[str, Any]) -> None:
    """Refuse early (before any training) a stored study ``name`` bound to other values of
    the ``known`` identity keys; the whole identity is checked when the study is joined."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    stored = storage.get_study_user_attrs(study_id).get(CONFIG_ATTR)
    if isinstance(stored, dict):
        differing = sorted(key for key, value in known.items()
                           if key in stored and stored[key] != value)
        if differing:  # as check_identity says it
            raise ConfigError(f"study '{name}' exists with other settings "
                              f"({', '.join(differing)}); pass --study NEW_NAME or the "
                              "original settings")


def _comparable(identity: dict[str, Any]) -> dict[str, Any]:
    """Presets compare by file contents: 'diana' and the path of its file are the same; so
    does the checkpoint, by the digest of its tensors, where it has one."""
    comparable = dict(identity)
    for key in ("hw", "dram", "checkpoint"):
        if comparable.get(f"{key}_sha256") is not None:
            comparable[key] = comparable.pop(f"{key}_sha256")
    return comparable


def baseline_candidates(problem: Problem) -> list[tuple[str, Candidate]]:
    """The whole-layer heuristic mappings at nominal DRAM, by name."""
    return [(name, nominal_candidate(problem.space, HEURISTICS[name](problem.table,
                                                                      problem.soc)))
            for name in BASELINES]


def safe_dram_candidates(problem: Problem) -> list[tuple[str, Candidate, dict[str, Any]]]:
    """Each baseline mapping with every partition at the lowest safe operating point: the
    lowest VDD and the shortest tRCD of the search grid at which the chosen DIMM quantile's
    combined BER (from VDD and from tRCD) is 0 (``problem.safe_point``), for every mapping,
    also one with no tensor in DRAM: a DRAM that holds none of the inference's tensors still
    has to work (a point where most modules fail is no saving). The cost falls monotonically
    with VDD and tRCD, so these points dominate their baselines at the same accuracy;
    enqueued, they keep the front from missing them. Each point's labels say where it is,
    its BER (0) and whether the mapping has a tensor in DRAM. Empty without DRAM, or when
    not even nominal is error-free."""
    if problem.device is None:
        return []
    point = safe_point(problem)
    if point is None:
        return []
    found = []
    for name, baseline in baseline_candidates(problem):
        traffic = layer_traffic(problem.table, problem.soc, np.array(baseline.n_analog))
        in_dram = bool(traffic.total_bytes.sum() > 0)
        candidate = at_point(problem.space, baseline.n_analog, point)
        if candidate != baseline:
            found.append((name, candidate, {"vdd_v": point[0], "trcd_ns": point[1],
                                            "ber": 0.0, "in_dram": in_dram}))
    return found


def reference_points(problem: Problem) -> list[tuple[Candidate, dict[str, Any]]]:
    """What every study holds besides its engine's candidates, in the order it is queued:
    the baselines at nominal DRAM, then each at its lowest safe DRAM point; each with its
    labels (trial user attributes)."""
    queue: list[tuple[Candidate, dict[str, Any]]] = [
        (candidate, {BASELINE_ATTR: name}) for name, candidate in baseline_candidates(problem)]
    queue += [(candidate, {SAFE_DRAM_ATTR: name, SAFE_POINT_ATTR: point})
              for name, candidate, point in safe_dram_candidates(problem)]
    return queue


def enqueue_baselines(study: optuna.Study, problem: Problem, budget: int | None = None
                      ) -> None:
    """The reference points; the first ``budget`` of them when given (a study of fewer
    trials leaves nothing queued)."""
    for candidate, attrs in reference_points(problem)[:budget]:
        study.enqueue_trial(encode(candidate, problem.space), user_attrs=attrs)


_HELD_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                optuna.trial.TrialState.WAITING)


def _reference_label(user_attrs: dict[str, Any]) -> tuple[str, Any] | None:
    """Which reference point a trial is (its baseline, or the baseline it is the safe DRAM
    point of), else None."""
    for key in (BASELINE_ATTR, SAFE_DRAM_ATTR):
        if key in user_attrs:
            return key, user_attrs[key]
    return None


def enqueue_missing(study: optuna.Study, problem: Problem, budget: int | None = None) -> int:
    """Queue the reference points no trial holds (none complete, running or queued: a study
    made with fewer trials than points, or one whose point was pruned as surplus or failed),
    in their order; with a ``budget``, only as many as it leaves beside the trials held.
    Workers joining at once queue each point once: the check and the queueing are done
    holding the study's lock. Returns how many were queued."""
    with exclusive(study, "queue"):
        held = study.get_trials(deepcopy=False, states=_HELD_STATES)
        labels = {_reference_label(trial.user_attrs) for trial in held}
        missing = [(candidate, attrs) for candidate, attrs in reference_points(problem)
                   if _reference_label(attrs) not in labels]
        if budget is not None:
            missing = missing[:max(0, budget - len(held))]
        for candidate, attrs in missing:
            study.enqueue_trial(encode(candidate, problem.space), user_attrs=attrs)
    return len(missing)


def metrics_record(evaluation: Evaluation) -> dict[str, Any]:
    """The ``metrics`` trial attribute of an evaluation."""
    return {**evaluation.metrics, "probed": evaluation.probed,
            "cost_seconds": evaluation.cost_seconds,
            "probe_seconds": evaluation.probe_seconds,
            "constraints": evaluation.constraints}


def stored_table(study: optuna.Study) -> LayerTable | None:
    """The layer table the study was made with (None for studies that predate it)."""
    records = study.user_attrs.get(LAYERS_ATTR)
    return None if records is None else LayerTable.from_records(records)


class Ledger:
    """Records candidates found by any engine as complete trials of ``study``."""

    def __init__(self, study: optuna.Study, problem: Problem) -> None:
        self.study = study
        self.problem = problem

    def complete_count(self) -> int:
        return len(self.study.get_trials(deepcopy=False,
                                         states=(optuna.trial.TrialState.COMPLETE,)))

    def record(self, candidate: Candidate, evaluation: Evaluation, *, engine: str,
               attrs: dict[str, Any] | None = None,
               columns: dict[str, float | int | str] | None = None
               ) -> optuna.trial.FrozenTrial:
        """Add ``candidate`` with its evaluation as one complete trial (one write);
        ``columns``: the engine's own values for trials.csv (a name the table already
        has is refused). Several workers share an engine's work through
        ``dse.engines.units`` instead, which completes the trial each unit claimed."""
        self.study.add_trial(self.as_trial(candidate, evaluation, engine=engine, attrs=attrs,
                                           columns=columns))
        return self.study.get_trials(deepcopy=False)[-1]

    def as_trial(self, candidate: Candidate, evaluation: Evaluation, *, engine: str,
                 attrs: dict[str, Any] | None = None,
                 columns: dict[str, float | int | str] | None = None
                 ) -> optuna.trial.FrozenTrial:
        """The complete trial ``record`` adds (not stored): parameters, values and
        attributes."""
        if columns:
            taken = set(columns) & RESERVED_COLUMNS
            if taken:
                raise ValueError(f"engine {engine}: columns {sorted(taken)} are dse's own")
            attrs = {**(attrs or {}), ENGINE_COLUMNS_ATTR: dict(columns)}
        space = self.problem.space
        params = encode(candidate, space)
        every = param_distributions(space)
        for key, value in params.items():  # a count off the search's grid (ODiMO's argmax)
            grid = every[key]
            if isinstance(grid, optuna.distributions.IntDistribution) \
                    and (value - grid.low) % grid.step:
                every[key] = optuna.distributions.IntDistribution(grid.low, grid.high)
        user_attrs = {**(attrs or {}), ENGINE_ATTR: engine, WORKER_ATTR: worker_identity(),
                      METRICS_ATTR: metrics_record(evaluation)}
        if candidate.analog_channels is not None:
            user_attrs[CHANNELS_ATTR] = [None if chosen is None else list(chosen)
                                         for chosen in candidate.analog_channels]
        extra: dict[str, Any] = (  # Optuna's list, or the named keys (see named_constraints)
            {"constraints": evaluation.constraints} if self.named_constraints else
            {"system_attrs": {OPTUNA_CONSTRAINTS: constraint_values(evaluation.constraints)}})
        return optuna.trial.create_trial(
            values=objective_values(evaluation, self.problem), params=params,
            distributions={key: every[key] for key in params}, user_attrs=user_attrs,
            **extra)

    @functools.cached_property
    def named_constraints(self) -> bool:
        """Whether this study's trials store their constraints under Optuna 5's named keys
        (see ``stores_named_constraints``)."""
        return stores_named_constraints(self.study)


def eden_tolerances(user_attrs: dict[str, Any]) -> dict[str, Any]:
    """Split -> what EDEN characterised on it, from a study's user attributes: one attribute
    per split (``EDEN_TOLERANCE_PREFIX``), over the whole record that earlier dse kept in
    one attribute (``EDEN_TOLERANCE_ATTR``)."""
    merged = dict(user_attrs.get(EDEN_TOLERANCE_ATTR) or {})
    merged.update({key[len(EDEN_TOLERANCE_PREFIX):]: record
                   for key, record in user_attrs.items()
                   if key.startswith(EDEN_TOLERANCE_PREFIX)})
    return merged


def trial_candidate(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> Candidate:
    """The candidate a trial measured: its parameters, and the analog channels an engine
    chose, where it stored them."""
    candidate = decode(trial.params, space)
    chosen = trial.user_attrs.get(CHANNELS_ATTR)
    if chosen is None:
        return candidate
    return dataclasses.replace(candidate, analog_channels=tuple(
        None if entry is None else tuple(int(c) for c in entry) for entry in chosen))


def objectives_of(study: optuna.Study) -> list[str]:
    return list(study.user_attrs.get(OBJECTIVES_ATTR, {}))


def metrics_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's measured metrics (accuracy, latency_s, energy_j, ..., timings)."""
    return trial.user_attrs.get(METRICS_ATTR, {})


def constraints_of(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's constraint values (<= 0: met); stored with its metrics (or, in studies made
    by dse 0.1, as their own attribute)."""
    return trial.user_attrs.get(METRICS_ATTR, {}).get("constraints",
                                                      trial.user_attrs.get("constraints", {}))


def constraint_values(constraints: dict[str, float]) -> list[float]:
    """A trial's constraints as the list Optuna and optuna-dashboard read, in
    ``CONSTRAINT_NAMES`` order (a name outside it, which no evaluation has, after them by
    name). NaN is refused, as Optuna does."""
    rank = {name: place for place, name in enumerate(CONSTRAINT_NAMES)}
    names = sorted(constraints, key=lambda name: (rank.get(name, len(rank)), name))
    values = [float(constraints[name]) for name in names]
    for name, value in zip(names, values):
        if math.isnan(value):
            raise ValueError(f"constraint '{name}' is NaN")
    return values


def stores_named_constraints(study: optuna.Study) -> bool:
    """Whether new trials of ``study`` store their constraints as Optuna 5's named system
    attributes (``constraints:<name>``) instead of Optuna's list: only in a study that an
    earlier dse filled that way on Optuna 5 (it has no ``CONSTRAINT_NAMES_ATTR``),
    so that every trial of a study has the same constraint keys (Optuna's GP sampler
    refuses trials whose keys differ; optuna-dashboard 0.21 reads only the list)."""
    if not HAS_SET_CONSTRAINT or CONSTRAINT_NAMES_ATTR in study.user_attrs:
        return False
    return any(key.startswith(NAMED_CONSTRAINT_PREFIX)
               for trial in study.get_trials(deepcopy=False) for key in trial.system_attrs)


def worker_label(trial: optuna.trial.FrozenTrial) -> str:
    """host:pid of the worker that ran the trial ('' when unknown)."""
    worker = trial.user_attrs.get(WORKER_ATTR)
    return f"{worker.get('host', '?')}:{worker.get('pid', '?')}" if worker else ""


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return (trial.state == optuna.trial.TrialState.COMPLETE
            and all(value <= 0 for value in constraints_of(trial).values()))


def labels_to_keep(user_attrs: dict[str, Any], drop: Sequence[str] = (
        WORKER_ATTR, FAIL_REASON_ATTR, SURPLUS_ATTR, METRICS_ATTR)) -> dict[str, Any]:
    """A queued trial's labels (baseline, requeue count) without what one run added."""
    return {key: value for key, value in user_attrs.items() if key not in drop}
