"""Residual shortcuts in the memory model: held on chip (or spilled) from the block input to
the add, read by the add, placed and given errors like every stored tensor."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hw_models import ConfigError, LayerTable
from hw_models.dram import load_dram
from hw_models.partitions import named_placement
from hw_models.system import DramSetting, system_cost
from hw_models.traffic import (
    LEVEL_DRAM,
    LEVEL_L1,
    LEVEL_L2,
    dram_tensors,
    layer_traffic,
    placed_activations,
    working_set_elements,
)

# identity block: 32 x 79 x 79 = 199712 elements (= bytes, 8-bit containers) per tensor;
# two fit the 512 kB L2, three do not
T_ID = 32 * 79 * 79
IDENTITY = [
    dict(name="stem", kind="conv", cin=4, cout=32, kx=3, ky=3, ox=79, oy=79),
    dict(name="conv1", kind="conv", cin=32, cout=32, kx=3, ky=3, ox=79, oy=79),
    dict(name="conv2", kind="conv", cin=32, cout=32, kx=3, ky=3, ox=79, oy=79,
         shortcut_tensor=1),  # the add reads the block input, the tensor conv1 reads
    dict(name="fc", kind="linear", cin=32, cout=10, kx=1, ky=1, ox=1, oy=1),
]

# downsample block: the block input is 32 x 96 x 96 = 294912 elements; conv1, conv2 and the
# 1x1 stride-2 shortcut conv output 64 x 48 x 48 = 147456 (half of it)
T_IN = 32 * 96 * 96
T_OUT = 64 * 48 * 48
DOWNSAMPLE = [
    dict(name="stem", kind="conv", cin=4, cout=32, kx=3, ky=3, ox=96, oy=96),
    dict(name="conv1", kind="conv", cin=32, cout=64, kx=3, ky=3, ox=48, oy=48, stride=2),
    dict(name="conv2", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=48, oy=48,
         shortcut_tensor=3),  # the add reads the shortcut conv's output
    dict(name="shortcut", kind="conv", cin=32, cout=64, kx=1, ky=1, ox=48, oy=48, stride=2,
         input_tensor=1),
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


@pytest.fixture
def streaming(soc):
    """Weights streamed: the whole L2 (512 kB) is left to activations."""
    memory = dataclasses.replace(soc.memory, weights_resident=False)
    assert memory.l1_activation_bytes < 2 * T_ID <= memory.l2_bytes < 3 * T_ID
    assert 1.5 * T_IN <= memory.l2_bytes < 2 * T_IN
    return dataclasses.replace(soc, memory=memory)


def without_shortcuts(records):
    return LayerTable.from_records([{k: v for k, v in r.items() if k != "shortcut_tensor"}
                                    for r in records])


def test_a_table_without_the_column_has_no_adds_and_keeps_its_traffic(streaming):
    table = without_shortcuts(IDENTITY)
    assert (table.shortcut_tensor == -1).all()
    traffic = layer_traffic(table, streaming, np.zeros(4, dtype=np.int64))
    assert list(traffic.level) == [LEVEL_L1, LEVEL_L2, LEVEL_L2, LEVEL_L1]
    assert not traffic.tensor_in_dram.any() and traffic.total_bytes.sum() == \
        traffic.weight_read_bytes.sum()
    assert (traffic.shortcut_read_bytes == 0).all() and (traffic.shortcut_write_bytes == 0).all()


def test_identity_shortcut_is_held_to_the_add_and_read_by_it(streaming):
    """conv2 holds its input, its output and the block input: 3 x 199712 bytes, over L2, so
    it spills; the block input then lives in DRAM: the stem writes it once, conv1 reads it
    and conv2's add reads it again."""
    table = LayerTable.from_records(IDENTITY)
    assert list(working_set_elements(table)) == [4 * 79 * 79 + T_ID, 2 * T_ID, 3 * T_ID,
                                                  32 + 10]
    traffic = layer_traffic(table, streaming, np.zeros(4, dtype=np.int64))
    assert list(traffic.level) == [LEVEL_L1, LEVEL_L2, LEVEL_DRAM, LEVEL_L1]
    assert list(traffic.tensor_in_dram) == [False, True, True, True]
    assert list(traffic.activation_write_bytes) == [T_ID, T_ID, 32, 0]
    assert list(traffic.activation_read_bytes) == [0, T_ID, T_ID, 32]
    assert list(traffic.shortcut_in_dram) == [False, False, True, False]
    assert list(traffic.shortcut_read_bytes) == [0, 0, T_ID, 0]
    assert (traffic.shortcut_write_bytes == 0).all()  # it is the block input, written once


def test_downsample_shortcut_is_written_held_and_read(streaming):
    """The shortcut conv's output (147456 bytes) is held through conv1, whose input and
    output (442368 bytes) then no longer fit L2: conv1 spills, so the shortcut lives in
    DRAM: the shortcut conv writes it, conv2's add reads it."""
    table = LayerTable.from_records(DOWNSAMPLE)
    assert list(table.shortcut_writers()) == [False, False, False, True, False]
    assert list(working_set_elements(table)) == [
        4 * 96 * 96 + T_IN, T_IN + 2 * T_OUT, 3 * T_OUT, T_IN + T_OUT, 64 + 10]
    traffic = layer_traffic(table, streaming, np.zeros(5, dtype=np.int64))
    assert list(traffic.level) == [LEVEL_L2, LEVEL_DRAM, LEVEL_L2, LEVEL_L2, LEVEL_L1]
    assert list(traffic.shortcut_slot_in_dram) == [False, False, False, True, False]
    assert list(traffic.shortcut_write_bytes) == [0, 0, 0, T_OUT, 0]
    assert list(traffic.shortcut_read_bytes) == [0, 0, T_OUT, 0, 0]
    assert list(traffic.shortcut_in_dram) == [False, False, True, False, False]
    # the block input: conv1 spills, so it is in DRAM for both its readers
    assert list(traffic.input_in_dram) == [False, True, True, True, False]
    # the shortcut is placed with the block input (one placement parameter for both)
    assert list(placed_activations(table, traffic)) == [False, True, True, False, False]
    assert list(dram_tensors(table, streaming).activations) == [
        False, True, True, False, False]
    # without the add the shortcut conv's output is not stored and conv1 stays in L2
    plain = layer_traffic(without_shortcuts(DOWNSAMPLE), streaming, np.zeros(5, np.int64))
    assert plain.level[1] == LEVEL_L2 and plain.total_bytes.sum() < traffic.total_bytes.sum()


def test_shortcut_traffic_costs_dram_energy_and_gets_its_partition_ber(streaming):
    lpddr4 = load_dram("lpddr4-3200")
    with_add = LayerTable.from_records(DOWNSAMPLE)
    plain = without_shortcuts(DOWNSAMPLE)
    costs = {}
    for name, table in (("add", with_add), ("plain", plain)):
        placement = named_placement("activations-approximate", table, lpddr4, "B", vdd_v=0.9)
        costs[name] = system_cost(table, streaming, np.zeros(5, dtype=np.int64),
                                  DramSetting(lpddr4, "B", placement))
    cost = costs["add"]
    assert cost.shortcut_ber is not None and costs["plain"].shortcut_ber is not None
    assert cost.shortcut_ber[2] > 0 and cost.shortcut_ber[2] == cost.activation_ber[1]
    assert (np.delete(cost.shortcut_ber, 2) == 0).all()
    assert (costs["plain"].shortcut_ber == 0).all()
    # the shortcut's write (shortcut conv) and read (conv2's add) cost DRAM energy there
    assert cost.dram_energy_j[3] > costs["plain"].dram_energy_j[3]
    assert cost.dram_energy_j[2] > costs["plain"].dram_energy_j[2]


@pytest.mark.parametrize("shortcut_tensor", [
    4,    # a later layer's input tensor (fc)
    9,    # no such layer
    -2,   # no such layer
    0,    # the network input: 4 x 96 x 96, not the add's size
    1,    # the block input: 32 x 96 x 96, not the add's size (it needs the shortcut conv)
])
def test_bad_shortcut_columns_are_config_errors(shortcut_tensor):
    records = [dict(r) for r in DOWNSAMPLE]
    records[2]["shortcut_tensor"] = shortcut_tensor
    with pytest.raises(ConfigError, match="shortcut_tensor"):
        LayerTable.from_records(records)
