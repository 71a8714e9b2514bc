"""Fast batched totals: per-layer tables of every channel split, gathered and summed.

Evaluating a candidate with ``diana.compute_cost`` costs some twenty array operations per
layer. A search evaluates many candidates of one network, so ``build_cost_lookup``
evaluates every possible ``n_analog`` of every layer once; a candidate's totals are then a
gather and a sum (``CostLookup.totals``), with results identical to ``compute_cost``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models.diana import SPLIT_COLUMNS, split_cost
from hw_models.layer_table import LayerTable
from hw_models.soc import Soc

_CHUNK_CANDIDATES = 8192  # keeps each chunk's index array in cache


@dataclass(frozen=True)
class CostTotals:
    """Network totals per candidate, each of shape (n_candidates,)."""

    latency_cycles: np.ndarray
    latency_s: np.ndarray
    energy_j: np.ndarray


@dataclass(frozen=True)
class CostLookup:
    """Flat per-layer cost tables.

    Layer ``l`` with ``n_analog = a`` sits at flat index ``offsets[l] + a``. Entries that a
    layer cannot take (analog channels on a depthwise layer) hold NaN.

    Attributes:
        offsets: shape (n_layers,), start of each layer's block.
        latency_cycles: shape (sum(cout + 1),), layer latency of each split in cycles.
        energy_j: shape (sum(cout + 1),), layer energy of each split in joules.
        clock_hz: SoC clock, for seconds.
    """

    offsets: np.ndarray
    latency_cycles: np.ndarray
    energy_j: np.ndarray
    clock_hz: float

    def totals(self, n_analog: np.ndarray) -> CostTotals:
        """Totals for mappings of shape (n_layers,) or (n_candidates, n_layers); unchecked
        (see ``diana.check_mapping``)."""
        n_analog = np.atleast_2d(n_analog)
        n_candidates, n_layers = n_analog.shape
        latency = np.empty(n_candidates)
        energy = np.empty(n_candidates)
        ones = np.ones(n_layers)  # a matrix-vector product sums rows faster than .sum(axis=1)
        for start in range(0, n_candidates, _CHUNK_CANDIDATES):
            stop = start + _CHUNK_CANDIDATES
            flat_index = n_analog[start:stop] + self.offsets  # (chunk, n_layers)
            latency[start:stop] = np.take(self.latency_cycles, flat_index) @ ones
            energy[start:stop] = np.take(self.energy_j, flat_index) @ ones
        return CostTotals(latency_cycles=latency, latency_s=latency / self.clock_hz,
                          energy_j=energy)


def build_cost_lookup(table: LayerTable, soc: Soc) -> CostLookup:
    """Evaluate every split of every layer with ``split_cost`` and flatten the results."""
    sizes = table.cout + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    layer = np.repeat(np.arange(table.n_layers), sizes)  # (total,)
    n_analog = np.arange(total) - offsets[layer]
    allowed = table.analog_capable[layer] | (n_analog == 0)
    columns = {c: getattr(table, c)[layer] for c in SPLIT_COLUMNS}  # each (total,)
    digital, analog, energy = split_cost(np.where(allowed, n_analog, 0), soc=soc, **columns)
    latency = np.where(allowed, np.maximum(digital, analog), np.nan)
    energy = np.where(allowed, energy, np.nan)
    return CostLookup(offsets=offsets, latency_cycles=latency, energy_j=energy,
                      clock_hz=soc.clock_hz)
