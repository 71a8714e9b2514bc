"""The evaluation of one candidate: cost model first, then (maybe) its accuracy.

The cost is computed first (microseconds); the accuracy estimator (seconds) runs only when
accuracy is an objective and the candidate is within every cost budget. The estimator is
passed in, so tests use a stub.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.accuracy import LIMIT_TOLERANCE_PP, AccuracyModel, ProbeCandidate, ProbeResult
from dse.accuracy.stats import change_from_drop
from dse.metrics import ACCURACY_CHANGE, BY_COLUMN, BY_NAME, DRAM_BYTES, NOMINAL_DRAM_ENERGY
from dse.problem import Problem
from dse.space import Candidate, nominal_candidate
from hw_models.dram import DramDevice
from hw_models.errors import ConfigError
from hw_models.partitions import WHOLE_DEVICE, Placement, even_partitions
from hw_models.system import DramSetting, SystemCost, system_cost

UNPROBED_ACCURACY = 0.0  # the sampler's value for candidates over a cost budget (infeasible
                         # anyway); their stored accuracy is None: unknown
# Every constraint an evaluation can have, in the order Optuna and optuna-dashboard see them
# (a trial's list of constraint values; a study has those its limits set, in this order).
CONSTRAINT_NAMES = ("latency_over_budget_s", "energy_over_budget_j",
                    "accuracy_drop_over_limit_pp")


@dataclass(frozen=True)
class Evaluation:
    """Everything measured for a candidate.

    Attributes:
        metrics: metric column -> value (``accuracy`` None when not measured).
        constraints: name -> value, met when <= 0.
        probed: whether the accuracy estimator ran.
        cost_seconds, probe_seconds: wall time of the cost model and of the estimator.
        cost: the full per-layer cost.
    """

    metrics: dict[str, Any]
    constraints: dict[str, float]
    probed: bool
    cost_seconds: float
    probe_seconds: float
    cost: SystemCost

    @property
    def feasible(self) -> bool:
        return all(value <= 0 for value in self.constraints.values())


def placement(candidate: Candidate, device: DramDevice) -> Placement:
    """The search's equal partitions, each at its point, and where each tensor lives."""
    assert candidate.vdd_v is not None and candidate.trcd_ns is not None
    partitions = even_partitions(device, list(zip(candidate.vdd_v, candidate.trcd_ns)))
    layout = WHOLE_DEVICE if len(partitions) == 1 else f"{len(partitions)} partitions"
    return Placement(partitions, np.array(candidate.weight_partition, dtype=np.int64),
                     np.array(candidate.activation_partition, dtype=np.int64), layout)


def candidate_cost(candidate: Candidate, problem: Problem) -> SystemCost:
    """Per-layer latency, energy and bit error rates of ``candidate``."""
    device = problem.device
    dram = None if device is None else DramSetting(device, problem.vendor,
                                                   placement(candidate, device),
                                                   problem.ber_quantile)
    return system_cost(problem.table, problem.soc, np.array(candidate.n_analog), dram,
                       overlap=problem.overlap)


def probe_candidate(candidate: Candidate, cost: SystemCost) -> ProbeCandidate:
    """What the accuracy estimator needs: the split and each stored tensor's BER."""
    return ProbeCandidate(n_analog=tuple(int(n) for n in candidate.n_analog),
                          weight_ber=tuple(float(b) for b in cost.weight_ber),
                          activation_ber=tuple(float(b) for b in cost.activation_ber),
                          analog_channels=candidate.analog_channels,
                          shortcut_ber=_shortcut_ber(cost))


def _shortcut_ber(cost: SystemCost) -> tuple[float, ...]:
    """Each layer's stored-shortcut BER; empty when none has errors (the probe cache keys
    of candidates without shortcut errors stay as they were)."""
    bers = cost.shortcut_ber
    if bers is None or not np.any(bers):
        return ()
    return tuple(float(b) for b in bers)


def cost_metrics(candidate: Candidate, problem: Problem) -> tuple[SystemCost, dict[str, Any]]:
    """The cost of ``candidate`` and its totals. A total that is not finite in its stored
    unit or in the unit it is shown in (a preset whose numbers overflow: a clock of 1e-300 Hz
    gives some 1e303 J, infinite in µJ) is an error naming the presets."""
    cost = candidate_cost(candidate, problem)
    metrics: dict[str, Any] = {
        "latency_s": float(cost.total_latency_s()),
        "energy_j": float(cost.total_energy_j()),
        "dram_energy_j": float(cost.total_dram_energy_j()),
        "compute_energy_j": float(cost.total_compute_energy_j()),
        "compute_latency_s": float(cost.compute.latency_s.sum()),
    }
    shown = {column: BY_COLUMN[column] for column in metrics}
    bad = [f"{column} = {value:.3g} {shown[column].unit}, "
           f"{shown[column].shown(value):.3g} {shown[column].display_unit}"
           for column, value in metrics.items() if not math.isfinite(shown[column].shown(value))]
    if bad:
        soc, device = problem.soc, problem.device
        dram = "no DRAM" if device is None else f"DRAM preset '{device.name}'"
        raise ConfigError(f"hardware preset '{soc.name}' ({soc.source_path}) with {dram} gives "
                          f"non-finite costs ({'; '.join(bad)}); check their numbers "
                          "(e.g. clock_hz)")
    nominal = (cost if problem.device is None
               else candidate_cost(nominal_candidate(problem.space, candidate.n_analog),
                                   problem))
    metrics[NOMINAL_DRAM_ENERGY] = float(nominal.total_dram_energy_j())
    metrics[DRAM_BYTES] = float(cost.traffic.total_bytes.sum())
    return cost, metrics


@dataclass(frozen=True)
class Planned:
    """A candidate's cost, done, and whether its accuracy is to be measured (``probed``:
    accuracy is an objective and every cost budget is met)."""

    candidate: Candidate
    cost: SystemCost
    metrics: dict[str, Any]
    constraints: dict[str, float]
    cost_seconds: float
    probed: bool

    def probe_candidate(self) -> ProbeCandidate:
        return probe_candidate(self.candidate, self.cost)


def plan_evaluation(candidate: Candidate, problem: Problem) -> Planned:
    """The cost of ``candidate`` (microseconds) and whether to measure its accuracy."""
    start = time.perf_counter()
    cost, metrics = cost_metrics(candidate, problem)
    constraints = _budget_constraints(metrics, problem)
    cost_seconds = time.perf_counter() - start
    probed = problem.needs_accuracy and all(value <= 0 for value in constraints.values())
    return Planned(candidate, cost, metrics, constraints, cost_seconds, probed)


def evaluate(candidate: Candidate, problem: Problem,
             accuracy: AccuracyModel | None = None) -> Evaluation:
    """Cost first; the accuracy only when it is an objective and every budget is met."""
    planned = plan_evaluation(candidate, problem)
    result, probe_seconds = None, 0.0
    if planned.probed and accuracy is not None:
        start = time.perf_counter()
        result = accuracy.estimator(planned.probe_candidate())
        probe_seconds = time.perf_counter() - start
    return finish_evaluation(planned, problem, accuracy, result, probe_seconds)


def finish_evaluation(planned: Planned, problem: Problem, accuracy: AccuracyModel | None,
                      result: ProbeResult | None, probe_seconds: float = 0.0) -> Evaluation:
    """The evaluation of ``planned`` with its measured accuracy (``result``, None where it
    was not to be measured); ``probe_seconds``: the measurement's share of wall time."""
    metrics, constraints = dict(planned.metrics), dict(planned.constraints)
    probed = planned.probed
    if problem.needs_accuracy:
        if accuracy is None:
            raise ValueError("accuracy is an objective: evaluate needs an AccuracyModel")
        value = UNPROBED_ACCURACY
        drop = (math.nan, math.nan, math.nan)
        if probed:
            if result is None:
                raise ValueError("a candidate within its budgets needs its measured accuracy")
            value = result.accuracy_mean
            low, high = result.interval()
            drop = accuracy.drop_pp(result)
            metrics.update(accuracy_std=result.accuracy_std, accuracy_ci_low=low,
                           accuracy_ci_high=high, probe_cached=bool(result.cached))
            metrics.update(zip(ACCURACY_CHANGE, change_from_drop(drop)))
        metrics["accuracy"] = value if probed else None
        limit_pp = problem.limits.max_accuracy_drop_pp
        if limit_pp is not None:
            if not probed:  # unknown: over a budget, infeasible anyway
                bounded = (accuracy.baseline_accuracy - value) * 100
            else:
                bounded = drop[2] if problem.limits.drop_rule == "upper" else drop[0]
                if not math.isfinite(bounded):  # an estimator without an interval
                    bounded = drop[0]
            excess = bounded - limit_pp
            constraints["accuracy_drop_over_limit_pp"] = (
                0.0 if abs(excess) <= LIMIT_TOLERANCE_PP else excess)
    return Evaluation(metrics, constraints, probed, planned.cost_seconds, probe_seconds,
                      planned.cost)


def constraint_names(problem: Problem) -> tuple[str, ...]:
    """The constraints every evaluation of ``problem`` has, in ``CONSTRAINT_NAMES`` order."""
    limits = problem.limits
    present = {"latency_over_budget_s": limits.latency_budget_s is not None,
               "energy_over_budget_j": limits.energy_budget_j is not None,
               "accuracy_drop_over_limit_pp": problem.needs_accuracy
               and limits.max_accuracy_drop_pp is not None}
    return tuple(name for name in CONSTRAINT_NAMES if present[name])


def _budget_constraints(metrics: dict[str, Any], problem: Problem) -> dict[str, float]:
    limits = problem.limits
    constraints = {}
    if limits.latency_budget_s is not None:
        constraints["latency_over_budget_s"] = metrics["latency_s"] - limits.latency_budget_s
    if limits.energy_budget_j is not None:
        constraints["energy_over_budget_j"] = metrics["energy_j"] - limits.energy_budget_j
    return constraints


def objective_values(evaluation: Evaluation, problem: Problem) -> list[float]:
    """The values a sampler sees, in objective order (unknown accuracy: 0, infeasible)."""
    values = [evaluation.metrics[BY_NAME[name].column] for name in problem.objectives]
    return [UNPROBED_ACCURACY if value is None else float(value) for value in values]
