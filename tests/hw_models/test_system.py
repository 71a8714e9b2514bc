"""Traffic, partitions and the compute + DRAM system cost."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hw_models import ConfigError, LayerTable, compute_cost
from hw_models.dram import load_dram
from hw_models.partitions import named_placement, placement_from_file
from hw_models.system import DramSetting, system_cost
from hw_models.traffic import LEVEL_DRAM, LEVEL_L1, LEVEL_L2, layer_traffic

BIG = 64 * 72 * 72  # elements (= bytes) of the big layer's input and of its output
TWO_LAYERS = [
    # small: weights 8 x 4 x 3 x 3 = 288, activations 4*16 + 8*16 elements stay on chip
    dict(name="small", kind="conv", cin=4, cout=8, kx=3, ky=3, ox=4, oy=4),
    # big: 64 x 72 x 72 input + output = 648 kB, over L1 (256 kB) and L2 (512 kB): DRAM
    dict(name="big", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=72, oy=72),
]


@pytest.fixture
def table() -> LayerTable:
    return LayerTable.from_records(TWO_LAYERS)


@pytest.fixture
def streaming(soc):
    """DIANA with its weights streamed every inference (``weights_resident = false``)."""
    import dataclasses
    return dataclasses.replace(soc, memory=dataclasses.replace(soc.memory,
                                                               weights_resident=False))


@pytest.fixture(scope="module")
def lpddr4():
    return load_dram("lpddr4-3200")


def test_traffic_by_hand(table, streaming):
    traffic = layer_traffic(table, streaming, np.array([4, 16]))
    # small: 4 digital channels x 36 int8 weights + 4 analog x 36 ternary (2 bit)
    assert traffic.weight_read_bytes[0] == 4 * 36 + 4 * 36 * 2 / 8
    # big: 48 digital x 576 bytes + 16 analog x 576 / 4
    assert traffic.weight_read_bytes[1] == 48 * 576 + 16 * 576 / 4
    assert list(traffic.level) == [LEVEL_L1, LEVEL_DRAM]
    assert list(traffic.input_in_dram) == [False, True]
    # big's input is written once by the layer before it and read back by big; big's
    # output (the last layer's) goes to the host
    assert list(traffic.activation_read_bytes) == [0, BIG]
    assert list(traffic.activation_write_bytes) == [BIG, 0]


def test_resident_weights_do_not_travel_and_see_no_errors(table, soc, lpddr4):
    assert soc.memory.weights_resident == "auto"  # the preset's default
    traffic = layer_traffic(table, soc, np.array([0, 0]))
    assert (traffic.weight_read_bytes == 0).all() and traffic.weights_resident.all()
    for vdd_v in (0.9, 1.0, 1.1):
        cost = system_cost(table, soc, np.array([0, 0]),
                           setting(table, lpddr4, "weights-approximate", vdd_v=vdd_v))
        assert (cost.weight_ber == 0).all()
    import dataclasses
    tiny_l2 = dataclasses.replace(soc, memory=dataclasses.replace(soc.memory, l2_bytes=100))
    assert layer_traffic(table, tiny_l2, np.array([0, 0])).weight_read_bytes[1] == 64 * 576


def test_activations_spill_to_l2_before_dram(soc, streaming):
    # input + output 2 x 256 kB: over L1, exactly L2's 512 kB
    table = LayerTable.from_records([
        dict(name="a", kind="conv", cin=4, cout=8, kx=3, ky=3, ox=4, oy=4),
        dict(name="b", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=64, oy=64)])
    streamed = layer_traffic(table, streaming, np.array([0, 0]))
    assert list(streamed.level) == [LEVEL_L1, LEVEL_L2]
    assert streamed.activation_read_bytes.sum() == streamed.activation_write_bytes.sum() == 0
    # resident weights (37 kB) take L2 space: the working set no longer fits and spills
    resident = layer_traffic(table, soc, np.array([0, 0]))
    assert list(resident.level) == [LEVEL_L1, LEVEL_DRAM]
    assert list(resident.activation_read_bytes) == [0, 64 * 64 * 64]


BLOCK = [  # a stem, then a block: conv1 spills; the shortcut reads the same input
    dict(name="stem", kind="conv", cin=4, cout=64, kx=3, ky=3, ox=72, oy=72),
    dict(name="conv1", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=72, oy=72),
    dict(name="conv2", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=4, oy=4,
         input_elements=64 * 72 * 72),
    dict(name="shortcut", kind="conv", cin=64, cout=64, kx=1, ky=1, ox=36, oy=36, stride=2,
         input_elements=64 * 72 * 72, input_tensor=1),
]


def test_one_stored_tensor_is_read_from_dram_by_every_reader(soc, lpddr4):
    table = LayerTable.from_records(BLOCK)
    traffic = layer_traffic(table, soc, np.zeros(4, dtype=int))
    assert traffic.level[3] == LEVEL_L2  # the shortcut alone would fit on chip...
    assert list(traffic.input_in_dram) == [False, True, True, True]
    size = 64 * 72 * 72
    # ...but its input is conv1's, which lives in DRAM: written once (by the stem), read
    # by both
    assert traffic.activation_read_bytes[3] == traffic.activation_read_bytes[1] == size
    assert traffic.activation_write_bytes[0] == size
    assert traffic.tensor_in_dram[1] and not traffic.tensor_in_dram[3]
    cost = system_cost(table, soc, np.zeros(4, dtype=int),
                       setting(table, lpddr4, "activations-approximate", vdd_v=0.9))
    assert cost.activation_ber[3] == cost.activation_ber[1] > 0
    assert cost.activation_ber[0] == 0  # the network input never lives in DRAM


def test_input_tensor_must_name_the_first_reader():
    bad = [dict(BLOCK[0]), dict(BLOCK[1], input_tensor=3), dict(BLOCK[2]), dict(BLOCK[3])]
    with pytest.raises(ConfigError, match="input_tensor"):
        LayerTable.from_records(bad)


def setting(table, device, layout="all-approximate", vdd_v=None, trcd_ns=None):
    placement = named_placement(layout, table, device, "B", vdd_v=vdd_v, trcd_ns=trcd_ns)
    return DramSetting(device, "B", placement)


def test_dram_time_and_energy_by_hand(table, streaming, lpddr4):
    soc = streaming
    cost = system_cost(table, soc, np.array([0, 0]), setting(table, lpddr4, "all-nominal"))
    weight = 288.0
    rows = 1  # one 2 KB row opened
    time_s = weight / 6.4e9 + rows * 40.625e-9
    compute_s = compute_cost(table, soc, np.array([0, 0])).latency_s[0]
    # and the big layer's input is written: 331776 bytes write energy, 162 rows
    written = BIG
    access_pj = (weight * (42.1 + 25.65) + rows * (1060.1 + 144.6)
                 + written * (30.9 + 9.3) + np.ceil(written / 2048) * (1060.1 + 144.6))
    time_s += written / 6.4e9 + np.ceil(written / 2048) * 40.625e-9
    assert cost.dram_time_s[0] == pytest.approx(time_s, rel=1e-12)
    assert cost.latency_s[0] == pytest.approx(max(time_s, compute_s))
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
    for vdd_v in np.linspace(0.88, 1.1, 12):
        cost = system_cost(table, soc, mapping, setting(table, lpddr4, vdd_v=vdd_v))
        energies.append(cost.total_dram_energy_j())
    assert (np.diff(energies) > 0).all()
    for trcd_ns in np.linspace(9.1, 18.125, 12):
        cost = system_cost(table, soc, mapping, setting(table, lpddr4, trcd_ns=trcd_ns))
        latencies.append(cost.dram_time_s.sum())
    assert (np.diff(latencies) > 0).all()


def test_partition_ber_reaches_the_right_tensors(table, streaming, lpddr4):
    soc = streaming
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


UNIT = 805306368 // 8  # one LPDDR4 bank


def test_partition_file(table, streaming, lpddr4, tmp_path):
    soc = streaming
    document = {"partitions": [{"name": "safe", "capacity_bytes": UNIT},
                               {"name": "fast", "capacity_bytes": UNIT, "vdd_v": 0.9,
                                "trcd_ns": 15.0}],
                "tensors": {"weights/big": "fast"}}
    placement = placement_from_file(write(tmp_path, document), table, lpddr4, "B")
    assert list(placement.weight_partition) == [0, 1]
    assert list(placement.activation_partition) == [0, 0]
    cost = system_cost(table, soc, np.array([0, 0]), DramSetting(lpddr4, "B", placement))
    assert cost.weight_ber[0] == 0 and cost.weight_ber[1] > 0


def test_capacity_is_checked(table, streaming, lpddr4, tmp_path):
    import dataclasses
    small = dataclasses.replace(lpddr4, capacity_bytes=8000)  # eight 1000-byte banks
    document = {"partitions": [{"name": "tiny", "capacity_bytes": 1000}]}
    placement = placement_from_file(write(tmp_path, document), table, small, "B")
    with pytest.raises(ConfigError, match="partition 'tiny' holds .* over its capacity of 1000"):
        system_cost(table, streaming, np.array([0, 0]), DramSetting(small, "B", placement))


@pytest.mark.parametrize("document, message", [
    ({"partitions": []}, "non-empty 'partitions'"),
    ({"partitions": [{"name": "a", "capacity_bytes": UNIT}],
      "tensors": {"weights/nope": "a"}}, "unknown tensor 'weights/nope'"),
    ({"partitions": [{"name": "a", "capacity_bytes": UNIT}], "tensors": {"biases/big": "a"}},
     "unknown tensor 'biases/big'"),
    ({"partitions": [{"name": "a", "capacity_bytes": UNIT}], "tensors": {"weights/big": "b"}},
     "unknown partition 'b'"),
    ({"partitions": [{"name": "a", "capacity_bytes": 9 * UNIT}]}, "more than the device"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10}]}, "whole number of banks"),
    ({"partitions": [{"name": f"p{k}", "capacity_bytes": UNIT // 2} for k in range(9)]},
     "9 partitions, but DRAM 'lpddr4-3200' has 8 banks"),
    ({"partitions": [{"name": "a", "capacity_bytes": -5}]}, "positive integer"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10, "vdd_v": 0.5}]},
     "VDD 0.5 V is below the usable floor 0.8759 V of vendor B's max BER"),
    ({"partitions": [{"name": "a", "capacity_bytes": 10, "volts": 1}]}, "unknown key 'volts'"),
    ({"partitions": [{"name": "a", "capacity_bytes": UNIT},
                     {"name": "a", "capacity_bytes": UNIT}]}, "unique"),
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


def test_resnet20_weights_never_touch_dram_at_any_vdd(resnet20_table, soc, lpddr4):
    zeros = np.zeros(resnet20_table.n_layers, dtype=int)
    for vdd_v in np.arange(0.9, 1.1001, 0.025):
        for layout in ("whole-device", "weights-approximate"):
            cost = system_cost(resnet20_table, soc, zeros,
                               setting(resnet20_table, lpddr4, layout, vdd_v=vdd_v))
            assert cost.traffic.weight_read_bytes.sum() == 0
            assert (cost.weight_ber == 0).all()


def test_whole_device_scales_all_background_power(table, soc, lpddr4):
    vdd_v = 0.9
    scale = (vdd_v / 1.1) ** 2
    zeros = np.array([0, 0])
    nominal = system_cost(table, soc, zeros, setting(table, lpddr4, "whole-device"))
    whole = system_cost(table, soc, zeros, setting(table, lpddr4, "whole-device", vdd_v=vdd_v))
    halves = system_cost(table, soc, zeros, setting(table, lpddr4, "all-approximate",
                                                    vdd_v=vdd_v))
    time_s = nominal.latency_s.sum()
    assert whole.latency_s.sum() == pytest.approx(time_s)  # the compute sets the time here
    refresh_j = whole.dram_energy_parts_j["refresh"].sum()
    assert refresh_j == pytest.approx((4.73 * scale + 1.0) * 1e-3 * time_s, rel=1e-9)
    half_refresh_j = halves.dram_energy_parts_j["refresh"].sum()
    assert half_refresh_j == pytest.approx((4.73 * (scale + 1) / 2 + 1.0) * 1e-3 * time_s,
                                           rel=1e-9)
    for part in ("active_standby", "powerdown", "refresh"):
        assert (whole.dram_energy_parts_j[part].sum() < halves.dram_energy_parts_j[part].sum()
                < nominal.dram_energy_parts_j[part].sum())


def test_two_partitions_need_a_device_with_two_units(table, lpddr4):
    import dataclasses
    single = dataclasses.replace(lpddr4, partition_units=1)
    with pytest.raises(ConfigError, match="needs two partitions; DRAM 'lpddr4-3200' has one"):
        named_placement("all-approximate", table, single, "B")


def test_an_idle_dram_costs_what_the_soc_preset_says(soc, lpddr4):
    """A mapping with no tensor in DRAM: the whole inference is idle time, charged by
    memory.idle_dram; a mapping with a tensor in DRAM is not affected."""
    import dataclasses
    on_chip = LayerTable.from_records(TWO_LAYERS[:1])

    def cost(mode: str, table: LayerTable = on_chip):
        idle_soc = dataclasses.replace(soc, memory=dataclasses.replace(soc.memory,
                                                                       idle_dram=mode))
        placed = DramSetting(lpddr4, "B", named_placement("whole-device", table, lpddr4, "B"))
        return system_cost(table, idle_soc, np.zeros(table.n_layers, dtype=int), placed)

    time_s = cost("power-down").total_latency_s()
    expected_mw = {"active-standby": 37.88 + 5.73, "power-down": 6.29 + 5.73,
                   "self-refresh": 1.2, "off": 0.0}
    for mode, mw in expected_mw.items():
        assert cost(mode).total_dram_energy_j() == pytest.approx(mw * 1e-3 * time_s, rel=1e-9)
    parts = cost("self-refresh").dram_energy_parts_j
    assert parts["refresh"].sum() == 0 and parts["self_refresh"].sum() > 0
    both = LayerTable.from_records(TWO_LAYERS)  # big's activations are in DRAM
    assert cost("off", both).total_dram_energy_j() == pytest.approx(
        cost("power-down", both).total_dram_energy_j(), rel=1e-12)


def test_self_refresh_needs_the_dram_presets_power(soc, lpddr4, tmp_path):
    import dataclasses

    from hw_models.system import check_idle_dram
    bare = dataclasses.replace(lpddr4, self_refresh_vdd_mw=None, self_refresh_fixed_mw=None)
    sleeping = dataclasses.replace(soc, memory=dataclasses.replace(soc.memory,
                                                                   idle_dram="self-refresh"))
    check_idle_dram(soc, bare)  # power-down needs nothing more
    check_idle_dram(sleeping, lpddr4)
    with pytest.raises(ConfigError, match="gives no self-refresh power"):
        check_idle_dram(sleeping, bare)
    half = tmp_path / "half.toml"
    from hw_models.dram import DRAM_PRESET_DIR
    text = (DRAM_PRESET_DIR / "lpddr4-3200.toml").read_text()
    half.write_text(text[:text.index("[self_refresh_fixed_mw]")]
                    + text[text.index("[ber.reference_nominal_v]"):])
    with pytest.raises(ConfigError, match="give both self_refresh_vdd_mw"):
        load_dram(str(half))
