"""The search space: every ``trial.suggest_*`` call of a study lives in ``suggest_candidate``.

Parameters (names carry units; each has a meaning on its own in trials.csv):

* ``n_analog:<layer>``: output channels on the analog array, on a grid of ``channel_step``
  (the largest divisor of Cout up to 16: always includes 0 and Cout); depthwise / grouped
  layers have no parameter (digital only);
* ``undervolt_mv``: how far below nominal the approximate partition's VDD is, in steps of
  ``VDD_STEP_MV`` (the Voltron measurement step), down to the lowest characterised voltage;
* ``trcd_reduction_ns``: how far below nominal its tRCD is, in ``TRCD_STEP_NS`` steps, down
  to the device's minimum;
* ``approx_weights:<layer>`` and, for layers whose activations go through DRAM,
  ``approx_activations:<layer>``: whether the tensor lives in the approximate partition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hw_models.dram import DramDevice
from hw_models.errors import ConfigError
from hw_models.workload import LayerTable

VDD_STEP_MV = 25        # Voltron measured every 25 mV
TRCD_STEP_NS = 0.25
CHANNEL_STEP = 16       # the digital PE array computes 16 output channels per pass


@dataclass(frozen=True)
class Candidate:
    """One point of the design space (per-layer tuples in layer-table order)."""

    n_analog: tuple[int, ...]
    vdd_v: float | None                 # approximate partition; None without DRAM
    trcd_ns: float | None
    weights_approx: tuple[bool, ...]
    activations_approx: tuple[bool, ...]


@dataclass(frozen=True)
class SearchSpace:
    """What the space is built from: layer table, DRAM device and vendor range."""

    table: LayerTable
    spilled: tuple[bool, ...]           # layers whose activations go through DRAM
    device: DramDevice | None
    max_undervolt_mv: int
    max_trcd_reduction_ns: float

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.table.name


def channel_step(cout: int, step: int = CHANNEL_STEP) -> int:
    """The largest divisor of ``cout`` not above ``step``: the grid then ends at Cout."""
    return max(d for d in range(1, min(step, cout) + 1) if cout % d == 0)


def build_space(table: LayerTable, spilled: np.ndarray, device: DramDevice | None,
                vendor: str) -> SearchSpace:
    if device is None:
        return SearchSpace(table, tuple(bool(s) for s in spilled), None, 0, 0.0)
    low_v, nominal_v = device.vdd_range_v(vendor)
    max_undervolt = int(np.floor((nominal_v - low_v) * 1000 / VDD_STEP_MV + 1e-9)) * VDD_STEP_MV
    span_ns = device.trcd_nominal_ns - device.trcd_min_ns
    max_reduction = float(np.floor(span_ns / TRCD_STEP_NS + 1e-9) * TRCD_STEP_NS)
    return SearchSpace(table, tuple(bool(s) for s in spilled), device, max_undervolt,
                       max_reduction)


def suggest_candidate(trial: Any, space: SearchSpace) -> Candidate:
    """Draw a candidate from an Optuna trial (the only place that calls ``suggest_*``;
    ``decode`` reuses it on recorded parameters)."""
    table = space.table
    n_analog = tuple(
        trial.suggest_int(f"n_analog:{name}", 0, int(cout), step=channel_step(int(cout)))
        if capable else 0
        for name, cout, capable in zip(table.name, table.cout, table.analog_capable))
    if space.device is None:
        return Candidate(n_analog, None, None, (False,) * table.n_layers,
                         (False,) * table.n_layers)
    undervolt_mv = trial.suggest_int("undervolt_mv", 0, space.max_undervolt_mv,
                                     step=VDD_STEP_MV)
    reduction_ns = trial.suggest_float("trcd_reduction_ns", 0.0, space.max_trcd_reduction_ns,
                                       step=TRCD_STEP_NS)
    weights = tuple(trial.suggest_categorical(f"approx_weights:{name}", [False, True])
                    for name in table.name)
    activations = tuple(
        trial.suggest_categorical(f"approx_activations:{name}", [False, True])
        if spilled else False
        for name, spilled in zip(table.name, space.spilled))
    device = space.device
    return Candidate(n_analog, round(device.vdd_nominal_v - undervolt_mv / 1000, 6),
                     round(device.trcd_nominal_ns - reduction_ns, 6), weights, activations)


def nominal_candidate(space: SearchSpace, n_analog: Sequence[int] | np.ndarray) -> Candidate:
    """A whole-layer mapping with every tensor at nominal DRAM (the baselines)."""
    n_layers = space.table.n_layers
    device = space.device
    return Candidate(tuple(int(n) for n in n_analog),
                     None if device is None else device.vdd_nominal_v,
                     None if device is None else device.trcd_nominal_ns,
                     (False,) * n_layers, (False,) * n_layers)


def encode(candidate: Candidate, space: SearchSpace) -> dict[str, Any]:
    """The trial parameters of ``candidate``: ``decode``'s exact inverse on the grid."""
    table = space.table
    params: dict[str, Any] = {
        f"n_analog:{name}": int(n)
        for name, n, capable in zip(table.name, candidate.n_analog, table.analog_capable)
        if capable}
    device = space.device
    if device is None:
        return params
    assert candidate.vdd_v is not None and candidate.trcd_ns is not None
    params["undervolt_mv"] = int(round((device.vdd_nominal_v - candidate.vdd_v) * 1000))
    params["trcd_reduction_ns"] = float(
        round((device.trcd_nominal_ns - candidate.trcd_ns) / TRCD_STEP_NS) * TRCD_STEP_NS)
    params.update({f"approx_weights:{name}": bool(flag)
                   for name, flag in zip(table.name, candidate.weights_approx)})
    params.update({f"approx_activations:{name}": bool(flag)
                   for name, flag, spilled in zip(table.name, candidate.activations_approx,
                                                  space.spilled) if spilled})
    return params


def decode(params: Mapping[str, Any], space: SearchSpace) -> Candidate:
    """The candidate of stored trial parameters (``encode``'s exact inverse)."""
    return suggest_candidate(_Recorded(params), space)


class _Recorded:
    """Answers ``suggest_*`` from recorded parameters (what ``optuna.trial.FixedTrial``
    does, without Optuna)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise ConfigError(f"trial parameters lack '{name}' (another design space?)")
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return int(self._get(name))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None
                      ) -> float:
        return float(self._get(name))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._get(name)


def param_distributions(space: SearchSpace) -> dict[str, Any]:
    """Optuna distributions of every parameter (to record a candidate found without a
    sampler as a trial)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    table = space.table
    found: dict[str, Any] = {
        f"n_analog:{name}": IntDistribution(0, int(cout), step=channel_step(int(cout)))
        for name, cout, capable in zip(table.name, table.cout, table.analog_capable)
        if capable}
    if space.device is None:
        return found
    found["undervolt_mv"] = IntDistribution(0, space.max_undervolt_mv, step=VDD_STEP_MV)
    found["trcd_reduction_ns"] = FloatDistribution(0.0, space.max_trcd_reduction_ns,
                                                   step=TRCD_STEP_NS)
    flags = CategoricalDistribution([False, True])
    found.update({f"approx_weights:{name}": flags for name in table.name})
    found.update({f"approx_activations:{name}": flags
                  for name, spilled in zip(table.name, space.spilled) if spilled})
    return found
