"""The search space: every ``trial.suggest_*`` call of a study lives in ``suggest_candidate``.

Parameters (names carry units; each has a meaning on its own in trials.csv):

* ``n_analog:<layer>``: output channels on the analog array, on a grid of ``channel_step``
  (the largest divisor of Cout up to 16: always includes 0 and Cout); depthwise / grouped
  layers have no parameter (digital only);
* ``undervolt_mv``: how far below nominal the DRAM's VDD is, in steps of ``VDD_STEP_MV`` (the
  Voltron measurement step), down to the usable floor of the study's BER statistic (the
  vendor's ``--ber-quantile``: ``hw_models.dram``);
* ``trcd_reduction_ns``: how far below nominal its tRCD is, in ``TRCD_STEP_NS`` steps, down
  to the device's minimum;

with ``--partitions 1`` (``whole-device``: one operating point for the whole device, every
tensor in it). With N > 1 equal partitions, each has its own point (``undervolt_mv:p<k>``,
``trcd_reduction_ns:p<k>``) and each tensor that can live in DRAM picks one
(``partition:weights/<layer>`` for weights that stream, ``partition:activations/<layer>`` for
a stored tensor, named by its first reader, that goes through DRAM for some mapping).

The tables add each partition's absolute point beside its reductions (``vdd_v``,
``trcd_ns``: ``absolute_points``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hw_models.dram import DEFAULT_BER_QUANTILE, DramDevice
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.partitions import check_partition_count
from hw_models.traffic import DramTensors

VDD_STEP_MV = 25        # Voltron measured every 25 mV
TRCD_STEP_NS = 0.25
CHANNEL_STEP = 16       # the digital PE array computes 16 output channels per pass


@dataclass(frozen=True)
class Candidate:
    """One point of the design space (per-layer tuples in layer-table order).

    Attributes:
        vdd_v, trcd_ns: each partition's operating point; None without DRAM.
        weight_partition: per layer, the partition of its weights (0 when resident).
        activation_partition: per layer, the partition of the tensor it reads (equal for the
            readers of one tensor; 0 for tensors kept on chip).
        analog_channels: per layer, which channels are analog (None: the probe's rule); not
            a trial parameter (engines that choose channels store it with the trial).
    """

    n_analog: tuple[int, ...]
    vdd_v: tuple[float, ...] | None
    trcd_ns: tuple[float, ...] | None
    weight_partition: tuple[int, ...]
    activation_partition: tuple[int, ...]
    analog_channels: tuple[tuple[int, ...] | None, ...] | None = None


@dataclass(frozen=True)
class SearchSpace:
    """What the space is built from: layer table, DRAM device and vendor range.

    Attributes:
        dram_weights: per layer, whether its weights may stream from DRAM (some mapping).
        dram_activations: per tensor (its first reader), whether it may live in DRAM.
        partitions: number of equal DRAM partitions (1: the whole device).
    """

    table: LayerTable
    dram_weights: tuple[bool, ...]
    dram_activations: tuple[bool, ...]
    device: DramDevice | None
    max_undervolt_mv: int
    max_trcd_reduction_ns: float
    partitions: int = 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.table.name

    def point_names(self, k: int) -> tuple[str, str]:
        """The VDD and tRCD parameter names of partition ``k``."""
        if self.partitions == 1:
            return "undervolt_mv", "trcd_reduction_ns"
        return f"undervolt_mv:p{k}", f"trcd_reduction_ns:p{k}"

    def placed_tensors(self) -> list[tuple[str, str, int]]:
        """(parameter name, kind, layer index) of every tensor whose partition is searched."""
        if self.device is None or self.partitions == 1:
            return []
        names = self.table.name
        return ([(f"partition:weights/{names[i]}", "weights", i)
                 for i, flag in enumerate(self.dram_weights) if flag]
                + [(f"partition:activations/{names[i]}", "activations", i)
                   for i, flag in enumerate(self.dram_activations) if flag])


def channel_step(cout: int, step: int = CHANNEL_STEP) -> int:
    """The largest divisor of ``cout`` not above ``step``: the grid then ends at Cout."""
    return max(d for d in range(1, min(step, cout) + 1) if cout % d == 0)


def build_space(table: LayerTable, dram: DramTensors, device: DramDevice | None,
                vendor: str, partitions: int = 1,
                quantile: str = DEFAULT_BER_QUANTILE) -> SearchSpace:
    weights = tuple(bool(flag) for flag in dram.weights)
    activations = tuple(bool(flag) for flag in dram.activations)
    if device is None:
        return SearchSpace(table, weights, activations, None, 0, 0.0, 1)
    check_partition_count(device, partitions)
    low_v, nominal_v = device.vdd_range_v(vendor, quantile)
    max_undervolt = int(np.floor((nominal_v - low_v) * 1000 / VDD_STEP_MV + 1e-9)) * VDD_STEP_MV
    span_ns = device.trcd_nominal_ns - device.trcd_min_ns
    max_reduction = float(np.floor(span_ns / TRCD_STEP_NS + 1e-9) * TRCD_STEP_NS)
    return SearchSpace(table, weights, activations, device, max_undervolt, max_reduction,
                       partitions)


def vdd_grid_v(space: SearchSpace) -> np.ndarray:
    """The search's supply voltages, nominal first, down in ``VDD_STEP_MV`` steps."""
    assert space.device is not None
    return np.round(space.device.vdd_nominal_v
                    - np.arange(0, space.max_undervolt_mv + 1, VDD_STEP_MV) / 1000, 6)


def trcd_grid_ns(space: SearchSpace) -> np.ndarray:
    """The search's tRCD values, nominal first, down in ``TRCD_STEP_NS`` steps."""
    assert space.device is not None
    return np.round(space.device.trcd_nominal_ns
                    - np.arange(0, space.max_trcd_reduction_ns + 1e-9, TRCD_STEP_NS), 6)


def suggest_candidate(trial: Any, space: SearchSpace) -> Candidate:
    """Draw a candidate from an Optuna trial (the only place that calls ``suggest_*``;
    ``decode`` reuses it on recorded parameters)."""
    table = space.table
    n_analog = tuple(
        trial.suggest_int(f"n_analog:{name}", 0, int(cout), step=channel_step(int(cout)))
        if capable else 0
        for name, cout, capable in zip(table.name, table.cout, table.analog_capable))
    zeros = (0,) * table.n_layers
    device = space.device
    if device is None:
        return Candidate(n_analog, None, None, zeros, zeros)
    vdd, trcd = [], []
    for k in range(space.partitions):
        vdd_name, trcd_name = space.point_names(k)
        undervolt_mv = trial.suggest_int(vdd_name, 0, space.max_undervolt_mv, step=VDD_STEP_MV)
        reduction_ns = trial.suggest_float(trcd_name, 0.0, space.max_trcd_reduction_ns,
                                           step=TRCD_STEP_NS)
        vdd.append(round(device.vdd_nominal_v - undervolt_mv / 1000, 6))
        trcd.append(round(device.trcd_nominal_ns - reduction_ns, 6))
    weights, tensors = list(zeros), list(zeros)
    for name, kind, index in space.placed_tensors():
        chosen = int(trial.suggest_int(name, 0, space.partitions - 1))
        (weights if kind == "weights" else tensors)[index] = chosen
    readers = tuple(tensors[int(first)] for first in table.input_tensor)
    return Candidate(n_analog, tuple(vdd), tuple(trcd), tuple(weights), readers)


def nominal_candidate(space: SearchSpace, n_analog: Sequence[int] | np.ndarray) -> Candidate:
    """A whole-layer mapping with every partition at nominal DRAM (the baselines)."""
    return at_point(space, n_analog, None)


def at_point(space: SearchSpace, n_analog: Sequence[int] | np.ndarray,
             point: tuple[float, float] | None) -> Candidate:
    """``n_analog`` with every partition at ``point`` = (vdd_v, trcd_ns) (None: nominal) and
    every tensor in partition 0."""
    zeros = (0,) * space.table.n_layers
    device = space.device
    if device is None:
        return Candidate(tuple(int(n) for n in n_analog), None, None, zeros, zeros)
    vdd_v, trcd_ns = point or (device.vdd_nominal_v, device.trcd_nominal_ns)
    return Candidate(tuple(int(n) for n in n_analog), (vdd_v,) * space.partitions,
                     (trcd_ns,) * space.partitions, zeros, zeros)


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
    for k, (vdd_v, trcd_ns) in enumerate(zip(candidate.vdd_v, candidate.trcd_ns)):
        vdd_name, trcd_name = space.point_names(k)
        params[vdd_name] = int(round((device.vdd_nominal_v - vdd_v) * 1000))
        params[trcd_name] = float(
            round((device.trcd_nominal_ns - trcd_ns) / TRCD_STEP_NS) * TRCD_STEP_NS)
    for name, kind, index in space.placed_tensors():
        chosen = (candidate.weight_partition if kind == "weights"
                  else candidate.activation_partition)[index]
        params[name] = int(chosen)
    return params


def absolute_points(params: Mapping[str, Any], device: DramDevice) -> dict[str, float]:
    """Each partition's VDD (V) and tRCD (ns) from the reductions among recorded trial
    parameters: ``vdd_v`` and ``trcd_ns`` beside ``undervolt_mv`` and ``trcd_reduction_ns``
    (``vdd_v:p<k>``, ``trcd_ns:p<k>`` with partitions), as ``suggest_candidate`` computes
    them."""
    points = {}
    for name, value in params.items():
        knob, _, partition = name.partition(":")
        suffix = f":{partition}" if partition else ""
        if knob == "undervolt_mv":
            points[f"vdd_v{suffix}"] = round(device.vdd_nominal_v - value / 1000, 6)
        elif knob == "trcd_reduction_ns":
            points[f"trcd_ns{suffix}"] = round(device.trcd_nominal_ns - value, 6)
    return points


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
    from optuna.distributions import FloatDistribution, IntDistribution
    table = space.table
    found: dict[str, Any] = {
        f"n_analog:{name}": IntDistribution(0, int(cout), step=channel_step(int(cout)))
        for name, cout, capable in zip(table.name, table.cout, table.analog_capable)
        if capable}
    if space.device is None:
        return found
    for k in range(space.partitions):
        vdd_name, trcd_name = space.point_names(k)
        found[vdd_name] = IntDistribution(0, space.max_undervolt_mv, step=VDD_STEP_MV)
        found[trcd_name] = FloatDistribution(0.0, space.max_trcd_reduction_ns,
                                             step=TRCD_STEP_NS)
    found.update({name: IntDistribution(0, space.partitions - 1)
                  for name, _, _ in space.placed_tensors()})
    return found
