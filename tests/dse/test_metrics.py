"""The metric registry: one name, column, unit and direction per quantity."""
from __future__ import annotations

import pytest

from dse.metrics import (
    BY_COLUMN,
    BY_NAME,
    METRICS,
    metric,
    objective_columns,
    parse_objectives,
    units,
    with_accuracy_change,
)
from hw_models import ConfigError


def test_every_column_carries_its_unit():
    for m in METRICS:
        assert m.direction in ("maximize", "minimize")
        assert m.column == "accuracy" or m.column.endswith("_" + m.unit.lower())
    assert units()["latency_s"] == "s" and units()["accuracy"] == "fraction"


def test_lookup_by_name_or_column():
    assert metric("latency") is metric("latency_s") is BY_NAME["latency"]
    assert BY_COLUMN["energy_j"].shown(2e-6) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="unknown objective 'speed'"):
        metric("speed")


def test_objectives_parse_in_order_without_repeats():
    assert parse_objectives(" accuracy, energy ") == ("accuracy", "energy")
    assert objective_columns(["accuracy", "energy"]) == (["accuracy", "energy_j"],
                                                         ["maximize", "minimize"])
    for bad, message in (("", "unknown objective"), ("latency,latency", "listed twice"),
                         ("latency,speed", "'speed'")):
        with pytest.raises(ConfigError, match=message):
            parse_objectives(bad)


def test_a_stored_drop_reads_as_an_accuracy_change_negative_when_worse():
    """Studies made by earlier versions stored the drop (positive: worse); they read with
    the one sign every output uses, the interval's ends swapped."""
    legacy = {"accuracy": 0.95, "accuracy_drop_pp": 0.37, "accuracy_drop_ci_low_pp": -0.2,
              "accuracy_drop_ci_high_pp": 1.1}
    assert with_accuracy_change(legacy) == {
        "accuracy": 0.95, "accuracy_change_pp": -0.37, "accuracy_change_ci_low_pp": -1.1,
        "accuracy_change_ci_high_pp": 0.2}
    assert with_accuracy_change({"accuracy_drop_pp": 0.0, "accuracy_drop_ci_low_pp": 0.0,
                                 "accuracy_drop_ci_high_pp": 0.0})["accuracy_change_pp"] == 0.0
    unknown = with_accuracy_change({"accuracy": None, "accuracy_drop_pp": None})
    assert unknown["accuracy_change_pp"] is None and "accuracy_drop_pp" not in unknown
    current = {"accuracy_change_pp": -1.0}
    assert with_accuracy_change(current) is current
