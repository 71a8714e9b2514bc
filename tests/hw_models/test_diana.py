"""DIANA compute model: reference numbers, hand-computed layers, batching, properties."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import one_layer

from hw_models import ConfigError, LayerTable, compute_cost
from hw_models.diana import ox_unroll
from hw_models.mapping import all_analog

F_HZ = 260e6
MVM_CYCLES = 70e-9 * F_HZ  # 18.2 cycles per array evaluation


def test_resnet20_all_digital_reference(resnet20_table, soc):
    assert resnet20_table.n_layers == 22
    cost = compute_cost(resnet20_table, soc, np.zeros(22, dtype=int))
    assert cost.total_latency_cycles() == pytest.approx(257_673.25, rel=1e-12)
    assert cost.total_latency_s() == pytest.approx(257_673.25 / F_HZ, rel=1e-12)
    assert cost.total_latency_s() * 1e3 == pytest.approx(0.9911, abs=5e-5)
    assert cost.total_energy_j() == pytest.approx(257_673.25 / F_HZ * 24.96e-3, rel=1e-12)
    assert cost.total_energy_j() * 1e6 == pytest.approx(24.74, abs=5e-3)


def test_resnet20_all_analog_reference(resnet20_table, soc):
    cost = compute_cost(resnet20_table, soc, all_analog(resnet20_table, soc))
    assert cost.total_latency_cycles() == pytest.approx(88_120.675, rel=1e-12)  # 88,120.7
    assert cost.total_latency_s() * 1e3 == pytest.approx(0.3389, abs=5e-5)
    assert cost.total_energy_j() * 1e6 == pytest.approx(9.741, abs=5e-4)
    # all analog: no overlap, so energy is P_ana x time exactly
    assert cost.total_energy_j() == pytest.approx(cost.total_latency_s() * 28.74e-3, rel=1e-12)


def test_digital_layer_by_hand(soc):
    # 16 -> 16, 3x3, 32x32 output: ceil(16/16) * 16 * ceil(32/16) * 32 * 9 + 32*32*(16+16)/8
    table = one_layer(cin=16, cout=16, kx=3, ky=3, ox=32, oy=32)
    cost = compute_cost(table, soc, np.array([0]))
    assert cost.digital_cycles[0] == 9216 + 4096
    assert cost.analog_cycles[0] == 0
    assert cost.energy_j[0] == pytest.approx(13312 / F_HZ * 24.96e-3, rel=1e-12)


def test_digital_partial_pe_row_and_odd_width(soc):
    # 17 digital channels need 2 PE passes; ox = 17 needs 2 pixel tiles
    table = one_layer(cin=8, cout=20, kx=1, ky=1, ox=17, oy=3)
    cost = compute_cost(table, soc, np.array([3]))
    compute = 2 * 8 * 2 * 3 * 1 * 1
    load_store = 17 * 3 * (17 + 8) / 8
    assert cost.digital_cycles[0] == pytest.approx(compute + load_store, rel=1e-12)


def test_depthwise_digital_by_hand(soc):
    table = LayerTable.from_records([dict(name="dw", kind="depthwise", cin=8, cout=8, kx=3,
                                           ky=3, ox=48, oy=48, groups=8)])
    cost = compute_cost(table, soc, np.array([0]))
    # ceil((8/8)/16) = 1 -> 1 * 8 * ceil(48/16) * 48 * 9 + 48*48*(8+8)/8
    assert cost.digital_cycles[0] == 8 * 3 * 48 * 9 + 48 * 48 * 2


def test_analog_layer_by_hand_unroll_4(soc):
    # (3 + u - 1) * max(64, 16) * 3 <= 1152 -> u <= 4; n_mvm = 1 * 1 * 1024 / 4
    table = one_layer(cin=16, cout=16, kx=3, ky=3, ox=32, oy=32)
    cost = compute_cost(table, soc, np.array([16]))
    assert cost.analog_cycles[0] == pytest.approx(256 * MVM_CYCLES + 8 * 16 * 9, rel=1e-12)
    assert cost.digital_cycles[0] == 0
    assert cost.energy_j[0] == pytest.approx(cost.analog_cycles[0] / F_HZ * 28.74e-3)


@pytest.mark.parametrize("cin, cout_analog, kx, expected_unroll", [
    (64, 64, 1, 8),    # (1 + 7) * 64 = 512 rows, 64 * 8 = 512 columns: both fit
    (64, 65, 1, 4),    # 65 * 8 > 512 columns
    (64, 200, 1, 2),   # 200 * 4 > 512, 200 * 2 <= 512
    (64, 300, 1, 1),   # 300 * 2 > 512
    (128, 16, 3, 1),   # (3 + 1) * 128 * 3 > 1152 rows for u = 2
    (512, 16, 3, 1),   # nothing fits at all: falls back to 1
    (16, 16, 3, 4),    # cin below 64 counts as 64: (3 + 3) * 64 * 3 = 1152
    (8, 1, 5, 1),      # 5x5: 5 * 64 * 5 = 1600 rows > 1152 even for u = 1: falls back to 1
])
def test_ox_unroll_cases(soc, cin, cout_analog, kx, expected_unroll):
    unroll = ox_unroll(np.array(cout_analog), cin, kx, kx, soc.analog)
    assert unroll == expected_unroll


def test_analog_more_than_512_channels_and_128_inputs(soc):
    # 600 analog outputs need 2 column blocks; 200 inputs need 2 row blocks; u = 1
    table = one_layer(cin=200, cout=600, kx=1, ky=1, ox=4, oy=4)
    cost = compute_cost(table, soc, np.array([600]))
    assert cost.analog_cycles[0] == pytest.approx(2 * 2 * 16 * MVM_CYCLES + 8 * 200, rel=1e-12)


def test_split_layer_runs_in_parallel(soc):
    table = one_layer(cin=16, cout=32, kx=3, ky=3, ox=16, oy=16)
    cost = compute_cost(table, soc, np.array([16]))
    t_d, t_a = cost.digital_cycles[0], cost.analog_cycles[0]
    assert t_d > 0 and t_a > 0
    assert cost.latency_cycles[0] == max(t_d, t_a)
    overlap = min(t_d, t_a)
    expected_mw_cycles = 42.39 * overlap + 28.74 * (t_a - overlap) + 24.96 * (t_d - overlap)
    assert cost.energy_j[0] == pytest.approx(expected_mw_cycles * 1e-3 / F_HZ, rel=1e-12)


def test_batch_equals_one_by_one(resnet20_table, soc):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, resnet20_table.cout + 1, size=(50, resnet20_table.n_layers))
    together = compute_cost(resnet20_table, soc, batch)
    for i, candidate in enumerate(batch):
        alone = compute_cost(resnet20_table, soc, candidate)
        np.testing.assert_array_equal(together.latency_cycles[i], alone.latency_cycles)
        np.testing.assert_array_equal(together.energy_j[i], alone.energy_j)
        assert together.total_energy_j()[i] == alone.total_energy_j()


def test_costs_non_negative_and_bounded_by_single_core(resnet20_table, soc):
    rng = np.random.default_rng(1)
    batch = rng.integers(0, resnet20_table.cout + 1, size=(500, resnet20_table.n_layers))
    cost = compute_cost(resnet20_table, soc, batch)
    for array in (cost.digital_cycles, cost.analog_cycles, cost.latency_cycles, cost.energy_j):
        assert (array >= 0).all()
    assert (cost.latency_cycles > 0).all()  # every layer has some channels somewhere
    # parallel energy never exceeds running the two cores one after the other
    sequential_j = (cost.digital_cycles * 24.96e-3 + cost.analog_cycles * 28.74e-3) / F_HZ
    assert (cost.energy_j <= sequential_j + 1e-18).all()


@pytest.mark.parametrize("bad, message", [
    (np.full(22, 17), "n_analog must be in"),
    (np.full(22, -1), "n_analog must be in"),
    (np.zeros(21, dtype=int), "shape"),
    (np.zeros(22) + 0.5, "integers"),
])
def test_bad_mappings_rejected(resnet20_table, soc, bad, message):
    with pytest.raises(ConfigError, match=message):
        compute_cost(resnet20_table, soc, bad)


def test_depthwise_cannot_go_analog(soc):
    table = LayerTable.from_records([dict(name="dw", kind="depthwise", cin=8, cout=8, kx=3,
                                          ky=3, ox=4, oy=4, groups=8)])
    with pytest.raises(ConfigError, match="depthwise"):
        compute_cost(table, soc, np.array([1]))


def test_non_square_kernel_unrolls_along_x(soc):
    # (kx + u - 1) * 64 * ky <= 1152: a 1x3 (kx=1, ky=3) kernel allows u = 4, a 3x1 one u = 8
    tall = one_layer(cin=64, cout=64, kx=1, ky=3, ox=8, oy=8)
    wide = one_layer(cin=64, cout=64, kx=3, ky=1, ox=8, oy=8)
    tall_cost = compute_cost(tall, soc, np.array([64])).analog_cycles[0]
    wide_cost = compute_cost(wide, soc, np.array([64])).analog_cycles[0]
    assert tall_cost == pytest.approx(64 / 4 * MVM_CYCLES + 8 * 64 * 3, rel=1e-12)
    assert wide_cost == pytest.approx(64 / 8 * MVM_CYCLES + 8 * 64 * 3, rel=1e-12)


def test_kind_must_agree_with_groups():
    with pytest.raises(ConfigError, match="contradicts groups"):
        LayerTable.from_records([dict(name="x", kind="depthwise", cin=8, cout=8, kx=3, ky=3,
                                      ox=4, oy=4)])
    with pytest.raises(ConfigError, match="contradicts groups"):
        LayerTable.from_records([dict(name="x", kind="conv", cin=8, cout=8, kx=3, ky=3,
                                      ox=4, oy=4, groups=8)])
