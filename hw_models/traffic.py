"""DRAM traffic per layer through the memory hierarchy L1 -> L2 -> DRAM.

Modelling assumptions (docs/model.md, "Approximate DRAM"):

* **Weights** (int8 for digital output channels, 2-bit ternary codes for analog ones) stay in
  L2 when the whole model's stored weights fit it and the SoC preset says
  ``weights_resident = "auto"``: they are loaded once at start-up, with the DRAM at its nominal
  point, so they cause no per-inference traffic and see no DRAM error. Otherwise every layer
  streams its weights from DRAM every inference.
* **Activations** (7-bit values in 8-bit containers): a layer whose input plus output fit L1
  runs there; else in the L2 left by resident weights; else its tensors go through DRAM.
* **Stored tensors**: the input of a layer is one stored tensor, read by every layer that takes
  it (a block's first conv and its shortcut conv) and written once, by the layer that runs just
  before its first reader (the add or pooling between them is fused into that layer). A tensor
  lives in DRAM when its writer or any reader spills to DRAM: then the writer's bytes go to
  DRAM once and every reader reads that same copy. The network input arrives from the host
  and is never in DRAM; the last layer's output (the class scores) goes back to it.
* **Residual shortcuts** (``LayerTable.shortcut_tensor``): a block's add runs in the output
  stage of its conv2 and reads the stored shortcut. An identity block's shortcut is the block
  input: it stays where it is from its first reader (conv1) to the add, so it counts in the
  working set of every layer after conv1 up to the add, and the add is one more reader. A
  downsample block's shortcut conv runs first (its place in the table is the float model's
  call order; only the attribution of its bytes to rows depends on it): its output is written
  and held through the block's main path (from conv1 to the add, counted in their working
  sets), then read by the add. A shortcut lives in DRAM when its writer, a layer it is held
  through or the add spills; then it is written (downsample: by the shortcut conv) and read
  by the add from DRAM. A downsample shortcut is placed in the partition of the tensor it is
  computed from (the block input: one placement for both).

Tensors are numbered by their first reader in table order (``LayerTable.input_tensor``); a
downsample shortcut by its writer (``LayerTable.shortcut_writers``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from hw_models.layer_table import LayerTable
from hw_models.soc import Soc

LEVEL_L1, LEVEL_L2, LEVEL_DRAM = 1, 2, 3
LEVEL_NAMES = {LEVEL_L1: "L1", LEVEL_L2: "L2", LEVEL_DRAM: "DRAM"}


@dataclass(frozen=True)
class LayerTraffic:
    """Bytes moved per inference and where things live; every array has the mapping's shape
    (n_layers,) or (n_candidates, n_layers).

    Attributes:
        weight_read_bytes: weights read from DRAM (0 when resident).
        activation_read_bytes: the layer's input read from DRAM.
        activation_write_bytes: the tensor the layer writes to DRAM (the next tensor's bytes).
        weights_resident: whether the weights are in L2 (the same for every layer).
        level: where the layer's working set (input + output) lives: ``LEVEL_L1``,
            ``LEVEL_L2`` or ``LEVEL_DRAM``.
        tensor_in_dram: per tensor (indexed by its first reader): whether it is in DRAM;
            False at indices that are not a tensor's first reader.
        input_in_dram: whether the layer reads its input from DRAM.
        shortcut_read_bytes: the stored shortcut the layer's residual add reads from DRAM.
        shortcut_write_bytes: a shortcut conv's output written to DRAM (downsample block).
        shortcut_in_dram: whether the shortcut the layer's add reads is in DRAM (False for
            layers without an add).
        shortcut_slot_in_dram: per downsample shortcut (indexed by its writer): whether it
            is in DRAM; False elsewhere.
    """

    weight_read_bytes: np.ndarray
    activation_read_bytes: np.ndarray
    activation_write_bytes: np.ndarray
    weights_resident: np.ndarray
    level: np.ndarray
    tensor_in_dram: np.ndarray
    input_in_dram: np.ndarray
    shortcut_read_bytes: np.ndarray
    shortcut_write_bytes: np.ndarray
    shortcut_in_dram: np.ndarray
    shortcut_slot_in_dram: np.ndarray

    @property
    def total_bytes(self) -> np.ndarray:
        return (self.weight_read_bytes + self.activation_read_bytes + self.activation_write_bytes
                + self.shortcut_read_bytes + self.shortcut_write_bytes)


def weight_bytes(table: LayerTable, soc: Soc, n_analog: np.ndarray) -> np.ndarray:
    """Stored weight bytes per layer for a mapping, shape of ``n_analog``."""
    weights_per_channel = table.weights / table.cout  # (n_layers,)
    digital_bits = (table.cout - n_analog) * weights_per_channel * soc.digital.weight_bits
    analog_bits = n_analog * weights_per_channel * soc.analog.weight_bits
    return (digital_bits + analog_bits) / 8


def activation_bytes_per_element(soc: Soc) -> float:
    return soc.memory.activation_container_bits / 8


def tensor_bytes(table: LayerTable, soc: Soc) -> np.ndarray:
    """Bytes of each stored tensor (indexed by its first reader), shape (n_layers,)."""
    return table.input_elements * activation_bytes_per_element(soc)


def shortcut_bytes(table: LayerTable, soc: Soc) -> np.ndarray:
    """Bytes of the stored shortcut each layer's residual add reads (0 without an add),
    shape (n_layers,): the layer's output size."""
    return np.where(table.shortcut_tensor >= 0, table.output_elements, 0) \
        * activation_bytes_per_element(soc)


def shortcut_partition_slot(table: LayerTable) -> np.ndarray:
    """Per layer: the layer whose ``activation_partition`` is the partition of the shortcut
    its add reads (the tensor's first reader, or the shortcut conv, which reads the block
    input: a downsample shortcut is placed with the tensor it is computed from); 0 without
    an add."""
    return np.maximum(table.shortcut_tensor, 0)


@dataclass(frozen=True)
class _Lifetimes:
    """Where each stored tensor lives, from the table alone (cached per table).

    Attributes:
        working_set: (n_layers,) activation elements each layer needs on chip.
        tensor_users: (layer, tensor) 1.0 where the layer reads the tensor (indexed by its
            first reader) or holds it for an identity block's add.
        tensor_mask: (n_layers,) the indices that name a tensor (first readers, not the
            network input).
        shortcut_users: (layer, slot) 1.0 where the layer writes a downsample shortcut,
            holds it or is its add.
        written_add: (n_layers,) layers whose add reads a downsample shortcut.
    """

    working_set: np.ndarray
    tensor_users: np.ndarray
    tensor_mask: np.ndarray
    shortcut_users: np.ndarray
    written_add: np.ndarray


_LIFETIMES: dict[int, tuple[weakref.ref, _Lifetimes]] = {}


def _lifetimes(table: LayerTable) -> _Lifetimes:
    known = _LIFETIMES.get(id(table))
    if known is not None and known[0]() is table:
        return known[1]
    n = table.n_layers
    working_set = (table.input_elements + table.output_elements).astype(np.int64)
    tensor_users = (table.input_tensor[:, None] == np.arange(n)[None, :]).astype(float)
    shortcut_users = np.zeros((n, n))
    written_add = np.zeros(n, dtype=bool)
    for add, slot in enumerate(int(t) for t in table.shortcut_tensor):
        if slot < 0:
            continue
        if table.input_tensor[slot] != slot:  # a downsample shortcut: written, held, read
            written_add[add] = True
            held = range(int(table.input_tensor[slot]), add + 1)  # conv1 .. the add
            shortcut_users[[slot, *held], slot] = 1.0
            working_set[list(held)] += table.output_elements[add]
            continue
        for layer in range(slot + 1, add + 1):  # the block input, after conv1 .. the add
            if table.input_tensor[layer] != slot:
                working_set[layer] += table.output_elements[add]
            tensor_users[layer, slot] = 1.0
    first_reader = table.input_tensor == np.arange(n)
    lifetimes = _Lifetimes(working_set, tensor_users, first_reader & (np.arange(n) > 0),
                           shortcut_users, written_add)
    _LIFETIMES[id(table)] = (weakref.ref(table), lifetimes)
    for key in [k for k, (ref, _) in _LIFETIMES.items() if ref() is None]:
        del _LIFETIMES[key]
    return lifetimes


def layer_traffic(table: LayerTable, soc: Soc, n_analog: np.ndarray) -> LayerTraffic:
    """DRAM bytes per layer and inference for the mapping ``n_analog`` (n_layers,) or
    (n_candidates, n_layers)."""
    n_analog = np.asarray(n_analog)
    stored = weight_bytes(table, soc, n_analog)
    total = stored.sum(axis=-1, keepdims=True)
    resident = (soc.memory.weights_resident == "auto") & (total <= soc.memory.l2_bytes)
    l2_free = soc.memory.l2_bytes - np.where(resident, total, 0.0)
    level = _levels(table, soc, l2_free)
    spills = level == LEVEL_DRAM
    tensor_in_dram = _tensors_in_dram(table, spills)
    slot_in_dram = _shortcut_slots_in_dram(table, spills)
    input_in_dram = np.take(tensor_in_dram, table.input_tensor, axis=-1)
    size = tensor_bytes(table, soc)
    written = np.concatenate([tensor_in_dram[..., 1:] * size[1:],
                              np.zeros(tensor_in_dram.shape[:-1] + (1,))], axis=-1)
    # the add reads its shortcut from DRAM when it lives there (identity: the block input)
    slot = shortcut_partition_slot(table)
    has_add = table.shortcut_tensor >= 0
    shortcut_in_dram = has_add & (np.take(tensor_in_dram, slot, axis=-1)
                                  | np.take(slot_in_dram, slot, axis=-1))
    add_bytes = shortcut_bytes(table, soc)
    written_add = _lifetimes(table).written_add  # downsample blocks
    writer_bytes = np.zeros(table.n_layers)
    writer_bytes[slot[written_add]] = add_bytes[written_add]
    return LayerTraffic(
        weight_read_bytes=np.where(resident, 0.0, stored),
        activation_read_bytes=np.where(input_in_dram, table.input_elements
                                       * activation_bytes_per_element(soc), 0.0),
        activation_write_bytes=written,
        weights_resident=np.broadcast_to(resident, stored.shape),
        level=level,
        tensor_in_dram=tensor_in_dram,
        input_in_dram=input_in_dram,
        shortcut_read_bytes=np.where(shortcut_in_dram, add_bytes, 0.0),
        shortcut_write_bytes=np.where(slot_in_dram, writer_bytes, 0.0),
        shortcut_in_dram=shortcut_in_dram,
        shortcut_slot_in_dram=slot_in_dram,
    )


def placed_activations(table: LayerTable, traffic: LayerTraffic) -> np.ndarray:
    """Per tensor (its first reader): whether it, or a downsample shortcut computed from it
    (placed with it), is in DRAM; the placement unit of ``activations/<layer>``."""
    placed = np.array(traffic.tensor_in_dram, dtype=bool, copy=True)
    writers = np.flatnonzero(traffic.shortcut_slot_in_dram)
    placed[table.input_tensor[writers]] = True
    return placed


def working_set_elements(table: LayerTable) -> np.ndarray:
    """Activation elements a layer needs on chip while it runs, shape (n_layers,): its input
    and output, and every stored shortcut held through it or read by its add."""
    return _lifetimes(table).working_set.copy()


def _levels(table: LayerTable, soc: Soc, l2_free_bytes: np.ndarray | float) -> np.ndarray:
    working_set = _lifetimes(table).working_set * activation_bytes_per_element(soc)
    return np.where(working_set <= soc.memory.l1_activation_bytes, LEVEL_L1,
                    np.where(working_set <= l2_free_bytes, LEVEL_L2, LEVEL_DRAM))


def _tensors_in_dram(table: LayerTable, spills: np.ndarray) -> np.ndarray:
    """Per tensor: some reader spills to DRAM, or its writer (the layer before its first
    reader) does, or (an identity block's input) a layer it is held through up to the add.
    ``spills``: (..., n_layers) bool."""
    lifetimes = _lifetimes(table)
    used_in_dram = (spills.astype(float) @ lifetimes.tensor_users) > 0
    writer_spills = np.concatenate([np.zeros(spills.shape[:-1] + (1,), dtype=bool),
                                    spills[..., :-1]], axis=-1)
    return (used_in_dram | writer_spills) & lifetimes.tensor_mask


def _shortcut_slots_in_dram(table: LayerTable, spills: np.ndarray) -> np.ndarray:
    """Per downsample shortcut (indexed by its writer): its writer, a layer it is held
    through or its add spills to DRAM. ``spills``: (..., n_layers) bool."""
    return (spills.astype(float) @ _lifetimes(table).shortcut_users) > 0


@dataclass(frozen=True)
class DramTensors:
    """What may live in DRAM for some mapping: the design space's placement parameters.

    Attributes:
        weights: (n_layers,) whether the layer's weights may stream from DRAM.
        activations: (n_layers,) per tensor (its first reader): whether it, or a downsample
            shortcut computed from it (placed with it), may be in DRAM.
    """

    weights: np.ndarray
    activations: np.ndarray


def dram_tensors(table: LayerTable, soc: Soc) -> DramTensors:
    """The tensors that live in DRAM for at least one mapping (a superset when residency
    depends on the mapping: the L2 left for activations is then taken as empty)."""
    digital = weight_bytes(table, soc, np.zeros(table.n_layers)).sum()
    capable = np.where(table.analog_capable, table.cout, 0)
    smallest = weight_bytes(table, soc, capable).sum()
    l2 = soc.memory.l2_bytes
    auto = soc.memory.weights_resident == "auto"
    may_stream = not auto or digital > l2
    if not auto or smallest > l2:
        l2_free: float = l2               # never resident
    elif digital <= l2:
        l2_free = l2 - digital            # always resident: the all-digital weights fill most
    else:
        l2_free = 0.0                     # resident for some mappings only
    spills = _levels(table, soc, l2_free) == LEVEL_DRAM
    activations = _tensors_in_dram(table, spills)
    # a downsample shortcut is placed with the tensor it is computed from (its writer's input)
    writers = np.flatnonzero(_shortcut_slots_in_dram(table, spills))
    activations[table.input_tensor[writers]] = True
    return DramTensors(np.full(table.n_layers, may_stream), activations)
