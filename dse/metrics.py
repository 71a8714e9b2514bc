"""The metric registry: every measured quantity of a candidate, named once.

Each metric has the name users type (``--objectives``, ``--x``), the column it is stored
under (its unit in the name), the unit, the direction that is better, and how the terminal
and the plots show it (a label and the factor from the stored unit to the shown one). The
tables, plots, summaries, the study's objective names and the CLI all read this registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from dse.accuracy.stats import change_from_drop
from hw_models.errors import ConfigError

Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Metric:
    """One measured quantity.

    Attributes:
        name: what users type (``accuracy``, ``latency``, ...).
        column: where it is stored (``latency_s``): the unit is in the name.
        unit: the stored unit (``s``, ``J``, ``fraction``).
        direction: ``maximize`` or ``minimize``.
        label: axis label in the shown unit.
        display_scale: factor from the stored unit to the shown one (1e3: s -> ms).
        display_unit: the shown unit (``ms``).
    """

    name: str
    column: str
    unit: str
    direction: Direction
    label: str
    display_scale: float
    display_unit: str

    def shown(self, value: float) -> float:
        """``value`` in the display unit."""
        return value * self.display_scale

    @property
    def quantity(self) -> str:
        """The label without its unit (``latency``)."""
        return self.label.rsplit(" (", 1)[0]


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", "fraction", "maximize", "validation accuracy (%)", 100.0,
           "%"),
    Metric("latency", "latency_s", "s", "minimize", "latency (ms)", 1e3, "ms"),
    Metric("energy", "energy_j", "J", "minimize", "energy (µJ)", 1e6, "µJ"),
    Metric("dram_energy", "dram_energy_j", "J", "minimize", "DRAM energy (µJ)", 1e6, "µJ"),
    Metric("compute_energy", "compute_energy_j", "J", "minimize", "compute energy (µJ)", 1e6,
           "µJ"),
    Metric("compute_latency", "compute_latency_s", "s", "minimize",
           "compute latency (ms)", 1e3, "ms"),
)
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in METRICS}
BY_COLUMN: dict[str, Metric] = {metric.column: metric for metric in METRICS}
COLUMNS: tuple[str, ...] = tuple(metric.column for metric in METRICS)
COST_COLUMNS: tuple[str, ...] = tuple(m.column for m in METRICS if m.name != "accuracy")

# Not an objective: the DRAM energy of the same mapping with every tensor at nominal DRAM
# (EDEN's reference: what approximate DRAM saves on one mapping).
NOMINAL_DRAM_ENERGY = "dram_energy_nominal_j"
# Not an objective: bytes moved to and from DRAM per inference (0: the mapping holds no
# tensor in DRAM; EDEN's metric is claimed only where it is above 0).
DRAM_BYTES = "dram_bytes"

# The accuracy's statistics, stored beside it: fractions, and the accuracy change against
# the all-digital nominal-DRAM baseline in percentage points, paired on the same images and
# seeds, negative when the candidate is worse (95 % intervals). Every output uses this sign.
ACCURACY_CHANGE: tuple[str, ...] = (
    "accuracy_change_pp", "accuracy_change_ci_low_pp", "accuracy_change_ci_high_pp")
ACCURACY_STATS: tuple[str, ...] = (
    "accuracy_std", "accuracy_ci_low", "accuracy_ci_high", *ACCURACY_CHANGE)
# The same on the test split, from the confirmation (dse confirm).
TEST_STATS: tuple[str, ...] = (
    "test_accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high",
    "test_accuracy_change_pp", "test_accuracy_change_ci_low_pp",
    "test_accuracy_change_ci_high_pp")
# What studies made by earlier versions stored instead: the drop (positive when worse).
LEGACY_DROP: tuple[str, ...] = (
    "accuracy_drop_pp", "accuracy_drop_ci_low_pp", "accuracy_drop_ci_high_pp")


def with_accuracy_change(metrics: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored metrics with the accuracy change, converted from the drop that
    studies made by earlier versions stored (the drop's keys are left out)."""
    if ACCURACY_CHANGE[0] in metrics or LEGACY_DROP[0] not in metrics:
        return metrics
    kept = {key: value for key, value in metrics.items() if key not in LEGACY_DROP}
    drop, low, high = (metrics.get(key) for key in LEGACY_DROP)
    if not (isinstance(drop, (int, float)) and isinstance(low, (int, float))
            and isinstance(high, (int, float))):
        return {**kept, **dict.fromkeys(ACCURACY_CHANGE)}  # unknown: None
    return {**kept, **dict(zip(ACCURACY_CHANGE, change_from_drop((drop, low, high))))}


# Not a search metric either: the test-split accuracy of the confirmed points, which the
# plots may show (``dse pareto --x test_accuracy``).
TEST_ACCURACY = Metric("test_accuracy", "test_accuracy", "fraction", "maximize",
                       "test accuracy (%)", 100.0, "%")
PLOTTED: dict[str, Metric] = {**BY_NAME, **BY_COLUMN, TEST_ACCURACY.name: TEST_ACCURACY}


def plotted_metric(name_or_column: str) -> Metric:
    """A metric (as ``metric``) or the test accuracy, for a plot's axis or colour."""
    found = PLOTTED.get(name_or_column)
    if found is None:
        raise ConfigError(f"unknown quantity '{name_or_column}' to plot (choose from "
                          f"{', '.join([*BY_NAME, TEST_ACCURACY.name])})")
    return found


def metric(name_or_column: str) -> Metric:
    """The metric named (``latency``) or stored (``latency_s``) so; unknown: ConfigError."""
    found = BY_NAME.get(name_or_column) or BY_COLUMN.get(name_or_column)
    if found is None:
        raise ConfigError(f"unknown objective '{name_or_column}' (choose from "
                          f"{', '.join(BY_NAME)})")
    return found


def parse_objectives(text: str) -> tuple[str, ...]:
    """``"accuracy,latency"`` -> ``("accuracy", "latency")``; unknown or repeated: an error."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in BY_NAME]
    if unknown or not names:
        raise ConfigError(f"unknown objective '{unknown[0] if unknown else text}' "
                          f"(choose from {', '.join(BY_NAME)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"objective listed twice in '{text}'")
    return names


def objective_columns(objectives: Sequence[str]) -> tuple[list[str], list[str]]:
    """The stored column and the direction of each objective."""
    return ([BY_NAME[name].column for name in objectives],
            [BY_NAME[name].direction for name in objectives])


def units() -> dict[str, str]:
    """Column -> unit, for the study's user attributes (optuna-dashboard shows them)."""
    return {m.column: m.unit for m in METRICS}
