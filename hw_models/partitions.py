"""DRAM partitions and the placement of each tensor in them.

A partition is a share of the device with its own operating point (VDD, tRCD). Tensors are
``weights/<layer>`` (the layer's stored weights) and ``activations/<layer>`` (its spilled input
and output activations). A placement assigns every tensor to one partition.

Named layouts use two partitions of half the device each: ``nominal`` (nominal point) and
``approximate`` (the ``--vdd`` / ``--trcd`` point); ``all-nominal``, ``all-approximate``,
``weights-approximate`` and ``activations-approximate`` say which tensors go to the second.
A partition file (JSON) reads::

    {"partitions": [{"name": "safe", "capacity_bytes": 402653184},
                    {"name": "fast", "capacity_bytes": 402653184, "vdd_v": 0.95, "trcd_ns": 15}],
     "default": "safe",
     "tensors": {"weights/blocks.0.conv1.conv": "fast"}}

(``vdd_v`` / ``trcd_ns`` default to nominal; tensors not listed go to ``default``, or the first
partition.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hw_models.dram import DramDevice, check_operating_point
from hw_models.errors import ConfigError
from hw_models.workload import LayerTable

LAYOUTS = ("all-approximate", "weights-approximate", "activations-approximate", "all-nominal")


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
        activation_partition: shape (n_layers,), index into ``partitions``.
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
                    vdd_v: float | None = None, trcd_ns: float | None = None) -> Placement:
    """Two half-device partitions, the second at (vdd_v, trcd_ns), tensors per ``layout``."""
    if layout not in LAYOUTS:
        raise ConfigError(f"partitions '{layout}' is neither a layout ({', '.join(LAYOUTS)}) "
                          "nor an existing JSON file")
    vdd_v = device.vdd_nominal_v if vdd_v is None else vdd_v
    trcd_ns = device.trcd_nominal_ns if trcd_ns is None else trcd_ns
    check_operating_point(device, vendor, vdd_v, trcd_ns)
    half = device.capacity_bytes // 2
    partitions = (Partition("nominal", half, device.vdd_nominal_v, device.trcd_nominal_ns),
                  Partition("approximate", half, vdd_v, trcd_ns))
    weights_approx = layout in ("all-approximate", "weights-approximate")
    activations_approx = layout in ("all-approximate", "activations-approximate")
    ones = np.ones(table.n_layers, dtype=np.int64)
    return Placement(partitions, ones * int(weights_approx), ones * int(activations_approx),
                     layout)


def placement_from_file(path: Path, table: LayerTable, device: DramDevice,
                        vendor: str) -> Placement:
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
    partitions = tuple(_partition(entry, device, vendor, path) for entry in document["partitions"])
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
    for tensor, partition in tensors.items():
        kind, _, layer = str(tensor).partition("/")
        if kind not in ("weights", "activations") or layer not in table.name:
            raise ConfigError(f"{path}: unknown tensor '{tensor}' (use weights/<layer> or "
                              "activations/<layer> with a layer name from 'dse layers')")
        target = weight if kind == "weights" else activation
        target[table.index_of(layer)] = _index(partition, names, path)
    return Placement(partitions, weight, activation, str(path))


def _partition(entry: Any, device: DramDevice, vendor: str, path: Path) -> Partition:
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
    check_operating_point(device, vendor, float(vdd_v), float(trcd_ns))
    return Partition(entry["name"], capacity, float(vdd_v), float(trcd_ns))


def _index(name: Any, names: list[str], path: Path) -> int:
    if name not in names:
        raise ConfigError(f"{path}: unknown partition '{name}' (partitions: {', '.join(names)})")
    return names.index(name)


def check_capacity(placement: Placement, weight_bytes: np.ndarray,
                   activation_bytes: np.ndarray) -> None:
    """Raise ConfigError when the tensors placed in a partition exceed its capacity.

    Args:
        weight_bytes: shape (n_layers,), stored weight bytes per layer.
        activation_bytes: shape (n_layers,), stored activation bytes per spilled layer.
    """
    n_partitions = len(placement.partitions)
    used = (np.bincount(placement.weight_partition, weight_bytes, minlength=n_partitions)
            + np.bincount(placement.activation_partition, activation_bytes,
                          minlength=n_partitions))
    for partition, used_bytes in zip(placement.partitions, used):
        if used_bytes > partition.capacity_bytes:
            raise ConfigError(f"partition '{partition.name}' holds {used_bytes:.0f} bytes of "
                              f"tensors, over its capacity of {partition.capacity_bytes} bytes")
