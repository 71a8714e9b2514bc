"""``--engine frontier``: dse's own engine. Measure what each layer's split and the DRAM
cost in accuracy, add them up, solve the exact front of that model, probe a spread of it,
correct the model, solve again.

1. **Characterise.** Each searchable layer alone on the analog array at a few fractions
   of its channels (``--frontier-fractions``), the others digital, DRAM nominal; and, when
   some tensor lives in DRAM, the all-digital split at a few DRAM points of distinct bit
   error rates (spread evenly in log BER over the grid's: ``dram_probe_bers``). Each is a
   trial (``frontier.role`` ``layer`` / ``dram``), probed a batch at a time, shared by the
   study's workers.
2. **Model.** The predicted drop of a split at a point is the sum of each layer's drop at
   its analog count (linear between the measured counts and 0 at none) and the DRAM
   point's (linear in log BER between the measured ones, 0 at BER 0); a measured gain
   counts as 0 (``fit_model``). A verified point's 95 % prediction interval is
   split-conformal from the residuals of the points verified before it, or, while there
   are fewer than 19, the characterised terms' own intervals (``_interval``).
3. **Solve** (below): the exact front of (predicted drop, latency, energy).
4. **Verify and correct.** ``--frontier-verify`` points spread over the predicted front's
   part within the accuracy limit plus ``VERIFY_MARGIN_PP`` are probed (``verify``
   trials, each with its predicted drop); where none of it is left to probe, the margin
   doubles, up to ``RETRAIN_REACH_PP`` (``verify_margins_pp``: the additive model
   overstates the drop of splits that share the analog array across layers, so points it
   puts just beyond the limit can lie within it). The model then gets, per layer, a term
   in its analog fraction fitted to the residuals of every verified point (ridge
   regression), and is solved again; until the study's budget is spent or nothing within
   the widest margin is left to probe.
5. **Retrain** (``--frontier-retrain``, EDEN's first step on the frontier's own picks):
   the probe's 20-step fine-tune leaves analog-heavy splits some pp below what they reach
   trained longer (on digits, the 92 %-analog split: 95.4 % probed, 98.1 % after EDEN's
   5 epochs), so the predicted front beyond the accuracy limit holds cheaper points that
   training could bring within it. Up to ``--frontier-retrain`` of them, one at a time,
   are each trained on for ``--frontier-retrain-epochs`` epochs (EDEN's retraining,
   ``networks.eden_retrain``, with the DRAM errors of the point the solve chose for them)
   and probed from the retrained weights, which the trial names (``delivered_weights``:
   ``dse confirm`` measures it from them too). Which (``next_retrain``): of the predicted
   front's points and every probed one (a split the model overstates can be off its front
   and measured within reach), the cheapest (latency and energy, each relative to the
   front's largest) whose drop (measured, or where not probed, predicted) lies beyond the
   limit by at most the reach, and cheaper than every retrained split that landed within
   the limit (none where nothing is: the rounds get the budget back). The reach starts
   at ``RETRAIN_REACH_PP`` and moves with what retraining did (``retrain_reach_pp``):
   doubled while every retrained split landed within the limit, else halfway between the
   furthest that did and the nearest that did not; so how much drop retraining takes
   back is found from the probe's validation measurements, not chosen. The budget keeps
   room for them from the start; their weights are kept and indexed as EDEN's
   (``dse.engines.eden.RetrainCache``), so a rerun or another worker reads them back.

The study's front is built from measured accuracies only, as for every engine: the model
only chooses what is probed.

The solve, exact: at one DRAM operating point, a layer's latency and energy depend on
its own channel split only, as long as the split does not move any tensor between L1, L2
and DRAM. What moves tensors is the total of the stored weights (analog channels take 2-bit
codes, digital ones 8 bits): it decides whether the weights stay resident in L2 and how much
of L2 is left for activations (``hw_models.traffic``). Weights are resident when their
total fits, so when the all-digital mapping (the most stored weight) and the all-analog one
(the least) agree on residency, every mapping does; and then less stored weight leaves as
much L2 or more (all of it when streaming), never moving a tensor outwards. So when the two
extremes put every tensor at the same level, every mapping does (``fixed_regime``): then
the network's latency and energy are sums over layers of per-layer tables
(``cost_tables``), and the exact front of the predicted drop, latency and energy over all
channel splits at that point is ``dse.pareto.pareto_sums`` of the per-layer tables
(``solve``). Every DRAM point of the grid is solved; points whose tables are the same
(tRCD does nothing to a network with no tensor in DRAM) share one solve.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import optuna

from dse.accuracy.abilities import StartsFrom, measure_many
from dse.engines import Budget, EngineJob, EngineSpec, register, setting
from dse.engines.eden import (
    DEFAULT_RETRAIN_EPOCHS,
    RetrainCache,
    Retrainer,
    check_retrain_epochs,
    data_in_dram,
    split_stage,
    with_errors,
)
from dse.engines.units import Outcome, Unit, UnitFailed, run_units
from dse.evaluate import evaluate, finish_evaluation, placement, plan_evaluation
from dse.metrics import ACCURACY_CHANGE
from dse.pareto import pareto_mask, pareto_sums
from dse.problem import Problem
from dse.results.claims import EDEN_DROP_PP
from dse.results.ledger import DELIVERED_WEIGHTS_ATTR
from dse.space import (
    Candidate,
    SearchSpace,
    at_point,
    channel_step,
    encode,
    trcd_grid_ns,
    vdd_grid_v,
)
from hw_models.errors import ConfigError
from hw_models.system import DramSetting, SystemCost, system_cost
from hw_models.traffic import layer_traffic

FRONTIER_ATTR = "frontier"     # per trial: its role, layer or point, round, predicted drop
DEFAULT_FRACTIONS = (0.5, 1.0)  # of a layer's channels on the analog array, characterised
DRAM_POINTS = 4                 # DRAM points characterised (distinct BERs, log-spaced)
DEFAULT_VERIFY = 8              # points of the predicted front probed per round
VERIFY_MARGIN_PP = 1.0          # verified up to the accuracy limit plus this (pp) first;
# doubled (up to RETRAIN_REACH_PP) in a round where nothing within it is left to probe: the
# additive model overstates joint drops (on CIFAR-10, 1.5 pp predicted for 42 %-analog
# splits that measured +0.5), so budget left is spent on the points it puts just beyond
# the limit
RIDGE_PP = 1.0                  # the correction's ridge weight (pp per unit of fraction)
SOLVED_OBJECTIVES = ("accuracy", "latency", "energy")  # what the solve trades off
PREDICTION_LEVEL = 0.95         # of a verified point's prediction interval
CONFORMAL_WINDOW = 40           # its residuals: the last this many verified points' (the
# model improves with the rounds, so older residuals overstate its error: on 577 points of
# five streamed digits studies, every earlier residual gave 99.1 % coverage, 3.4 pp wide;
# the last 40, 96.7 % [94.9, 97.9], 1.9 pp; bench/frontier_model.py --studies)
DEFAULT_RETRAIN = 2             # splits retrained after the rounds (EDEN retrains two
# baselines in the streamed head-to-head; docs/benchmarks.md)
MAX_RETRAIN = 100               # a bound on --frontier-retrain that catches a typo, not a
# measured limit (each retraining is 5 epochs of training)
RETRAIN_REACH_PP = 5.0          # chosen: the first split retrained is the cheapest whose drop
# (measured, else predicted) is beyond the accuracy limit by at most this much; later ones
# move the reach by what retraining did (retrain_reach_pp). (EDEN's 5 epochs took the
# 92 %-analog split on digits from 2.7 pp below the all-digital network to level with it;
# on CIFAR-10 the same split is 5.8-8.4 pp down by the probe and retrained to 0.2 pp where
# it was within reach: docs/benchmarks.md)

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
    least stored weight agree (module docstring: within one residency, less stored weight
    never moves a tensor outwards)."""
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
          dram_drop_pp: Callable[[Point], float],
          bers: dict[Point, float] | None = None) -> Solved:
    """The exact Pareto front of (predicted drop, latency, energy) over every channel split
    of ``split_grid`` and every DRAM point of ``dram_points``, the drop predicted as
    ``sum(split_drop_pp[l][option]) + dram_drop_pp(point)``.

    One candidate per distinct (split, objectives): the same split at DRAM points that cost
    the same and are predicted the same (every tRCD where no tensor is in DRAM) is one
    choice, kept at the point of the lowest BER (``bers``, else the grid's first): probing
    each would spend the budget on one measurement (on digits with the weights resident, 150
    of a 200-trial study's points were such repeats).

    Raises:
        ValueError: the split moves tensors between memory levels (not ``fixed_regime``),
            or the DRAM has partitions (each tensor's placement is a choice of its own:
            not solved yet).
    """
    reason = unsolvable(problem)
    if reason is not None:
        raise ValueError(reason)
    grid = split_grid(problem.space)
    if len(split_drop_pp) != len(grid) or any(len(d) != len(g)
                                                for d, g in zip(split_drop_pp, grid)):
        raise ValueError("split_drop_pp needs one value per option of split_grid")
    solved: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    found_points: list[Point] = []
    rows, splits = [], []
    points = dram_points(problem.space)
    if bers is not None:  # the lowest BER first: the representative of equal points
        points = sorted(points, key=lambda point: bers.get(point, 0.0))
    for point in points:
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
    every_split = np.concatenate(splits)
    keep = pareto_mask(every, ["minimize"] * 3)
    _, first = np.unique(np.column_stack([every, every_split])[keep], axis=0,
                         return_index=True)
    chosen = np.flatnonzero(keep)[np.sort(first)]  # the first of equals, in point order
    return Solved([found_points[i] for i in chosen], every_split[chosen],
                  every[chosen, 0], every[chosen, 1], every[chosen, 2])


# ---- the engine --------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One candidate the engine probes: its unit, and what it records about it."""

    unit: Unit
    candidate: Candidate
    info: dict[str, Any]


def in_dram(problem: Problem) -> bool:
    """Whether any tensor of the network goes through DRAM (else every DRAM point has BER
    0 and costs no accuracy). Split-independent where ``fixed_regime`` holds."""
    if problem.device is None:
        return False
    table = problem.table
    traffic = layer_traffic(table, problem.soc, np.zeros(table.n_layers, dtype=np.int64))
    return bool(not np.all(traffic.weights_resident) or np.any(traffic.tensor_in_dram)
                or np.any(traffic.shortcut_in_dram))


def point_bers(problem: Problem) -> dict[Point, float]:
    """Each whole-device point's bit error rate (the largest any tensor sees there, the
    all-digital split)."""
    bers: dict[Point, float] = {}
    zeros = np.zeros(problem.table.n_layers, dtype=np.int64)
    for point in dram_points(problem.space):
        template = at_point(problem.space, zeros, point)
        cost = _batched_cost(problem, template, zeros[None, :])
        found = [cost.weight_ber, cost.activation_ber]
        if cost.shortcut_ber is not None:
            found.append(cost.shortcut_ber)
        bers[point] = float(max(np.max(b) for b in found))
    return bers


def characterisation(problem: Problem, fractions: Sequence[float],
                     bers: dict[Point, float]) -> list[Probe]:
    """The layer probes (each searchable layer alone at each fraction's nearest grid
    count) and the DRAM probes (the all-digital split at up to ``DRAM_POINTS`` points of
    distinct positive BERs, log-spaced), in the order a budget too small for all of them
    should take them: every layer at its largest count first (the model interpolates a
    layer's term linearly from 0 to it), the DRAM next, then the layers' other counts."""
    grid = split_grid(problem.space)
    names = problem.table.name
    zeros = np.zeros(problem.table.n_layers, dtype=np.int64)
    by_rank: list[list[Probe]] = []  # [k]: each layer's k-th largest count
    for layer, options in enumerate(grid):
        if len(options) < 2:
            continue
        cout = int(problem.table.cout[layer])
        counts = sorted({int(options[1:][np.argmin(np.abs(options[1:] - f * cout))])
                         for f in fractions}, reverse=True)
        for rank, n in enumerate(counts):
            n_analog = zeros.copy()
            n_analog[layer] = n
            if rank == len(by_rank):
                by_rank.append([])
            by_rank[rank].append(Probe(
                Unit(f"layer {names[layer]}={n}", f"characterised {names[layer]} at {n} "
                     "analog"), at_point(problem.space, n_analog, None),
                {"role": "layer", "layer": str(names[layer]), "n_analog": n}))
    dram = []
    positive = sorted({ber for ber in bers.values() if ber > 0})
    if positive and in_dram(problem):
        for ber in dram_probe_bers(positive, DRAM_POINTS):
            point = next(p for p, b in bers.items() if b == ber)
            assert point is not None
            dram.append(Probe(Unit(f"dram {point[0]:g} V/{point[1]:g} ns",
                                   f"characterised DRAM at {point[0]:g} V"),
                              at_point(problem.space, zeros, point),
                              {"role": "dram", "vdd_v": point[0], "trcd_ns": point[1],
                               "ber": ber}))
    first = by_rank[0] if by_rank else []
    return first + dram + [probe for rank in by_rank[1:] for probe in rank]


def dram_probe_bers(positive: Sequence[float], count: int) -> list[float]:
    """Up to ``count`` of the grid's distinct positive BERs, spread evenly in log BER: for
    each of ``count`` targets from the smallest to the largest (log-spaced), the nearest one
    not taken yet. Spread by value, not by rank: a grid whose BERs jump from 1e-8 to 0.2
    (LPDDR4 at tRCD below its floor: 18 of its 20 distinct BERs above 0.2) gets probes on
    both sides of the jump, where the rank's spread put three of four beyond it and none at
    the largest BER that still works."""
    distinct = sorted(set(positive))
    values = np.log10(np.asarray(distinct, dtype=float))
    chosen: list[int] = []
    for target in np.linspace(values[0], values[-1], min(count, len(values))):
        free = [i for i in range(len(values)) if i not in chosen]
        chosen.append(min(free, key=lambda i: (abs(values[i] - target), i)))
    return [distinct[i] for i in sorted(chosen)]


def measured_drop_pp(metrics: dict[str, Any], baseline_accuracy: float) -> float:
    """The paired drop (pp, positive = worse) of a probed trial's metrics."""
    change = metrics.get(ACCURACY_CHANGE[0])
    if change is not None and math.isfinite(change):
        return -float(change)
    return (baseline_accuracy - float(metrics["accuracy"])) * 100


@dataclass(frozen=True)
class Model:
    """The additive model: per layer and grid option its drop (pp), and the DRAM term; per
    layer and option, too, the half-width of the 95 % interval of its characterised term
    (pp, interpolated as the term is; 0 where nothing was measured)."""

    split_drop_pp: list[np.ndarray]
    dram_bers: np.ndarray      # measured BERs, ascending
    dram_drops_pp: np.ndarray  # their drops (pp)
    bers: dict[Point, float]
    split_half_pp: list[np.ndarray] | None = None
    dram_halves_pp: np.ndarray | None = None

    def _dram(self, values: np.ndarray | None, point: Point) -> float:
        ber = self.bers.get(point, 0.0)
        if values is None or ber <= 0 or len(self.dram_bers) == 0:
            return 0.0
        if ber < self.dram_bers[0]:  # linear from (0, 0) up to the first measured
            return float(values[0] * ber / self.dram_bers[0])
        return float(np.interp(np.log10(ber), np.log10(self.dram_bers), values))

    def dram_drop_pp(self, point: Point) -> float:
        return self._dram(self.dram_drops_pp, point)

    def predicted_pp(self, problem: Problem, n_analog: Sequence[int], point: Point) -> float:
        grid = split_grid(problem.space)
        total = 0.0
        for layer, n in enumerate(n_analog):
            total += float(self.split_drop_pp[layer][int(np.searchsorted(grid[layer], n))])
        return total + self.dram_drop_pp(point)

    def terms_half_pp(self, problem: Problem, n_analog: Sequence[int], point: Point) -> float:
        """The half-width of the 95 % interval of the sum of the terms a prediction adds
        (their own intervals, independent probes: in quadrature). It leaves out what the
        additive model misses; ``prediction_half_pp`` has the measured version."""
        if self.split_half_pp is None:
            return math.nan
        grid = split_grid(problem.space)
        squares = sum(float(self.split_half_pp[layer][int(np.searchsorted(grid[layer], n))])
                      ** 2 for layer, n in enumerate(n_analog))
        return math.sqrt(squares + self._dram(self.dram_halves_pp, point) ** 2)


def prediction_half_pp(residuals_pp: Sequence[float], level: float = PREDICTION_LEVEL
                       ) -> float:
    """The half-width of a split-conformal prediction interval: the
    ceil((n + 1) level)-th smallest |residual| of ``residuals_pp`` (measured minus
    predicted drops of points the model had not seen when it predicted them); inf when
    there are too few (n < level / (1 - level), 19 at 95 %). Coverage is ``level`` or more
    when the new point's residual is exchangeable with these (Vovk et al. 2005)."""
    values = np.sort(np.abs(np.asarray(residuals_pp, dtype=float)))
    values = values[np.isfinite(values)]
    rank = math.ceil((len(values) + 1) * level)
    return float(values[rank - 1]) if rank <= len(values) else math.inf


def fit_model(problem: Problem, records: Sequence[tuple[dict[str, Any], Candidate, float]],
              bers: dict[Point, float], clip: bool = True) -> tuple[Model, int]:
    """The model from the probed trials (each: its frontier record, candidate, measured
    drop): the characterisation's terms, then the per-layer correction fitted to the
    verified points' residuals; and how many verified points it was fitted to.

    With ``clip``, a characterised term below 0 (the split measured as better than the
    baseline: the probe's noise, sd about 0.9 pp on digits) counts as 0: summed over the
    layers, such gains are what the solve seeks out, and the points it picked then fell
    short of their prediction by 2.0-3.0 pp on average (``bench/frontier_model.py``; 1.0 pp
    clipped). A record's ``half_pp`` (its measured interval's half-width) makes the term's
    interval."""
    grid = split_grid(problem.space)
    names = list(problem.table.name)
    measured: dict[int, dict[int, tuple[float, float]]] = {}
    dram: dict[float, tuple[float, float]] = {}
    verified = []

    def term(drop: float, info: dict[str, Any]) -> tuple[float, float]:
        return (max(drop, 0.0) if clip else drop), float(info.get("half_pp", math.nan))

    for info, candidate, drop in records:
        if info.get("role") == "layer":
            layer = names.index(info["layer"])
            measured.setdefault(layer, {})[int(info["n_analog"])] = term(drop, info)
        elif info.get("role") == "dram":
            dram[float(info["ber"])] = term(drop, info)
        elif info.get("role") == "verify":
            verified.append((candidate, drop))
    base, halves = [], []
    for layer, options in enumerate(grid):
        known = measured.get(layer, {})
        counts = np.array([0] + sorted(known), dtype=float)
        drops = np.array([0.0] + [known[n][0] for n in sorted(known)])
        half = np.array([0.0] + [known[n][1] for n in sorted(known)])
        base.append(np.interp(options.astype(float), counts, drops))
        halves.append(np.interp(options.astype(float), counts, half))
    bers_sorted = np.array(sorted(dram))
    model = Model(base, bers_sorted, np.array([dram[b][0] for b in bers_sorted]), bers,
                  halves, np.array([dram[b][1] for b in bers_sorted]))
    if not verified:
        return model, 0
    cout = problem.table.cout.astype(float)
    features = np.array([np.asarray(c.n_analog, dtype=float) / cout for c, _ in verified])
    residuals = np.array([drop - model.predicted_pp(problem, c.n_analog, _point_of(c))
                          for c, drop in verified])
    lhs = features.T @ features + RIDGE_PP * np.eye(features.shape[1])
    correction = np.linalg.solve(lhs, features.T @ residuals)
    corrected = [table + correction[layer] * options / cout[layer]
                 for layer, (table, options) in enumerate(zip(base, grid))]
    return dataclasses.replace(model, split_drop_pp=corrected), len(verified)


def _point_of(candidate: Candidate) -> Point:
    if candidate.vdd_v is None or candidate.trcd_ns is None:
        return None
    return (float(candidate.vdd_v[0]), float(candidate.trcd_ns[0]))


def params_key(candidate: Candidate, space: SearchSpace) -> str:
    """A short name of a candidate's trial parameters."""
    text = json.dumps(encode(candidate, space), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def spread_picks(problem: Problem, solved: Solved, count: int, probed: set[str],
                 limit_pp: float | None, margin_pp: float = VERIFY_MARGIN_PP
                 ) -> list[tuple[Candidate, float]]:
    """Up to ``count`` points of the predicted front not yet probed, within the accuracy
    limit plus ``margin_pp``, evenly spread in latency; each with its predicted drop."""
    within = (np.ones(len(solved.drop_pp), dtype=bool) if limit_pp is None
              else solved.drop_pp <= limit_pp + margin_pp)
    order = [i for i in np.argsort(solved.latency_s, kind="stable") if within[i]]
    fresh = []
    for i in order:
        candidate = at_point(problem.space, solved.n_analog[i], solved.points[i])
        if params_key(candidate, problem.space) not in probed:
            fresh.append((candidate, float(solved.drop_pp[i])))
    if len(fresh) <= count:
        return fresh
    chosen = np.unique(np.round(np.linspace(0, len(fresh) - 1, count)).astype(int))
    return [fresh[i] for i in chosen]


def verify_margins_pp() -> list[float]:
    """The margins a round tries in turn, the first with anything new to probe taken:
    ``VERIFY_MARGIN_PP`` doubled up to ``RETRAIN_REACH_PP``."""
    margins = [VERIFY_MARGIN_PP]
    while margins[-1] < RETRAIN_REACH_PP:
        margins.append(min(2 * margins[-1], RETRAIN_REACH_PP))
    return margins


def round_picks(problem: Problem, solved: Solved, count: int, probed: set[str],
                limit_pp: float | None) -> tuple[list[tuple[Candidate, float]], float]:
    """A round's picks (``spread_picks``) at the first of ``verify_margins_pp`` that has
    any point not yet probed, and that margin (pp; inf without an accuracy limit)."""
    margins = verify_margins_pp() if limit_pp is not None else [math.inf]
    for margin in margins:
        picks = spread_picks(problem, solved, count, probed, limit_pp, margin)
        if picks:
            return picks, margin
    return [], margins[-1]


@dataclass
class FrontierEngine:
    """The engine (module docstring). ``retrainer``: None retrains with the built-in
    probe's checkpoint and data (``dse.engines.eden.probe_retrainer``)."""

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    verify: int = DEFAULT_VERIFY
    retrain: int = DEFAULT_RETRAIN
    retrain_epochs: int = DEFAULT_RETRAIN_EPOCHS
    retrainer: Retrainer | None = None
    name: str = "frontier"

    def __post_init__(self) -> None:
        check_retrain_epochs(self.retrain_epochs, "--frontier-retrain-epochs")

    def run(self, job: EngineJob) -> None:
        problem = job.problem
        check_problem(None, problem)
        accuracy = job.accuracy if problem.needs_accuracy else None
        retrainer = (self._retrainer(job) if accuracy is not None and self.retrain > 0
                     else None)
        reserve = self.retrain if retrainer is not None else 0
        bers = point_bers(problem)
        batch = _batch_of(job)
        study = job.ledger.study
        ran = 0

        def measure_many_units(probes: dict[str, Probe]) -> Callable[[Sequence[Unit]], list]:
            def measured(units: Sequence[Unit]) -> list[Outcome | UnitFailed]:
                chosen = [probes[unit.key] for unit in units]
                planned = [plan_evaluation(p.candidate, problem) for p in chosen]
                wanted = [p for p in planned if p.probed]
                results = []
                if wanted and accuracy is not None:
                    results = measure_many(accuracy.estimator,
                                           [p.probe_candidate() for p in wanted])
                by_plan = dict(zip(map(id, wanted), results))
                return [Outcome(p.candidate, finish_evaluation(plan, problem, accuracy,
                                                               by_plan.get(id(plan))),
                                attrs={FRONTIER_ATTR: p.info}, columns=_columns(p.info))
                        for p, plan in zip(chosen, planned)]
            return measured

        def run_probes(probes: list[Probe], on: EngineJob) -> bool:
            """Each probe once (shared with the study's other workers); False when the
            budget of ``on`` is spent."""
            nonlocal ran
            by_key = {p.unit.key: p for p in probes}
            own = on if on.budget.per_worker_trials is None else _with_budget(on, ran)
            if own is None:
                return False
            ran += run_units(own, self.name, [p.unit for p in probes],
                             lambda unit: measure_many_units(by_key)([unit])[0],
                             measure_many=measure_many_units(by_key), batch=batch)
            return not _spent(on, ran)

        characterised = (characterisation(problem, self.fractions, bers)
                         if accuracy is not None else [])
        limit = problem.limits.max_accuracy_drop_pp if accuracy is not None else None
        rounds = [0]

        def explore(on: EngineJob) -> None:
            """Characterise what is not yet, then rounds of verified points until the
            budget of ``on`` is spent or nothing new is left to probe."""
            done = _probed_keys(study, problem)  # a baseline may be one of them already
            todo = [p for p in characterised
                    if params_key(p.candidate, problem.space) not in done]
            going = not todo or run_probes(todo, on)
            while going:
                rounds[0] += 1
                records, model, fitted, solved = _solved(problem, study, accuracy,
                                                         characterised, bers)
                probed = {params_key(c, problem.space) for _, c, _ in records}
                probed |= _probed_keys(study, problem)
                picks, margin = round_picks(problem, solved, self.verify, probed, limit)
                if not picks:
                    return
                going = run_probes([Probe(Unit(f"verify {params_key(c, problem.space)}",
                                               f"round {rounds[0]}: verified"), c,
                                          {"role": "verify", "round": rounds[0],
                                           "predicted_drop_pp": drop, "fitted_to": fitted,
                                           **({"margin_pp": margin}
                                              if math.isfinite(margin) else {}),
                                           **_interval(model, problem, c, drop, records)})
                                    for c, drop in picks], on)

        explore(_reserving(job, reserve))  # room kept for the retraining
        if retrainer is None or _spent(job, ran):
            return
        tried: set[str] = set()
        tried_alike: set[tuple[Any, ...]] = set()
        for _ in range(self.retrain):  # one at a time: each moves the reach of the next
            done = _retrained(study, problem, accuracy)
            if len(done) >= self.retrain or _spent(job, ran):
                break
            solved = _solved(problem, study, accuracy, characterised, bers)[3]
            pick = next_retrain(problem, solved, EDEN_DROP_PP if limit is None else limit,
                                retrained=done, skip=tried,
                                probed=_probed(study, problem, accuracy), bers=bers,
                                skip_alike=tried_alike)
            if pick is None:
                break
            tried.add(params_key(pick[0], problem.space))
            tried_alike.add(accuracy_key(pick[0], bers))
            ran += self._retrain_stage(job, retrainer, [pick], bers, ran)
        if not _spent(job, ran):
            explore(job)  # what the retraining left of the budget

    def _retrainer(self, job: EngineJob) -> Retrainer:
        if self.retrainer is not None:
            return self.retrainer
        from dse.accuracy.probe_estimator import ProbeEstimator
        from dse.engines.eden import probe_retrainer

        assert job.accuracy is not None
        if not isinstance(job.accuracy.estimator, ProbeEstimator):
            raise ConfigError("--engine frontier retrains its picks on the probe's data "
                              "(--frontier-retrain): with --accuracy-estimator pass "
                              "--frontier-retrain 0")
        return probe_retrainer(job)

    def _retrain_stage(self, job: EngineJob, retrainer: Retrainer,
                       picks: list[tuple[Candidate, float]], bers: dict[Point, float],
                       ran: int) -> int:
        """Each of ``picks`` retrained (module docstring, step 5) and probed from the
        retrained weights: one trial each; how many trials this worker ran."""
        problem = job.problem
        assert job.accuracy is not None
        estimator = job.accuracy.estimator
        assert isinstance(estimator, StartsFrom)
        by_key = {f"retrain {params_key(c, problem.space)} {self.retrain_epochs} ep": (c, d)
                  for c, d in picks}

        def measure(unit: Unit) -> Outcome:
            candidate, drop = by_key[unit.key]
            assert job.accuracy is not None
            n_analog = tuple(int(n) for n in candidate.n_analog)
            data = data_in_dram(problem, n_analog)
            ber = bers.get(_point_of(candidate), 0.0)  # the errors where it will run
            request = with_errors(problem, n_analog, candidate.analog_channels,
                                  {d.name: ber for d in data}, data)
            progress = split_stage(job, unit.key.rsplit(" ", 2)[0],  # "retrain <params>"
                                   "frontier retraining", "step")
            weights, record = RetrainCache(estimator).retrained(
                retrainer, request, self.retrain_epochs, progress=progress)
            accuracy = dataclasses.replace(job.accuracy,
                                           estimator=estimator.starting_from(weights))
            info = {"role": "retrain", "drop_before_pp": drop,
                    "retrain_epochs": self.retrain_epochs, "retrain_ber": ber,
                    "samples": 0 if record.get("cached") else int(record["samples"])}
            return Outcome(candidate, evaluate(candidate, problem, accuracy),
                           attrs={FRONTIER_ATTR: info, DELIVERED_WEIGHTS_ATTR: record},
                           columns=_columns(info))

        own = job if job.budget.per_worker_trials is None else _with_budget(job, ran)
        if own is None or not by_key:
            return 0
        return run_units(own, self.name, [Unit(key, f"retrained {self.retrain_epochs} ep")
                                          for key in by_key], measure)


def _solved(problem: Problem, study: optuna.Study, accuracy: Any,
            characterised: Sequence[Probe], bers: dict[Point, float]
            ) -> tuple[list[tuple[dict[str, Any], Candidate, float]], Model, int, Solved]:
    """The records so far, the model fitted to them (and to how many verified points),
    and the model's solved front."""
    records = _records(study, problem, accuracy, characterised)
    if accuracy is not None:
        model, fitted = fit_model(problem, records, bers)
    else:
        model, fitted = Model([np.zeros(len(g)) for g in split_grid(problem.space)],
                              np.zeros(0), np.zeros(0), bers), 0
    return records, model, fitted, solve(problem, model.split_drop_pp, model.dram_drop_pp,
                                          bers)


def _reserving(job: EngineJob, reserve: int) -> EngineJob:
    """``job`` with ``reserve`` trials of its budget kept back (at least one left)."""
    if reserve <= 0:
        return job
    budget = job.budget
    per_worker = (None if budget.per_worker_trials is None
                  else max(1, budget.per_worker_trials - reserve))
    return dataclasses.replace(job, budget=Budget(max(1, budget.total_trials - reserve),
                                                  per_worker))


@dataclass(frozen=True)
class Retrained:
    """A split the retraining stage trained on: its ``params_key``, its drop when picked
    and after the retraining (pp; NaN where not measured), its latency (s) and energy (J),
    and the candidate (None where not known)."""

    key: str
    drop_before_pp: float
    drop_after_pp: float
    latency_s: float
    energy_j: float
    candidate: Candidate | None = None

    def recovered(self, limit_pp: float) -> bool:
        return self.drop_after_pp <= limit_pp  # False for NaN


def retrain_reach_pp(retrained: Sequence[Retrained], limit_pp: float) -> float:
    """How far beyond the accuracy limit (pp) the next split to retrain may lie, by what
    retraining did so far: ``RETRAIN_REACH_PP`` before any; while every retrained split
    landed within the limit, twice the furthest such split's excess (at least
    ``RETRAIN_REACH_PP``); once one did not, halfway between the furthest that did (0 if
    none) and the nearest that did not: a bisection for how much drop retraining takes
    back, each step measured by the probe on the validation split."""
    recovered = [r.drop_before_pp - limit_pp for r in retrained if r.recovered(limit_pp)]
    failed = [r.drop_before_pp - limit_pp for r in retrained if not r.recovered(limit_pp)]
    furthest = max(recovered, default=0.0)
    if not failed:
        return max(RETRAIN_REACH_PP, 2 * furthest)
    return (furthest + min(failed)) / 2


@dataclass(frozen=True)
class Probed:
    """A candidate probed from the study's own checkpoint (not from weights trained for it):
    its measured drop (pp; the mean where probed more than once), latency (s) and energy
    (J)."""

    candidate: Candidate
    drop_pp: float
    latency_s: float
    energy_j: float


def next_retrain(problem: Problem, solved: Solved, limit_pp: float,
                 retrained: Sequence[Retrained] = (), skip: set[str] | None = None,
                 probed: Sequence[Probed] = (), bers: dict[Point, float] | None = None,
                 skip_alike: set[tuple[Any, ...]] | None = None
                 ) -> tuple[Candidate, float] | None:
    """The next split to retrain, with its drop, or None: of the points of the predicted front and
    the ``probed`` ones, those beyond ``limit_pp`` and within ``retrain_reach_pp`` of it,
    not retrained yet (nor in ``skip``), cheaper (``relative_cost``) than every retrained
    split that landed within the limit, the cheapest (none where nothing cheaper than a
    landed split is in reach: a dearer one adds next to nothing, and the rounds get the
    budget back). A point's drop is its measured one where it was probed (``probed``, by
    ``accuracy_key``), else the predicted: the model's correction is fitted to every
    verified point at once, so a probed point the probe found beyond the limit (on digits,
    the 92 %-analog split: 3.3 pp measured) can be predicted within it, and it is just what
    retraining is for. With ``bers`` (each DRAM point's), a split probed at one point
    stands in for it at every point of the same BER (``accuracy_key``: where no tensor is
    in DRAM, every point), whose cost may differ (and a split retrained, or in
    ``skip_alike``, is not picked again at such a point): the solve keeps a split at its
    cheapest point, where the baselines, probed at nominal DRAM and their safe point, are
    not (on CIFAR-10 the 92 %-analog split, 3.4 pp measured at nominal, stood on the front
    at a lower VDD with its prediction, 2.1 pp). A probed point off the predicted front
    counts as well, the measurement being the better evidence where the model overstates a
    split enough to leave it off."""
    alike: dict[tuple[Any, ...], list[float]] = {}
    for point in probed:
        alike.setdefault(accuracy_key(point.candidate, bers), []).append(point.drop_pp)
    skip = (skip or set()) | {r.key for r in retrained}
    skip_alike = (skip_alike or set()) | {accuracy_key(r.candidate, bers) for r in retrained
                                          if r.candidate is not None}
    candidates = [at_point(problem.space, n_analog, point)
                  for n_analog, point in zip(solved.n_analog, solved.points)]
    keys = [params_key(c, problem.space) for c in candidates]

    def drop_of(candidate: Candidate, predicted: float) -> float:
        found = alike.get(accuracy_key(candidate, bers))
        return float(np.mean(found)) if found else predicted

    drops = [drop_of(c, float(predicted)) for c, predicted in zip(candidates, solved.drop_pp)]
    latency, energy = list(solved.latency_s), list(solved.energy_j)
    on_front = set(keys)
    for point in probed:
        key = params_key(point.candidate, problem.space)
        if key in on_front or not (math.isfinite(point.latency_s)
                                   and math.isfinite(point.energy_j)):
            continue
        on_front.add(key)
        candidates.append(point.candidate)
        keys.append(key)
        drops.append(drop_of(point.candidate, point.drop_pp))
        latency.append(point.latency_s)
        energy.append(point.energy_j)
    drop = np.array(drops, dtype=float)
    reach = retrain_reach_pp(retrained, limit_pp)
    within = ((drop > limit_pp) & (drop <= limit_pp + reach)
              & np.array([key not in skip and accuracy_key(c, bers) not in skip_alike
                          for c, key in zip(candidates, keys)], dtype=bool))
    cost = relative_cost(solved, latency, energy)
    cheapest_recovered = min((relative_cost(solved, r.latency_s, r.energy_j)
                              for r in retrained if r.recovered(limit_pp)), default=math.inf)
    pool = np.flatnonzero(within & (cost < cheapest_recovered))
    if not len(pool):
        return None
    best = int(pool[int(np.argmin(cost[pool]))])  # the first of equals
    return candidates[best], float(drop[best])


def accuracy_key(candidate: Candidate, bers: dict[Point, float] | None
                 ) -> tuple[Any, ...]:
    """What a probe's accuracy depends on: the channel split and, with ``bers``, the BER of
    the candidate's DRAM point (every tensor in DRAM sees it: whole-device points, the
    placement fixed by ``fixed_regime``), else the point itself."""
    point = _point_of(candidate)
    return (tuple(int(n) for n in candidate.n_analog),
            point if bers is None else float(bers.get(point, 0.0)))


def relative_cost(solved: Solved, latency_s: Any = None, energy_j: Any = None
                  ) -> np.ndarray:
    """Latency and energy, each over its largest on the front, added: the front's own
    points' (the order in which the retraining stage takes them, cheapest first), or
    ``latency_s`` and ``energy_j``'s where given. Latency alone misorders where it barely
    moves (weights streamed: the 92 %-analog split costs the least energy of the front by
    far at the same latency, and latency put others first)."""
    latency = solved.latency_s if latency_s is None else latency_s
    energy = solved.energy_j if energy_j is None else energy_j
    return np.asarray(np.asarray(latency, dtype=float)
                      / max(float(np.max(solved.latency_s, initial=0.0)), 1e-30)
                      + np.asarray(energy, dtype=float)
                      / max(float(np.max(solved.energy_j, initial=0.0)), 1e-30))


def _retrained(study: optuna.Study, problem: Problem, accuracy: Any) -> list[Retrained]:
    """The splits the retraining stage trained on, from the study's complete trials."""
    from dse.results.ledger import METRICS_ATTR
    from dse.space import decode

    found = []
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,)):
        info = trial.user_attrs.get(FRONTIER_ATTR)
        if not isinstance(info, dict) or info.get("role") != "retrain":
            continue
        metrics = trial.user_attrs.get(METRICS_ATTR) or {}
        try:
            candidate = decode(trial.params, problem.space)
        except ConfigError:
            continue
        after = (measured_drop_pp(metrics, accuracy.baseline_accuracy)
                 if accuracy is not None and metrics.get("accuracy") is not None
                 else math.nan)
        found.append(Retrained(params_key(candidate, problem.space),
                               float(info.get("drop_before_pp", math.nan)), after,
                               float(metrics.get("latency_s", math.nan)),
                               float(metrics.get("energy_j", math.nan)), candidate))
    return found


def _probed(study: optuna.Study, problem: Problem, accuracy: Any) -> list[Probed]:
    """Each candidate probed from the study's checkpoint, once (its drops averaged): every
    complete trial's but those measured from weights an engine trained for them."""
    from dse.results.ledger import METRICS_ATTR
    from dse.space import decode

    found: dict[str, tuple[Candidate, list[float], float, float]] = {}
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,)):
        metrics = trial.user_attrs.get(METRICS_ATTR) or {}
        if DELIVERED_WEIGHTS_ATTR in trial.user_attrs or metrics.get("accuracy") is None:
            continue
        try:
            candidate = decode(trial.params, problem.space)
        except ConfigError:
            continue
        drop = measured_drop_pp(metrics, accuracy.baseline_accuracy)
        if math.isfinite(drop):
            entry = found.setdefault(params_key(candidate, problem.space), (
                candidate, [], float(metrics.get("latency_s", math.nan)),
                float(metrics.get("energy_j", math.nan))))
            entry[1].append(drop)
    return [Probed(candidate, float(np.mean(drops)), latency, energy)
            for candidate, drops, latency, energy in found.values()]


def _interval(model: Model, problem: Problem, candidate: Candidate, drop_pp: float,
              records: Sequence[tuple[dict[str, Any], Candidate, float]]) -> dict[str, Any]:
    """A verified point's 95 % prediction interval (pp) and how it was made: split-conformal
    from the residuals of the last ``CONFORMAL_WINDOW`` points verified before (each
    predicted before it was probed) once there are enough (``prediction_half_pp``), else
    the characterised terms' own intervals in quadrature, which leave out what the additive
    model misses (named ``terms`` so; ``bench/frontier_model.py`` measures both's
    coverage)."""
    residuals = [drop - float(info["predicted_drop_pp"]) for info, _, drop in records
                 if info.get("role") == "verify" and math.isfinite(drop)
                 and isinstance(info.get("predicted_drop_pp"), (int, float))]
    residuals = residuals[-CONFORMAL_WINDOW:]
    half = prediction_half_pp(residuals)
    method = f"conformal ({len(residuals)} earlier)"
    if not math.isfinite(half):
        half, method = model.terms_half_pp(problem, candidate.n_analog,
                                           _point_of(candidate)), "terms"
    if not math.isfinite(half):
        return {}
    return {"predicted_low_pp": drop_pp - half, "predicted_high_pp": drop_pp + half,
            "interval": method}


def _columns(info: dict[str, Any]) -> dict[str, float | int | str]:
    """The engine's own columns of trials.csv: each probe's role and, for a verified
    point, the drop the model predicted (pp) with its 95 % interval, and its round."""
    columns: dict[str, float | int | str] = {"frontier_role": str(info["role"])}
    if info["role"] == "retrain":
        columns.update(retrain_epochs=int(info["retrain_epochs"]))
    if info["role"] == "verify":
        columns.update(predicted_drop_pp=float(info["predicted_drop_pp"]),
                       frontier_round=int(info["round"]))
        if "predicted_low_pp" in info:
            columns.update(predicted_drop_low_pp=float(info["predicted_low_pp"]),
                           predicted_drop_high_pp=float(info["predicted_high_pp"]))
    return columns


def _batch_of(job: EngineJob) -> int:
    from dse.accuracy.abilities import Batched

    estimator = job.accuracy.estimator if job.accuracy is not None else None
    return max(1, estimator.group_size()) if isinstance(estimator, Batched) else 1


def _with_budget(job: EngineJob, ran: int) -> EngineJob | None:
    """``job`` with what is left of this worker's own budget; None when nothing is."""
    per_worker = job.budget.per_worker_trials
    assert per_worker is not None
    if ran >= per_worker:
        return None
    return dataclasses.replace(job, budget=dataclasses.replace(
        job.budget, per_worker_trials=per_worker - ran))


def _spent(job: EngineJob, ran: int) -> bool:
    if job.budget.per_worker_trials is not None:
        return ran >= job.budget.per_worker_trials
    return job.ledger.complete_count() >= job.budget.total_trials


def _records(study: optuna.Study, problem: Problem, accuracy: Any,
             characterised: Sequence[Probe] = ()
             ) -> list[tuple[dict[str, Any], Candidate, float]]:
    """Every complete trial this engine probed, and every other one that is a point of the
    characterisation (a baseline can be): its record, candidate and measured drop."""
    from dse.results.ledger import METRICS_ATTR
    from dse.space import decode

    wanted = {params_key(p.candidate, problem.space): p.info for p in characterised}
    found = []
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,)):
        info = trial.user_attrs.get(FRONTIER_ATTR)
        metrics = trial.user_attrs.get(METRICS_ATTR) or {}
        if not isinstance(info, dict):
            try:
                info = wanted.get(params_key(decode(trial.params, problem.space),
                                             problem.space))
            except ConfigError:
                info = None
        if not isinstance(info, dict):
            continue
        drop = math.nan
        if accuracy is not None and metrics.get("accuracy") is not None:
            drop = measured_drop_pp(metrics, accuracy.baseline_accuracy)
        low, high = (metrics.get(key) for key in ACCURACY_CHANGE[1:])
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            info = {**info, "half_pp": (float(high) - float(low)) / 2}
        found.append((info, decode(trial.params, problem.space), drop))
    return found


def _probed_keys(study: optuna.Study, problem: Problem) -> set[str]:
    """The parameters of every complete trial (any engine's: a baseline is probed too)."""
    from dse.space import decode

    keys = set()
    for trial in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,)):
        try:
            keys.add(params_key(decode(trial.params, problem.space), problem.space))
        except ConfigError:
            continue
    return keys


def parse_fractions(text: str, option: str) -> tuple[float, ...]:
    """'0.5,1' -> (0.5, 1.0); one line naming ``option`` on anything else."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated fractions, got {text!r}") from None
    return values


@dataclass(frozen=True)
class FrontierSettings:
    fractions: tuple[float, ...] = setting(
        DEFAULT_FRACTIONS, flag="--frontier-fractions", metavar="F1,F2,...",
        parse=parse_fractions,
        help="shares of each layer's channels put on the analog array when characterising "
             "it, each rounded to the layer's grid")
    verify: int = setting(DEFAULT_VERIFY, flag="--frontier-verify",
                          help="points of the predicted front probed per round")
    retrain: int = setting(
        DEFAULT_RETRAIN, flag="--frontier-retrain", metavar="N",
        help="points of the predicted front beyond the accuracy limit trained on longer "
             "after the rounds, one at a time (the first within "
             f"{RETRAIN_REACH_PP:g} pp of it, the next further or nearer as the last "
             "landed), and probed from the retrained weights, one trial each; the budget "
             "keeps room for them (0: none)")
    retrain_epochs: int = setting(
        DEFAULT_RETRAIN_EPOCHS, flag="--frontier-retrain-epochs", metavar="N",
        help="epochs of that training (EDEN's retraining, with the DRAM errors of the "
             "point chosen for the split), once per split and kept in the results folder")

    def __post_init__(self) -> None:
        if not self.fractions:
            raise ConfigError("--frontier-fractions is empty: give at least one fraction")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError("--frontier-fractions must lie in (0, 1]")
        if self.verify < 1:
            raise ConfigError("--frontier-verify must be >= 1")
        if isinstance(self.retrain, bool) or not 0 <= self.retrain <= MAX_RETRAIN:
            raise ConfigError(f"--frontier-retrain must be an integer in [0, {MAX_RETRAIN}] "
                              f"(got {self.retrain})")
        check_retrain_epochs(self.retrain_epochs, "--frontier-retrain-epochs")


def check_problem(settings: Any, problem: Problem) -> None:
    """What the exact solve covers, checked before any training: one line otherwise."""
    other = [name for name in problem.objectives if name not in SOLVED_OBJECTIVES]
    if other:
        raise ConfigError(f"--engine frontier solves for {', '.join(SOLVED_OBJECTIVES)}; "
                          f"not for {', '.join(other)}")
    reason = unsolvable(problem)
    if reason is not None:
        raise ConfigError(f"--engine frontier: {reason}")


def unsolvable(problem: Problem) -> str | None:
    """Why ``solve`` cannot cover ``problem``'s space, or None."""
    if problem.space.partitions > 1:
        return ("the exact solve covers the whole-device DRAM point only: use --partitions "
                "whole-device")
    if not fixed_regime(problem):
        return ("on this SoC the channel split moves tensors between L1, L2 and DRAM, which "
                "the exact solve does not model yet")
    return None


def _factory(settings: FrontierSettings, problem: Any, study: Any) -> FrontierEngine:
    return FrontierEngine(fractions=settings.fractions, verify=settings.verify,
                          retrain=settings.retrain, retrain_epochs=settings.retrain_epochs)


SPEC = register(EngineSpec(
    name="frontier", settings=FrontierSettings, factory=_factory,
    summary="dse's own: each layer's and the DRAM's accuracy cost measured, added up, the "
            "exact front of that model over the whole space solved, probed and corrected",
    needs=frozenset(), check=check_problem,
    needs_of=lambda settings: ("probe",) if settings.retrain > 0 else (),
    needs_of_why="its retraining, --frontier-retrain, trains on the probe's data: pass "
                 "--frontier-retrain 0"))
