"""The problem a search solves: workload, SoC, DRAM, design space, objectives and limits.

``build_problem`` is the one place that turns names (network, dataset, presets) into these
objects, for the search, for ``dse show`` and for the tests. It needs torch only to trace
the network into a layer table; given a stored table (a study keeps one) it needs none.
"""
from __future__ import annotations

from dataclasses import dataclass

from dse.accuracy.defaults import DEFAULT_MAX_ACCURACY_DROP_PP
from dse.metrics import BY_NAME, Direction, parse_objectives
from dse.space import SearchSpace, build_space, trcd_grid_ns, vdd_grid_v
from hw_models import ConfigError, LayerTable, Soc, load_soc
from hw_models.dram import (
    DEFAULT_BER_QUANTILE,
    DEFAULT_VENDOR,
    DramDevice,
    ber_from_trcd,
    ber_from_vdd,
    combined_ber,
    load_dram,
    trcd_curve,
    vendor_curve,
)
from hw_models.system import check_idle_dram
from hw_models.traffic import dram_tensors


@dataclass(frozen=True)
class Limits:
    """Constraints: each is met when its value is <= 0 (Optuna's convention)."""

    max_accuracy_drop_pp: float | None = DEFAULT_MAX_ACCURACY_DROP_PP  # pp below all-digital
    latency_budget_s: float | None = None
    energy_budget_j: float | None = None
    drop_rule: str = "mean"   # the paired drop's estimate, or its one-sided (1 + level) / 2
                              # upper bound (the two-sided interval's upper end)


@dataclass(frozen=True)
class Problem:
    """Everything fixed across the candidates of one study."""

    space: SearchSpace
    soc: Soc
    vendor: str
    objectives: tuple[str, ...]
    ber_quantile: str = DEFAULT_BER_QUANTILE  # which DIMM of the vendor's population
    limits: Limits = Limits()
    overlap: bool = True                 # double-buffer DRAM transfers with compute

    @property
    def table(self) -> LayerTable:
        return self.space.table

    @property
    def device(self) -> DramDevice | None:
        return self.space.device

    @property
    def directions(self) -> list[Direction]:
        return [BY_NAME[name].direction for name in self.objectives]

    @property
    def needs_accuracy(self) -> bool:
        return "accuracy" in self.objectives


def resolve_dram(name: str | None, soc: Soc) -> str:
    """The DRAM device name: the given one, else the SoC's default (``none``: no DRAM)."""
    return soc.default_dram if name is None else name


def load_device(name: str, vendor: str, ber_quantile: str = DEFAULT_BER_QUANTILE
                ) -> DramDevice | None:
    """The DRAM device preset (None for ``none``), its vendor's curves checked."""
    vendor_curve(vendor, ber_quantile)
    trcd_curve(vendor, ber_quantile)
    return None if name == "none" else load_dram(name)


def build_problem(*, network: str, dataset: str | None, hw: str = "diana",
                  dram: str | None = None, vendor: str = DEFAULT_VENDOR,
                  ber_quantile: str = DEFAULT_BER_QUANTILE,
                  objectives: str | tuple[str, ...] = ("accuracy", "latency", "energy"),
                  limits: Limits = Limits(), table: LayerTable | None = None,
                  overlap: bool = True, partitions: int = 1,
                  soc: Soc | None = None) -> Problem:
    """Resolve names into a ``Problem`` (``soc``: the preset ``hw`` already loaded).

    Args:
        network, dataset: the workload (traced with torch unless ``table`` is given).
        hw: SoC preset name or TOML path.
        dram: DRAM device preset or TOML path, ``none``, or None for the SoC's default.
        vendor: vendor whose measured BER curves apply (Voltron VDD, DIVA-DRAM tRCD).
        ber_quantile: which DIMM of the vendor's population they describe (mean, median,
            p90, max).
        objectives: names (``dse.metrics``) or a comma-separated string.
        limits: constraints.
        table: the layer table, when already known (read from a study).
        partitions: equal DRAM partitions, each with its own operating point (1: the whole
            device, EDEN's coarse mode).
    """
    names = parse_objectives(objectives) if isinstance(objectives, str) else tuple(objectives)
    if not names:
        raise ConfigError("give at least one objective")
    soc = soc or load_soc(hw)
    device = load_device(resolve_dram(dram, soc), vendor, ber_quantile)
    if device is not None:
        check_idle_dram(soc, device)
    if table is None:
        from dse.workload import load_workload  # torch: traces the network once
        table = load_workload(network, dataset).table
    space = build_space(table, dram_tensors(table, soc), device, vendor, partitions,
                        ber_quantile)
    return Problem(space=space, soc=soc, vendor=vendor, objectives=names,
                   ber_quantile=ber_quantile, limits=limits, overlap=overlap)


def most_aggressive_point(problem: Problem, ber_budget: float) -> tuple[float, float]:
    """(VDD in V, tRCD in ns) of the search grid: the lowest VDD whose BER is within
    ``ber_budget``, then the shortest tRCD keeping the combined BER within it, for the
    problem's vendor and DIMM quantile. A budget of 0 gives the lowest error-free point;
    one above every BER (``math.inf``) the bottom of the grid."""
    device, space = problem.device, problem.space
    assert device is not None
    vdds, trcds = vdd_grid_v(space), trcd_grid_ns(space)
    by_vdd = ber_from_vdd(device, problem.vendor, vdds, problem.ber_quantile)
    vdd = float(vdds[by_vdd <= ber_budget][-1]) if (by_vdd <= ber_budget).any() \
        else float(vdds[0])
    combined = combined_ber(ber_from_vdd(device, problem.vendor, vdd, problem.ber_quantile),
                            ber_from_trcd(device, problem.vendor, trcds, problem.ber_quantile))
    fits = combined <= ber_budget
    return vdd, float(trcds[fits][-1]) if fits.any() else float(trcds[0])


def point_ber(problem: Problem, vdd_v: float, trcd_ns: float) -> float:
    """Combined bit error rate (from VDD and from tRCD) at one operating point, for the
    problem's vendor and DIMM quantile. The one place the safe points ask "does this point
    read back exactly": whatever the BER model refuses (a point outside its usable range)
    raises here as it does there."""
    device = problem.device
    assert device is not None
    return float(combined_ber(ber_from_vdd(device, problem.vendor, vdd_v, problem.ber_quantile),
                              ber_from_trcd(device, problem.vendor, trcd_ns,
                                            problem.ber_quantile)))


def safe_point(problem: Problem) -> tuple[float, float] | None:
    """The lowest error-free (VDD, tRCD) of the search grid: the lowest VDD, then the
    shortest tRCD, at which the combined BER of the chosen DIMM quantile is 0. None when not
    even nominal is error-free (then no point of the grid is safe)."""
    point = most_aggressive_point(problem, 0.0)
    return point if point_ber(problem, *point) == 0 else None
