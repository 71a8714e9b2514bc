"""Objectives, constraints and the evaluation of one candidate.

The cost is computed first (microseconds); the probe (seconds) runs only when accuracy is
needed and the candidate is within every cost budget. The probe is injected, so tests pass
a stub.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dse.space import Candidate, SearchSpace
from hw_models.dram import DramDevice
from hw_models.errors import ConfigError
from hw_models.partitions import Partition, Placement
from hw_models.soc import Soc
from hw_models.system import DramSetting, SystemCost, system_cost
from networks.probe import ProbeCandidate, ProbeResult

# name -> (direction, metric column with its unit)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "accuracy"),
    "latency": ("minimize", "latency_s"),
    "energy": ("minimize", "energy_j"),
    "dram_energy": ("minimize", "dram_energy_j"),
    "compute_energy": ("minimize", "compute_energy_j"),
}
def objective_columns(objectives: list[str]) -> tuple[list[str], list[str]]:
    """The metric column and the direction of each objective."""
    return ([OBJECTIVES[name][1] for name in objectives],
            [OBJECTIVES[name][0] for name in objectives])


METRICS = ("accuracy", "latency_s", "energy_j", "dram_energy_j", "compute_energy_j")
UNPROBED_ACCURACY = 0.0  # the sampler's value for candidates over a cost budget (infeasible
                         # anyway); their stored accuracy is None: unknown

Probe = Callable[[ProbeCandidate], ProbeResult]


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or not names:
        raise ConfigError(f"unknown objective '{unknown[0] if unknown else text}' "
                          f"(choose from {', '.join(OBJECTIVES)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"objective listed twice in '{text}'")
    return names


@dataclass(frozen=True)
class Limits:
    """Constraints: each is feasible when <= 0 (Optuna's convention)."""

    max_accuracy_drop_pp: float | None = 1.0   # percentage points below all-digital nominal
    latency_budget_s: float | None = None
    energy_budget_j: float | None = None


@dataclass(frozen=True)
class Evaluation:
    """Everything measured for a candidate."""

    metrics: dict[str, float]
    constraints: dict[str, float]
    probed: bool
    cost_seconds: float
    probe_seconds: float
    cost: SystemCost


@dataclass(frozen=True)
class Context:
    """Built once per study: the layer table, hardware, objectives and the probe."""

    space: SearchSpace
    soc: Soc
    vendor: str
    objectives: tuple[str, ...]
    limits: Limits
    probe: Probe | None
    baseline_accuracy: float | None     # all-digital, nominal DRAM (probe), if probing
    overlap: bool = True

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[name][0] for name in self.objectives]

    @property
    def needs_probe(self) -> bool:
        return "accuracy" in self.objectives


def placement(candidate: Candidate, device: DramDevice) -> Placement:
    half = device.capacity_bytes // 2
    partitions = (Partition("nominal", half, device.vdd_nominal_v, device.trcd_nominal_ns),
                  Partition("approximate", half, candidate.vdd_v, candidate.trcd_ns))
    return Placement(partitions, np.array(candidate.weights_approx, dtype=np.int64),
                     np.array(candidate.activations_approx, dtype=np.int64), "search")


def candidate_cost(candidate: Candidate, context: Context) -> SystemCost:
    device = context.space.device
    dram = None if device is None else DramSetting(device, context.vendor,
                                                   placement(candidate, device))
    return system_cost(context.space.table, context.soc, np.array(candidate.n_analog), dram,
                       overlap=context.overlap)


def evaluate(candidate: Candidate, context: Context) -> Evaluation:
    """Cost first; the probe only when accuracy matters and every budget is met."""
    start = time.perf_counter()
    cost = candidate_cost(candidate, context)
    metrics = {
        "latency_s": float(cost.total_latency_s()),
        "energy_j": float(cost.total_energy_j()),
        "dram_energy_j": float(cost.total_dram_energy_j()),
        "compute_energy_j": float(cost.total_compute_energy_j()),
    }
    limits = context.limits
    constraints = {}
    if limits.latency_budget_s is not None:
        constraints["latency_over_budget_s"] = metrics["latency_s"] - limits.latency_budget_s
    if limits.energy_budget_j is not None:
        constraints["energy_over_budget_j"] = metrics["energy_j"] - limits.energy_budget_j
    cost_seconds = time.perf_counter() - start
    within_budget = all(value <= 0 for value in constraints.values())
    probed = context.needs_probe and within_budget
    probe_seconds = 0.0
    if context.needs_probe:
        accuracy = UNPROBED_ACCURACY
        if probed:
            start = time.perf_counter()
            result = context.probe(ProbeCandidate(
                n_analog=candidate.n_analog,
                weight_ber=tuple(float(b) for b in cost.weight_ber),
                activation_ber=tuple(float(b) for b in cost.activation_ber)))
            probe_seconds = time.perf_counter() - start
            accuracy = result.accuracy_mean
            metrics["accuracy_std"] = result.accuracy_std
        metrics["accuracy"] = accuracy if probed else None
        if limits.max_accuracy_drop_pp is not None and context.baseline_accuracy is not None:
            drop_pp = (context.baseline_accuracy - accuracy) * 100
            constraints["accuracy_drop_over_limit_pp"] = drop_pp - limits.max_accuracy_drop_pp
    return Evaluation(metrics, constraints, probed, cost_seconds, probe_seconds, cost)


def objective_values(evaluation: Evaluation, context: Context) -> list[float]:
    values = [evaluation.metrics[OBJECTIVES[name][1]] for name in context.objectives]
    return [UNPROBED_ACCURACY if value is None else value for value in values]
