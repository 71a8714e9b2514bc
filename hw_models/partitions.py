"""DRAM partitions and the placement of each tensor in them.

A partition is a whole number of the device's partition units (``partition.unit`` in the
preset: a bank on the shipped presets) with its own operating point (VDD, tRCD) and its own
share of the background power. Tensors are ``weights/<layer>`` (the layer's stored weights,
when they stream from DRAM) and ``activations/<layer>`` (the stored tensor the layer reads,
``LayerTable.input_tensor``: a block's first conv and its shortcut name one tensor). A
placement assigns every tensor to one partition.

Layouts:

* ``whole-device``: one partition, the whole device at the ``--vdd`` / ``--trcd`` point
  (EDEN's coarse mode: what a BIOS sets, and the only layout today's devices have);
* ``all-approximate``, ``weights-approximate``, ``activations-approximate``, ``all-nominal``:
  two partitions of half the device's units, ``nominal`` and ``approximate`` (the ``--vdd`` /
  ``--trcd`` point), the name saying which tensors go to the second;
* N partitions of equal size (``even_partitions``), the design space of ``dse search
  --partitions N``: each with its own point;
* a partition file (JSON)::

    {"partitions": [{"name": "safe", "capacity_bytes": 402653184},
                    {"name": "fast", "capacity_bytes": 402653184, "vdd_v": 0.95, "trcd_ns": 15}],
     "default": "safe",
     "tensors": {"weights/blocks.0.conv1.conv": "fast"}}

  (``vdd_v`` / ``trcd_ns`` default to nominal; capacities are whole partition units; tensors
  not listed go to ``default``, or the first partition.)

Every partition but the fine-grained ones of EDEN's assumption exists on real parts only as
``whole-device``; the presets' ``partition.unit`` source says why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hw_models.dram import DEFAULT_BER_QUANTILE, DramDevice, check_operating_point
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable

WHOLE_DEVICE = "whole-device"
HALF_LAYOUTS = ("all-approximate", "weights-approximate", "activations-approximate",
                "all-nominal")
LAYOUTS = (WHOLE_DEVICE, *HALF_LAYOUTS)


@dataclass(frozen=True)
class Partition:
    name: str
    capacity_bytes: int
    vdd_v: float
    trcd_ns: float


@dataclass(frozen=True)
class Placement:
    """Partitions and, per layer, the partition index of its weights and its activations.

    Attributes:
        partitions: the device's partitions (their capacities sum to at most the device's).
        weight_partition: shape (n_layers,), index into ``partitions``.
        activation_partition: shape (n_layers,), index into ``partitions`` of the tensor
            each layer reads (equal for the readers of one tensor).
        layout: the layout name or the file it came from.
    """

    partitions: tuple[Partition, ...]
    weight_partition: np.ndarray
    activation_partition: np.ndarray
    layout: str

    def column(self, field: str) -> np.ndarray:
        """One field of every partition, shape (n_partitions,)."""
        return np.array([getattr(p, field) for p in self.partitions], dtype=float)


def named_placement(layout: str, table: LayerTable, device: DramDevice, vendor: str, *,
                    vdd_v: float | None = None, trcd_ns: float | None = None,
                    quantile: str = DEFAULT_BER_QUANTILE) -> Placement:
    """``whole-device`` at (vdd_v, trcd_ns), or two half-device partitions, the second at
    (vdd_v, trcd_ns), tensors per ``layout``; VDD at or above the usable floor of the
    ``quantile`` BER."""
    if layout not in LAYOUTS:
        raise ConfigError(f"partitions '{layout}' is neither a layout ({', '.join(LAYOUTS)}) "
                          "nor an existing JSON file")
    vdd_v = device.vdd_nominal_v if vdd_v is None else vdd_v
    trcd_ns = device.trcd_nominal_ns if trcd_ns is None else trcd_ns
    check_operating_point(device, vendor, vdd_v, trcd_ns, quantile)
    zeros = np.zeros(table.n_layers, dtype=np.int64)
    if layout == WHOLE_DEVICE:
        whole = Partition("whole-device", device.capacity_bytes, vdd_v, trcd_ns)
        return Placement((whole,), zeros, zeros.copy(), layout)
    if device.partition_units < 2:
        raise ConfigError(f"layout '{layout}' needs two partitions; DRAM '{device.name}' has "
                          f"one {device.partition_unit} (use {WHOLE_DEVICE})")
    half = device.partition_units // 2 * device.unit_bytes
    partitions = (Partition("nominal", half, device.vdd_nominal_v, device.trcd_nominal_ns),
                  Partition("approximate", half, vdd_v, trcd_ns))
    weights_approx = layout in ("all-approximate", "weights-approximate")
    activations_approx = layout in ("all-approximate", "activations-approximate")
    return Placement(partitions, zeros + int(weights_approx), zeros + int(activations_approx),
                     layout)


def check_partition_count(device: DramDevice, count: int) -> None:
    """Raise ConfigError unless the device holds ``count`` equal partitions."""
    units = device.partition_units
    if count < 1 or count > units or units % count:
        divisors = [str(n) for n in range(1, units + 1) if units % n == 0]
        raise ConfigError(f"DRAM '{device.name}' cannot hold {count} equal partitions: it has "
                          f"{units} {device.partition_unit}s (choose {', '.join(divisors)}; 1 "
                          f"is {WHOLE_DEVICE})")


def even_partitions(device: DramDevice, points: Sequence[tuple[float, float]]
                    ) -> tuple[Partition, ...]:
    """``len(points)`` equal partitions, partition ``k`` at ``points[k]`` = (vdd_v, trcd_ns)."""
    check_partition_count(device, len(points))
    if len(points) == 1:
        return (Partition(WHOLE_DEVICE, device.capacity_bytes, *points[0]),)
    size = device.capacity_bytes // len(points)
    return tuple(Partition(f"p{k}", size, vdd_v, trcd_ns)
                 for k, (vdd_v, trcd_ns) in enumerate(points))


def placement_from_file(path: Path, table: LayerTable, device: DramDevice,
                        vendor: str, quantile: str = DEFAULT_BER_QUANTILE) -> Placement:
    """Read a partition file (see the module docstring); raise ConfigError on any fault."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read partitions file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("partitions"), list) \
            or not document["partitions"]:
        raise ConfigError(f"{path}: expected an object with a non-empty 'partitions' list")
    unknown = set(document) - {"partitions", "default", "tensors"}
    if unknown:
        raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}' (partitions, default, "
                          "tensors)")
    partitions = tuple(_partition(entry, device, vendor, quantile, path)
                       for entry in document["partitions"])
    if len(partitions) > device.partition_units:
        raise ConfigError(f"{path}: {len(partitions)} partitions, but DRAM '{device.name}' has "
                          f"{device.partition_units} {device.partition_unit}s")
    for partition in partitions:
        if partition.capacity_bytes % device.unit_bytes:
            raise ConfigError(f"{path}: partition '{partition.name}': capacity_bytes must be a "
                              f"whole number of {device.partition_unit}s "
                              f"({device.unit_bytes} bytes each)")
    names = [p.name for p in partitions]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: partition names must be unique")
    if sum(p.capacity_bytes for p in partitions) > device.capacity_bytes:
        raise ConfigError(f"{path}: partitions hold more than the device's "
                          f"{device.capacity_bytes} bytes")
    default = document.get("default", names[0])
    weight = np.full(table.n_layers, _index(default, names, path))
    activation = weight.copy()
    tensors = document.get("tensors", {})
    if not isinstance(tensors, dict):
        raise ConfigError(f"{path}: 'tensors' must map tensor names to partition names")
    named: dict[int, str] = {}
    for tensor, partition in tensors.items():
        kind, _, layer = str(tensor).partition("/")
        if kind not in ("weights", "activations") or layer not in table.name:
            raise ConfigError(f"{path}: unknown tensor '{tensor}' (use weights/<layer> or "
                              "activations/<layer> with a layer name from 'dse layers')")
        index = _index(partition, names, path)
        if kind == "weights":
            weight[table.index_of(layer)] = index
            continue
        stored = int(table.input_tensor[table.index_of(layer)])
        if stored in named and activation[stored] != index:
            raise ConfigError(f"{path}: '{tensor}' and '{named[stored]}' are one stored tensor "
                              "(the same input); give them one partition")
        named[stored] = str(tensor)
        activation[stored] = index
    return Placement(partitions, weight, activation[table.input_tensor], str(path))


def _partition(entry: Any, device: DramDevice, vendor: str, quantile: str,
               path: Path) -> Partition:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{path}: every partition needs a 'name'")
    unknown = set(entry) - {"name", "capacity_bytes", "vdd_v", "trcd_ns"}
    if unknown:
        raise ConfigError(f"{path}: partition '{entry['name']}': unknown key "
                          f"'{sorted(unknown)[0]}'")
    capacity = entry.get("capacity_bytes")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise ConfigError(f"{path}: partition '{entry['name']}': capacity_bytes must be a "
                          "positive integer")
    vdd_v = entry.get("vdd_v", device.vdd_nominal_v)
    trcd_ns = entry.get("trcd_ns", device.trcd_nominal_ns)
    for key, value in (("vdd_v", vdd_v), ("trcd_ns", trcd_ns)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: partition '{entry['name']}': {key} must be a number")
    check_operating_point(device, vendor, float(vdd_v), float(trcd_ns), quantile)
    return Partition(entry["name"], capacity, float(vdd_v), float(trcd_ns))


def _index(name: Any, names: list[str], path: Path) -> int:
    if name not in names:
        raise ConfigError(f"{path}: unknown partition '{name}' (partitions: {', '.join(names)})")
    return names.index(name)


def check_capacity(placement: Placement, weight_bytes: np.ndarray,
                   tensor_bytes: np.ndarray) -> None:
    """Raise ConfigError when the tensors placed in a partition exceed its capacity.

    Args:
        weight_bytes: shape (n_layers,), weight bytes per layer that live in DRAM.
        tensor_bytes: shape (n_layers,), bytes of each stored tensor in DRAM (indexed by its
            first reader; 0 elsewhere).
    """
    n_partitions = len(placement.partitions)
    used = (np.bincount(placement.weight_partition, weight_bytes, minlength=n_partitions)
            + np.bincount(placement.activation_partition, tensor_bytes,
                          minlength=n_partitions))
    for partition, used_bytes in zip(placement.partitions, used):
        if used_bytes > partition.capacity_bytes:
            raise ConfigError(f"partition '{partition.name}' holds {used_bytes:.0f} bytes of "
                              f"tensors, over its capacity of {partition.capacity_bytes} bytes")
