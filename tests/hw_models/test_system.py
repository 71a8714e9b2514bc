"""Traffic, partitions and the compute + DRAM system cost."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hw_models import ConfigError, LayerTable, compute_cost
from hw_models.dram import load_dram
from hw_models.partitions import named_placement, placement_from_file
from hw_models.system import DramSetting, system_cost
from hw_models.traffic import layer_traffic

TWO_LAYERS = [
    # small: weights 8 x 4 x 3 x 3 = 288, activations 4*16 + 8*16 elements stay on chip
    dict(name="small", kind="conv", cin=4, cout=8, kx=3, ky=3, ox=4, oy=4),
    # big: 64 x 64 x 64 input + output = 2 x 262144 bytes > 256 kB of L1: spilled
    dict(name="big", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=64, oy=64),
]


@pytest.fixture
def table() -> LayerTable:
    return LayerTable.from_records(TWO_LAYERS)


@pytest.fixture(scope="module")
def lpddr4():
    return load_dram("lpddr4-3200")


def test_traffic_by_hand(table, soc):
    traffic = layer_traffic(table, soc, np.array([4, 16]))
    # small: 4 digital channels x 36 int8 weights + 4 analog x 36 ternary (2 bit)
    assert traffic.weight_read_bytes[0] == 4 * 36 + 4 * 36 * 2 / 8
    # big: 48 digital x 576 bytes + 16 analog x 576 / 4
    assert traffic.weight_read_bytes[1] == 48 * 576 + 16 * 576 / 4
    assert list(traffic.spilled) == [False, True]
    assert list(traffic.activation_read_bytes) == [0, 64 * 64 * 64]
    assert list(traffic.activation_write_bytes) == [0, 64 * 64 * 64]


def test_resident_weights_do_not_travel(table, soc):
    import dataclasses
    resident = dataclasses.replace(soc, memory=dataclasses.replace(soc.memory,
                                                                   weights_resident=True))
    traffic = layer_traffic(table, resident, np.array([0, 0]))
    assert (traffic.weight_read_bytes == 0).all()
    tiny_l2 = dataclasses.replace(resident, memory=dataclasses.replace(resident.memory,
                                                                       l2_bytes=100))
    assert layer_traffic(table, tiny_l2, np.array([0, 0])).weight_read_bytes[1] == 64 * 576


def setting(table, device, layout="all-approximate", vdd_v=None, trcd_ns=None):
    placement = named_placement(layout, table, device, "B", vdd_v=vdd_v, trcd_ns=trcd_ns)
    return DramSetting(device, "B", placement)


def test_dram_time_and_energy_by_hand(table, soc, lpddr4):
    cost = system_cost(table, soc, np.array([0, 0]), setting(table, lpddr4, "all-nominal"))
    weight = 288.0
    rows = 1  # one 2 KB row opened
    time_s = weight / 6.4e9 + rows * 40.625e-9
    assert cost.dram_time_s[0] == pytest.approx(time_s, rel=1e-12)
    compute_s = compute_cost(table, soc, np.array([0, 0])).latency_s[0]
    assert cost.latency_s[0] == pytest.approx(max(time_s, compute_s))
    access_pj = weight * (42.1 + 25.65) + rows * (1060.1 + 144.6)
    background_mw_s = ((33.0 + 4.88) * time_s + (3.3 + 2.99) * (cost.latency_s[0] - time_s)
                       + (4.73 + 1.0) * cost.latency_s[0])
    expected_j = access_pj * 1e-12 + background_mw_s * 1e-3
    assert cost.dram_energy_j[0] == pytest.approx(expected_j, rel=1e-12)
    assert cost.energy_j[0] == pytest.approx(expected_j + cost.compute.energy_j[0])


def test_nominal_approximate_partition_costs_exactly_nominal(table, soc, lpddr4):
    mapping = np.array([[0, 0], [8, 64], [3, 17]])
    nominal = system_cost(table, soc, mapping, setting(table, lpddr4, "all-nominal"))
    approx = system_cost(table, soc, mapping, setting(table, lpddr4, "all-approximate",
                                                      vdd_v=1.1, trcd_ns=18.125))
    np.testing.assert_array_equal(nominal.dram_energy_j, approx.dram_energy_j)
    np.testing.assert_array_equal(nominal.latency_s, approx.latency_s)
    assert (approx.weight_ber == 0).all()


def test_lower_vdd_and_trcd_never_cost_more(table, soc, lpddr4):
    mapping = np.array([2, 30])
    energies, latencies = [], []
    for vdd_v in np.linspace(0.84, 1.1, 12):
        cost = system_cost(table, soc, mapping, setting(table, lpddr4, vdd_v=vdd_v))
        energies.append(cost.total_dram_energy_j())
    assert (np.diff(energies) > 0).all()
    for trcd_ns in np.linspace(9.1, 18.125, 12):
        cost = system_cost(table, soc, mapping, setting(table, lpddr4, trcd_ns=trcd_ns))
        latencies.append(cost.dram_time_s.sum())
    assert (np.diff(latencies) > 0).all()


def test_partition_ber_reaches_the_right_tensors(table, soc, lpddr4):
    cost = system_cost(table, soc, np.array([0, 0]),
                       setting(table, lpddr4, "weights-approximate", vdd_v=0.9))
    assert (cost.weight_ber > 0).all() and (cost.activation_ber == 0).all()
    cost = system_cost(table, soc, np.array([0, 0]),
                       setting(table, lpddr4, "activations-approximate", vdd_v=0.9))
    assert (cost.weight_ber == 0).all()
    # only the spilled layer's activations live in DRAM
    assert cost.activation_ber[0] == 0 and cost.activation_ber[1] > 0


def test_no_overlap_adds_dram_time(table, soc, lpddr4):
    dram = setting(table, lpddr4)
    overlapped = system_cost(table, soc, np.array([0, 0]), dram)
    serial = system_cost(table, soc, np.array([0, 0]), dram, overlap=False)
    np.testing.assert_allclose(serial.latency_s,
                               overlapped.compute.latency_s + overlapped.dram_time_s)
    assert (serial.latency_s >= overlapped.latency_s).all()


def test_batch_equals_one_by_one(table, soc, lpddr4):
    dram = setting(table, lpddr4, vdd_v=0.95, trcd_ns=15.0)
    batch = np.array([[0, 0], [8, 64], [5, 33]])
    together = system_cost(table, soc, batch, dram)
    for i, candidate in enumerate(batch):
        alone = system_cost(table, soc, candidate, dram)
        np.testing.assert_allclose(together.dram_energy_j[i], alone.dram_energy_j, rtol=1e-12)
        np.testing.assert_allclose(together.latency_s[i], alone.latency_s, rtol=1e-12)


def test_compute_only_has_no_dram_terms(table, soc):
    cost = system_cost(table, soc, np.array([0, 64]), None)
    assert cost.total_dram_energy_j() == 0 and (cost.dram_time_s == 0).all()
    assert cost.total_energy_j() == cost.compute.total_energy_j()


def write(tmp_path, document) -> str:
    path = tmp_path / "partitions.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_partition_file(table, soc, lpddr4, tmp_path):
    document = {"partitions": [{"name": "safe", "capacity_bytes": 10**6},
                               {"name": "fast", "capacity_bytes": 10**6, "vdd_v": 0.9,
                                "trcd_ns": 15.0}],
                "tensors": {"weights/big": "fast"}}
    placement = placement_from_file(write(tmp_path, document), table, lpddr4, "B")
    assert list(placement.weight_partition) == [0, 1]
    assert list(placement.activation_partition) == [0, 0]
    cost = system_cost(table, soc, np.array([0, 0]), DramSetting(lpddr4, "B", placement))
    assert cost.weight_ber[0] == 0 and cost.weight_ber[1] > 0


def test_capacity_is_checked(table, soc, lpddr4, tmp_path):
    document = {"partitions": [{"name": "tiny", "capacity_bytes": 1000}]}
    placement = placement_from_file(write(tmp_path, document), table, lpddr4, "B")
    with pytest.raises(ConfigError, match="partition 'tiny' holds .* over its capacity of 1000"):
        system_cost(table, soc, np.array([0, 0]), DramSetting(lpddr4, "B", placement))


@pytest.mark.parametrize("document, message", [
    ({"partitions": []}, "non-empty 'partitions'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}], "tensors": {"weights/nope": "a"}},
     "unknown tensor 'weights/nope'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}], "tensors": {"biases/big": "a"}},
     "unknown tensor 'biases/big'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}], "tensors": {"weights/big": "b"}},
     "unknown partition 'b'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10**10}]}, "more than the device"),
    ({"partitions": [{"name": "a", "capacity_bytes": -5}]}, "positive integer"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10, "vdd_v": 0.5}]}, "VDD 0.5 V outside"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10, "volts": 1}]}, "unknown key 'volts'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}, {"name": "a", "capacity_bytes": 10}]},
     "unique"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}], "tensor": {}}, "unknown key 'tensor'"),
])
def test_bad_partition_files(table, lpddr4, tmp_path, document, message):
    with pytest.raises(ConfigError, match=message):
        placement_from_file(write(tmp_path, document), table, lpddr4, "B")


def test_unknown_layout(table, lpddr4):
    with pytest.raises(ConfigError, match="neither a layout"):
        named_placement("half", table, lpddr4, "B")


def test_dram_energy_breakdown_adds_up_and_only_vdd_parts_scale(table, soc, lpddr4):
    from hw_models.system import DRAM_ENERGY_PARTS
    split = np.array([4, 16])
    nominal = system_cost(table, soc, split, DramSetting(
        lpddr4, "B", named_placement("all-nominal", table, lpddr4, "B")))
    assert tuple(nominal.dram_energy_parts_j) == DRAM_ENERGY_PARTS
    assert np.allclose(sum(nominal.dram_energy_parts_j.values()), nominal.dram_energy_j,
                       rtol=1e-12, atol=0)
    low = system_cost(table, soc, split, DramSetting(
        lpddr4, "B", named_placement("all-approximate", table, lpddr4, "B", vdd_v=1.0)))
    parts, reference = low.dram_energy_parts_j, nominal.dram_energy_parts_j
    assert np.array_equal(parts["read_write_io"], reference["read_write_io"])  # VDDQ: fixed
    assert (parts["read_write_core"] < reference["read_write_core"]).any()
    assert system_cost(table, soc, split, None).dram_energy_parts_j == {}
