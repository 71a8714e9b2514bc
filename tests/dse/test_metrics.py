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
