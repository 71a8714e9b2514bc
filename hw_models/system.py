"""System cost: DIANA compute plus DRAM traffic, time and energy at an operating point.

Per layer (all arrays broadcast over a batch of mappings):

* DRAM time = bytes / bandwidth + rows opened x row-miss latency (tRCD + tCL + burst) of the
  partition holding the tensor; one row is opened per ``row_bytes`` streamed;
* latency = max(compute, DRAM) with double buffering (``overlap``), else their sum;
* DRAM energy = bytes x (VDD-domain energy per byte x (V / V_nom)^2 + I/O energy per byte)
  + rows x activation energy (VDD part scaled) + background: active standby while the DRAM
  transfers, precharge power-down for the rest of the layer, refresh throughout; background
  and refresh VDD parts scale with each partition's share of the capacity at its voltage;
* a DRAM that holds none of the inference's tensors (no DRAM traffic: weights resident,
  activations on chip) is idle throughout and costs what the SoC preset's
  ``memory.idle_dram`` says: active standby and refresh, precharge power-down and refresh
  (the default, the same as the rule above), the device's self-refresh power, or nothing
  ("off").

Compute energy is ODiMO's (active-mode SoC powers); SoC idle power while waiting on DRAM is not
modelled.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from hw_models.diana import ComputeCost, compute_cost
from hw_models.dram import (
    DEFAULT_BER_QUANTILE,
    DramDevice,
    ber_from_trcd,
    ber_from_vdd,
    combined_ber,
    energy_scale,
    row_miss_ns,
)
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.partitions import Placement, check_capacity
from hw_models.soc import Soc
from hw_models.traffic import (
    LayerTraffic,
    layer_traffic,
    shortcut_bytes,
    shortcut_partition_slot,
    tensor_bytes,
)


@dataclass(frozen=True)
class DramSetting:
    """Which device, which vendor's error curves and which DIMM of its population
    (``ber_quantile``: mean, median, p90, max), and where each tensor lives."""

    device: DramDevice
    vendor: str
    placement: Placement
    ber_quantile: str = DEFAULT_BER_QUANTILE


@dataclass(frozen=True)
class SystemCost:
    """Per-layer costs (shape of the mapping) of compute and DRAM together.

    Attributes:
        compute: the DIANA compute cost alone.
        traffic: DRAM bytes per layer.
        dram_time_s, dram_energy_j: DRAM busy time and energy per layer.
        weight_ber, activation_ber: bit error rate seen by the layer's weights and by the
            tensor it reads (0 for weights resident in L2 and for tensors kept on chip).
        shortcut_ber: bit error rate of the stored shortcut the layer's residual add reads
            (0 without an add and for a shortcut kept on chip).
        latency_s: layer latency with DRAM.
        dram_energy_parts_j: ``dram_energy_j`` by part (``DRAM_ENERGY_PARTS``), per layer;
            empty without DRAM.
    """

    compute: ComputeCost
    traffic: LayerTraffic
    dram_time_s: np.ndarray
    dram_energy_j: np.ndarray
    weight_ber: np.ndarray
    activation_ber: np.ndarray
    latency_s: np.ndarray
    dram_energy_parts_j: dict[str, np.ndarray] = field(default_factory=dict)
    shortcut_ber: np.ndarray | None = None  # None: no DRAM (every shortcut error-free)

    @property
    def energy_j(self) -> np.ndarray:
        return self.compute.energy_j + self.dram_energy_j

    @property
    def latency_cycles(self) -> np.ndarray:
        return self.latency_s * self.compute.clock_hz

    def total_latency_s(self) -> np.ndarray:
        return self.latency_s.sum(axis=-1)

    def total_compute_energy_j(self) -> np.ndarray:
        return self.compute.total_energy_j()

    def total_dram_energy_j(self) -> np.ndarray:
        return self.dram_energy_j.sum(axis=-1)

    def total_energy_j(self) -> np.ndarray:
        return self.total_compute_energy_j() + self.total_dram_energy_j()


def system_cost(table: LayerTable, soc: Soc, n_analog: np.ndarray, dram: DramSetting | None,
                *, overlap: bool = True) -> SystemCost:
    """Compute and DRAM cost of mappings ``n_analog`` (n_layers,) or (n_candidates, n_layers).

    With ``dram=None`` the DRAM is ignored (compute only): DRAM terms are zero.
    """
    compute = compute_cost(table, soc, n_analog)
    traffic = layer_traffic(table, soc, compute.n_analog)
    if dram is None:
        zero = np.zeros_like(compute.energy_j)
        return SystemCost(compute, traffic, zero, zero, zero, zero, compute.latency_s,
                          shortcut_ber=zero)
    placement = dram.placement
    # over a batch, each tensor's largest footprint: one check bounds every candidate
    in_dram = np.max(np.atleast_2d(traffic.tensor_in_dram), axis=0)
    # a downsample shortcut (indexed by its writer) counts in its writer's input partition
    shortcut_in_dram = np.max(np.atleast_2d(traffic.shortcut_slot_in_dram), axis=0)
    shortcut_size = np.zeros(table.n_layers)
    has_add = table.shortcut_tensor >= 0
    shortcut_size[table.shortcut_tensor[has_add]] = shortcut_bytes(table, soc)[has_add]
    check_capacity(placement, np.max(np.atleast_2d(traffic.weight_read_bytes), axis=0),
                   np.where(in_dram, tensor_bytes(table, soc), 0.0)
                   + np.where(shortcut_in_dram, shortcut_size, 0.0))
    dram_time_s, parts_j = _transfer(dram.device, placement, traffic,
                                     shortcut_partition_slot(table))
    latency_s = (np.maximum(compute.latency_s, dram_time_s) if overlap
                 else compute.latency_s + dram_time_s)
    idle = np.asarray(traffic.total_bytes.sum(axis=-1) == 0)[..., None]  # holds no tensor
    parts_j.update(_background_j(dram.device, placement, dram_time_s, latency_s,
                                 np.broadcast_to(idle, latency_s.shape),
                                 soc.memory.idle_dram))
    dram_energy_j = functools.reduce(np.add, (parts_j[name] for name in DRAM_ENERGY_PARTS))
    ber = _partition_ber(dram.device, dram.vendor, dram.ber_quantile, placement)
    weight_ber = np.where(traffic.weights_resident, 0.0, ber[placement.weight_partition])
    activation_ber = np.where(traffic.input_in_dram, ber[placement.activation_partition], 0.0)
    shortcut_partition = placement.activation_partition[shortcut_partition_slot(table)]
    shortcut_ber = np.where(traffic.shortcut_in_dram, ber[shortcut_partition], 0.0)
    return SystemCost(compute, traffic, dram_time_s, dram_energy_j, weight_ber,
                      np.broadcast_to(activation_ber, latency_s.shape), latency_s, parts_j,
                      np.broadcast_to(shortcut_ber, latency_s.shape))


DRAM_ENERGY_PARTS = ("read_write_core", "read_write_io", "activation", "active_standby",
                     "powerdown", "refresh", "self_refresh")


def _transfer(device: DramDevice, placement: Placement, traffic: LayerTraffic,
              shortcut_slot: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """DRAM busy time (s) and access energy (J) per layer, by part: the array's read and
    write energy (VDD rail, scaled by the partition's voltage), the I/O (not scaled), and
    row activations. ``shortcut_slot``: ``traffic.shortcut_partition_slot``."""
    scale = energy_scale(device, placement.column("vdd_v"))  # (n_partitions,)
    miss_ns = row_miss_ns(device, placement.column("trcd_ns"))  # (n_partitions,)
    # a layer reads its input from that tensor's partition and writes the next tensor; its
    # add reads the shortcut's partition; a shortcut conv writes into its input's partition
    w, a = placement.weight_partition, placement.activation_partition
    out = np.append(a[1:], a[-1])
    sc = a[shortcut_slot]
    weight_rows = np.ceil(traffic.weight_read_bytes / device.row_bytes)
    read_rows = np.ceil(traffic.activation_read_bytes / device.row_bytes)
    write_rows = np.ceil(traffic.activation_write_bytes / device.row_bytes)
    shortcut_read_rows = np.ceil(traffic.shortcut_read_bytes / device.row_bytes)
    shortcut_write_rows = np.ceil(traffic.shortcut_write_bytes / device.row_bytes)
    time_s = (traffic.total_bytes / device.bandwidth_bytes_per_s
              + (weight_rows * miss_ns[w] + read_rows * miss_ns[a]
                 + write_rows * miss_ns[out] + shortcut_read_rows * miss_ns[sc]
                 + shortcut_write_rows * miss_ns[a]) * 1e-9)
    read_vdd, write_vdd = device.read_energy_vdd_pj_per_byte, device.write_energy_vdd_pj_per_byte
    core_pj = (traffic.weight_read_bytes * read_vdd * scale[w]
               + traffic.activation_read_bytes * read_vdd * scale[a]
               + traffic.activation_write_bytes * write_vdd * scale[out]
               + traffic.shortcut_read_bytes * read_vdd * scale[sc]
               + traffic.shortcut_write_bytes * write_vdd * scale[a])
    io_pj = ((traffic.weight_read_bytes + traffic.activation_read_bytes
              + traffic.shortcut_read_bytes) * device.read_io_pj_per_byte
             + (traffic.activation_write_bytes + traffic.shortcut_write_bytes)
             * device.write_io_pj_per_byte)
    def row_pj(rows: np.ndarray, partition: np.ndarray) -> np.ndarray:
        return rows * (device.activation_energy_vdd_pj * scale[partition]
                       + device.activation_energy_fixed_pj)

    activation_pj = (row_pj(weight_rows, w) + row_pj(read_rows, a) + row_pj(write_rows, out)
                     + row_pj(shortcut_read_rows, sc) + row_pj(shortcut_write_rows, a))
    return time_s, {"read_write_core": core_pj * 1e-12, "read_write_io": io_pj * 1e-12,
                    "activation": activation_pj * 1e-12}


def _background_j(device: DramDevice, placement: Placement, dram_time_s: np.ndarray,
                  latency_s: np.ndarray, idle: np.ndarray, idle_mode: str
                  ) -> dict[str, np.ndarray]:
    """Standby, power-down, refresh and self-refresh energy per layer; VDD parts scaled per
    partition. Where ``idle`` (the mapping holds no tensor in DRAM), ``idle_mode`` decides
    (``hw_models.soc.OnChipMemory.idle_dram``)."""
    share = placement.column("capacity_bytes") / device.capacity_bytes  # (n_partitions,)
    scale = float(share @ energy_scale(device, placement.column("vdd_v")) + (1 - share.sum()))
    active_mw = device.active_standby_vdd_mw * scale + device.active_standby_fixed_mw
    powerdown_mw = device.powerdown_vdd_mw * scale + device.powerdown_fixed_mw
    refresh_mw = device.refresh_vdd_mw * scale + device.refresh_fixed_mw
    active_s, powerdown_s = dram_time_s, latency_s - dram_time_s
    refresh_s, self_refresh_s = latency_s, np.zeros_like(latency_s)
    self_refresh_mw = 0.0
    if idle.any() and idle_mode != "power-down":  # power-down: the rule for every layer
        zero = np.zeros_like(latency_s)
        if idle_mode == "active-standby":
            active_s = np.where(idle, latency_s, active_s)
            powerdown_s = np.where(idle, zero, powerdown_s)
        elif idle_mode == "self-refresh":
            self_refresh_mw = self_refresh_power_mw(device, scale)
            powerdown_s = np.where(idle, zero, powerdown_s)
            refresh_s = np.where(idle, zero, refresh_s)  # the device refreshes itself
            self_refresh_s = np.where(idle, latency_s, zero)
        elif idle_mode == "off":
            powerdown_s = np.where(idle, zero, powerdown_s)
            refresh_s = np.where(idle, zero, refresh_s)
        else:
            raise ValueError(f"unknown idle DRAM mode '{idle_mode}'")
    return {"active_standby": 1e-3 * active_mw * active_s,
            "powerdown": 1e-3 * powerdown_mw * powerdown_s,
            "refresh": 1e-3 * refresh_mw * refresh_s,
            "self_refresh": 1e-3 * self_refresh_mw * self_refresh_s}


def check_idle_dram(soc: Soc, device: DramDevice) -> None:
    """Refuse an SoC whose idle DRAM self-refreshes with a device preset that gives no
    self-refresh power (before any cost is computed)."""
    if soc.memory.idle_dram == "self-refresh":
        self_refresh_power_mw(device)


def self_refresh_power_mw(device: DramDevice, scale: float = 1.0) -> float:
    """The device's self-refresh power (VDD part times ``scale``); a preset without it
    cannot serve an SoC whose idle DRAM self-refreshes."""
    if device.self_refresh_vdd_mw is None or device.self_refresh_fixed_mw is None:
        raise ConfigError(f"DRAM preset '{device.name}' gives no self-refresh power "
                          "(self_refresh_vdd_mw, self_refresh_fixed_mw): it cannot serve an "
                          "SoC preset with memory.idle_dram = \"self-refresh\"")
    return device.self_refresh_vdd_mw * scale + device.self_refresh_fixed_mw


def _partition_ber(device: DramDevice, vendor: str, quantile: str,
                   placement: Placement) -> np.ndarray:
    """Combined bit error rate of every partition, shape (n_partitions,)."""
    return combined_ber(ber_from_vdd(device, vendor, placement.column("vdd_v"), quantile),
                        ber_from_trcd(device, vendor, placement.column("trcd_ns"), quantile))
