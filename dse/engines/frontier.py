"""dse's own engine (in progress): an additive model of the accuracy drop, solved exactly.

The cost side, exact: at one DRAM operating point, a layer's latency and energy depend on
its own channel split only, as long as the split does not move any tensor between L1, L2
and DRAM. What moves tensors is the total of the stored weights (analog channels take 2-bit
codes, digital ones 8 bits): it decides whether the weights stay resident in L2 and how much
of L2 is left for activations (``hw_models.traffic``). Less stored weight never moves a
tensor outwards, so when the all-digital mapping (the most stored weight) and the
all-analog one (the least) put every tensor at the same level, every mapping does
(``fixed_regime``): then the network's latency and energy are sums over layers of per-layer
tables (``cost_tables``), and the exact front of the predicted drop, latency and energy over
all channel splits at that point is ``dse.pareto.pareto_sums`` of the per-layer tables
(``solve``). Every DRAM point of the grid is solved; points whose tables are the same
(tRCD does nothing to a network with no tensor in DRAM) share one solve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from dse.evaluate import placement
from dse.pareto import pareto_mask, pareto_sums
from dse.problem import Problem
from dse.space import Candidate, SearchSpace, at_point, channel_step, trcd_grid_ns, vdd_grid_v
from hw_models.system import DramSetting, SystemCost, system_cost
from hw_models.traffic import layer_traffic

Point = tuple[float, float] | None  # (VDD in V, tRCD in ns) of the whole device; None: no DRAM


def split_grid(space: SearchSpace) -> list[np.ndarray]:
    """Per layer, the analog channel counts the search space allows (0 only for a layer
    the analog array cannot run)."""
    table = space.table
    return [np.arange(0, int(cout) + 1, channel_step(int(cout))) if capable
            else np.array([0])
            for cout, capable in zip(table.cout, table.analog_capable)]


def dram_points(space: SearchSpace) -> list[Point]:
    """Every whole-device operating point of the grid (VDD x tRCD); [None] without DRAM."""
    if space.device is None:
        return [None]
    return [(float(v), float(t)) for v in vdd_grid_v(space) for t in trcd_grid_ns(space)]


def fixed_regime(problem: Problem) -> bool:
    """Whether every channel split puts every tensor at the same level (L1, L2, DRAM) and
    leaves the weights equally resident: true when the mappings with the most and the
    least stored weight agree (less stored weight never moves a tensor outwards)."""
    table, soc = problem.table, problem.soc
    extremes = np.array([np.zeros(table.n_layers, dtype=np.int64),
                         np.where(table.analog_capable, table.cout, 0).astype(np.int64)])
    traffic = layer_traffic(table, soc, extremes)
    return all(bool(np.array_equal(values[0], values[1]))
               for values in (traffic.level, traffic.tensor_in_dram,
                              traffic.shortcut_in_dram,
                              np.broadcast_to(traffic.weights_resident,
                                              traffic.level.shape)))


@dataclass(frozen=True)
class CostTables:
    """Per layer, per option of ``split_grid``: latency (s) and energy (J) at one point."""

    latency_s: tuple[np.ndarray, ...]
    energy_j: tuple[np.ndarray, ...]

    def key(self) -> bytes:
        """Equal for equal tables (points that share a solve)."""
        return b"".join(np.concatenate(column).tobytes()
                        for column in (self.latency_s, self.energy_j))


def cost_tables(problem: Problem, point: Point, grid: Sequence[np.ndarray]) -> CostTables:
    """Each layer's latency and energy at each of its options, the others all-digital, at
    ``point`` (one batch of the cost model). Exact for every mapping when ``fixed_regime``."""
    n_layers = problem.table.n_layers
    sizes = [len(options) for options in grid]
    mappings = np.zeros((sum(sizes), n_layers), dtype=np.int64)
    owner = np.repeat(np.arange(n_layers), sizes)
    mappings[np.arange(len(owner)), owner] = np.concatenate(grid)
    batch = _batched_cost(problem, at_point(problem.space, mappings[0], point), mappings)
    latency = batch.latency_s[np.arange(len(owner)), owner]
    energy = (batch.compute.energy_j + batch.dram_energy_j)[np.arange(len(owner)), owner]
    bounds = np.cumsum([0] + sizes)
    return CostTables(tuple(latency[a:b] for a, b in zip(bounds[:-1], bounds[1:])),
                      tuple(energy[a:b] for a, b in zip(bounds[:-1], bounds[1:])))


def _batched_cost(problem: Problem, template: Candidate, mappings: np.ndarray) -> SystemCost:
    """The system cost of ``mappings`` (n, n_layers) at ``template``'s DRAM point."""
    device = problem.device
    dram = None if device is None else DramSetting(device, problem.vendor,
                                                   placement(template, device),
                                                   problem.ber_quantile)
    return system_cost(problem.table, problem.soc, mappings, dram, overlap=problem.overlap)


@dataclass(frozen=True)
class Solved:
    """The exact front of the model over the space: per point, its DRAM point, channel
    split, predicted drop (pp), latency (s) and energy (J) from the tables."""

    points: list[Point]
    n_analog: np.ndarray      # (m, n_layers)
    drop_pp: np.ndarray       # (m,)
    latency_s: np.ndarray     # (m,)
    energy_j: np.ndarray      # (m,)


def solve(problem: Problem, split_drop_pp: Sequence[np.ndarray],
          dram_drop_pp: Callable[[Point], float]) -> Solved:
    """The exact Pareto front of (predicted drop, latency, energy) over every channel split
    of ``split_grid`` and every DRAM point of ``dram_points``, the drop predicted as
    ``sum(split_drop_pp[l][option]) + dram_drop_pp(point)``.

    Raises:
        ValueError: the split moves tensors between memory levels (not ``fixed_regime``),
            or the DRAM has partitions (each tensor's placement is a choice of its own:
            not solved yet).
    """
    if problem.space.partitions > 1:
        raise ValueError("the exact solve covers the whole-device DRAM point only "
                         "(--partitions 1)")
    if not fixed_regime(problem):
        raise ValueError("the channel split moves tensors between memory levels here: "
                         "the per-layer cost tables do not add up")
    grid = split_grid(problem.space)
    if len(split_drop_pp) != len(grid) or any(len(d) != len(g)
                                                for d, g in zip(split_drop_pp, grid)):
        raise ValueError("split_drop_pp needs one value per option of split_grid")
    solved: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    found_points: list[Point] = []
    rows, splits = [], []
    for point in dram_points(problem.space):
        tables = cost_tables(problem, point, grid)
        key = tables.key()
        if key not in solved:
            stages = [np.column_stack([drop, latency, energy]) for drop, latency, energy
                      in zip(split_drop_pp, tables.latency_s, tables.energy_j)]
            solved[key] = pareto_sums(stages)
        sums, choices = solved[key]
        offset = dram_drop_pp(point)
        found_points.extend([point] * len(sums))
        rows.append(sums + np.array([offset, 0.0, 0.0]))
        splits.append(np.column_stack([g[c] for g, c in zip(grid, choices.T)]))
    every = np.concatenate(rows)
    keep = pareto_mask(every, ["minimize"] * 3)
    return Solved([p for p, k in zip(found_points, keep) if k], np.concatenate(splits)[keep],
                  every[keep, 0], every[keep, 1], every[keep, 2])
