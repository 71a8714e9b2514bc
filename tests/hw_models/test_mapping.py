"""Mapping specs: heuristics and JSON files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hw_models import ConfigError, LayerTable, compute_cost
from hw_models.mapping import HEURISTICS, resolve_mapping, resolve_split

MOBILE_LIKE = [
    dict(name="stem", kind="conv", cin=3, cout=8, kx=3, ky=3, ox=16, oy=16, stride=2),
    dict(name="dw", kind="depthwise", cin=8, cout=8, kx=3, ky=3, ox=16, oy=16, groups=8),
    dict(name="pw", kind="conv", cin=8, cout=32, kx=1, ky=1, ox=16, oy=16),
    dict(name="conv", kind="conv", cin=32, cout=64, kx=3, ky=3, ox=8, oy=8, stride=2),
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


@pytest.fixture
def mobile_table() -> LayerTable:
    return LayerTable.from_records(MOBILE_LIKE)


def test_heuristics(mobile_table, soc):
    assert list(resolve_mapping("all-digital", mobile_table, soc)) == [0, 0, 0, 0, 0]
    assert list(resolve_mapping("all-analog", mobile_table, soc)) == [8, 0, 32, 64, 10]
    # first, last and few-channel (cin 8 < 16) layers digital; depthwise always digital
    assert list(resolve_mapping("diana-heuristic", mobile_table, soc)) == [0, 0, 0, 64, 0]


def test_min_latency_picks_the_faster_core_per_layer(mobile_table, soc):
    mapping = resolve_mapping("min-latency", mobile_table, soc)
    digital = compute_cost(mobile_table, soc, np.zeros(5, dtype=int)).latency_cycles
    analog = compute_cost(mobile_table, soc, resolve_mapping("all-analog", mobile_table, soc))
    for i in range(5):
        faster_analog = mobile_table.groups[i] == 1 and analog.analog_cycles[i] < digital[i]
        assert mapping[i] == (mobile_table.cout[i] if faster_analog else 0)
    # and no whole-layer mapping is faster
    best = compute_cost(mobile_table, soc, mapping).total_latency_cycles()
    for name in HEURISTICS:
        other = compute_cost(mobile_table, soc, resolve_mapping(name, mobile_table, soc))
        assert best <= other.total_latency_cycles()


def test_resnet20_min_latency_is_first_and_last_digital(resnet20_table, soc):
    mapping = resolve_mapping("min-latency", resnet20_table, soc)
    assert mapping[0] == 0 and mapping[-1] == 0
    assert (mapping[1:-1] == resnet20_table.cout[1:-1]).all()
    total = compute_cost(resnet20_table, soc, mapping).total_latency_cycles()
    assert total == pytest.approx(86_964.45, rel=1e-12)


def write(tmp_path, document) -> str:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_json_object_and_list(mobile_table, soc, tmp_path):
    by_name = resolve_mapping(write(tmp_path, {"pw": 16, "conv": 64}), mobile_table, soc)
    assert list(by_name) == [0, 0, 16, 64, 0]
    by_order = resolve_mapping(write(tmp_path, [0, 0, 16, 64, 0]), mobile_table, soc)
    assert list(by_order) == [0, 0, 16, 64, 0]


def test_json_cost_output_round_trips(mobile_table, soc, tmp_path):
    report = {"layers": [{"name": "pw", "n_analog": 8}, {"name": "fc", "n_analog": 10}]}
    assert list(resolve_mapping(write(tmp_path, report), mobile_table, soc)) == [0, 0, 8, 0, 10]


@pytest.mark.parametrize("document, message", [
    ({"nope": 3}, "unknown layer 'nope'"),
    ({"pw": 33}, r"n_analog must be in \[0, 32\]"),
    ({"pw": -1}, r"n_analog must be in \[0, 32\]"),
    ({"pw": 2.5}, "must be an integer"),
    ({"pw": "8"}, "must be an integer"),
    ({"pw": True}, "must be an integer"),
    ({"dw": 4}, "depthwise"),
    ([0, 0, 0], "3 entries"),
    ("all-analog", "expected a JSON object or list"),
    ({"layers": [{"name": "pw"}]}, "'name' and 'n_analog'"),
    ({"pw": [0, 0]}, r"distinct integers in \[0, 31\]"),
    ({"pw": [32]}, r"distinct integers in \[0, 31\]"),
    ({"pw": [1.0]}, "distinct integers"),
    ({"dw": [0]}, "depthwise"),
])
def test_bad_json_mappings(mobile_table, soc, tmp_path, document, message):
    with pytest.raises(ConfigError, match=message):
        resolve_mapping(write(tmp_path, document), mobile_table, soc)


def test_unknown_spec_and_broken_json(mobile_table, soc, tmp_path):
    with pytest.raises(ConfigError, match="neither a heuristic"):
        resolve_mapping("fastest", mobile_table, soc)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read mapping file"):
        resolve_mapping(str(broken), mobile_table, soc)


def test_diana_heuristic_keeps_first_and_last_digital_whatever_their_size(soc):
    wide = LayerTable.from_records([
        dict(name="first", kind="conv", cin=32, cout=64, kx=3, ky=3, ox=8, oy=8),
        dict(name="middle", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=8, oy=8),
        dict(name="last", kind="conv", cin=64, cout=64, kx=1, ky=1, ox=1, oy=1),
    ])
    assert list(resolve_mapping("diana-heuristic", wide, soc)) == [0, 64, 0]


def test_json_rejects_repeated_layers_and_huge_counts(mobile_table, soc, tmp_path):
    path = tmp_path / "twice.json"
    path.write_text('{"pw": 8, "pw": 16}')
    with pytest.raises(ConfigError, match="'pw' appears twice"):
        resolve_mapping(str(path), mobile_table, soc)
    with pytest.raises(ConfigError, match=r"\[0, 32\]"):
        resolve_mapping(write(tmp_path, {"pw": 10**30}), mobile_table, soc)


def test_channel_lists_name_which_channels_go_analog(mobile_table, soc, tmp_path):
    n_analog, channels = resolve_split(write(tmp_path, {"pw": [7, 1, 3], "conv": 64}),
                                       mobile_table, soc)
    assert list(n_analog) == [0, 0, 3, 64, 0]
    assert channels == (None, None, (1, 3, 7), None, None)
    assert resolve_split("all-analog", mobile_table, soc)[1] is None
    assert resolve_split(write(tmp_path, {"pw": 3}), mobile_table, soc)[1] is None
    report = {"layers": [{"name": "pw", "n_analog": 2, "analog_channels": [4, 9]}]}
    assert resolve_split(write(tmp_path, report), mobile_table, soc)[1][2] == (4, 9)
