"""The data behind ``dse networks``, ``layers``, ``cost`` and ``dram`` (``reports.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dse.commands.reports import (
    CostReport,
    DramCatalogue,
    DramDeviceRow,
    DramPointReport,
    LayersReport,
    NetworkCatalogue,
    NetworkRow,
)
from hw_models import ConfigError, LayerTable, Soc, load_soc
from hw_models.dram import (
    BER_QUANTILES,
    DEFAULT_BER_QUANTILE,
    DEFAULT_VENDOR,
    check_quantile,
    list_dram_presets,
    list_vendors,
    load_dram,
    operating_point,
    trcd_curve,
    vendor_curve,
)
from hw_models.mapping import Channels, resolve_split
from hw_models.partitions import LAYOUTS, WHOLE_DEVICE, named_placement, placement_from_file
from hw_models.system import DramSetting, SystemCost, check_idle_dram, system_cost
from hw_models.traffic import LEVEL_NAMES

LAYER_COLUMNS = ("name", "kind", "cin", "cout", "kx", "ky", "stride", "groups", "ox", "oy",
                 "macs", "weights")
LARGEST_SHOWN_SCALE = 1e6  # dse cost prints times in us and ms, energies in µJ
NOT_COSTED_NOTE = ("add, pooling and activation layers are not costed "
                   "(as in ODiMO's DIANA model)")


@dataclass(frozen=True)
class CostRequest:
    """What ``dse cost`` evaluates.

    Attributes:
        network: zoo name or ``package.module:function``.
        mapping: heuristic name or path of a JSON mapping file.
        dataset: dataset name; None means the network's reference dataset.
        hw: SoC preset name or TOML path.
        dram: DRAM device preset or TOML path, "none" for compute only, None for the SoC's
            default device.
        vendor: vendor whose measured BER curves apply (Voltron VDD, DIVA-DRAM tRCD).
        ber_quantile: which DIMM of the vendor's population the curves describe (mean,
            median, p90, max).
        vdd_v, trcd_ns: the approximate partition's operating point (None: nominal).
        partition_layout: a layout name (``partitions.LAYOUTS``) or a partition JSON file.
        overlap: double-buffer DRAM transfers with compute (else add them).
    """

    network: str
    mapping: str
    dataset: str | None = None
    hw: str = "diana"
    dram: str | None = None
    vendor: str = DEFAULT_VENDOR
    ber_quantile: str = DEFAULT_BER_QUANTILE
    vdd_v: float | None = None
    trcd_ns: float | None = None
    partition_layout: str = WHOLE_DEVICE
    overlap: bool = True


def network_summaries() -> NetworkCatalogue:
    """One row per zoo network on its reference dataset: shape, classes, parameters, MACs."""
    from dse.workload import load_workload
    from networks import list_networks

    rows = []
    for entry in list_networks():
        workload = load_workload(entry.name)
        rows.append(NetworkRow(
            network=entry.name,
            dataset=workload.dataset.name,
            input_shape=list(workload.dataset.input_shape),
            num_classes=workload.dataset.num_classes,
            parameters=workload.parameters,
            macs=int(workload.table.macs.sum()),
            layers=workload.table.n_layers,
            description=entry.description,
        ))
    return NetworkCatalogue(tuple(rows))


def layer_report(network: str, dataset: str | None = None) -> LayersReport:
    from dse.workload import load_workload

    workload = load_workload(network, dataset)
    records = workload.table.to_records()
    return LayersReport(
        network=network,
        dataset=workload.dataset.name,
        input_shape=list(workload.dataset.input_shape),
        num_classes=workload.dataset.num_classes,
        layers=[{key: row[key] for key in LAYER_COLUMNS} for row in records],
    )


def dram_setting(request: CostRequest, table: LayerTable, soc: Soc) -> DramSetting | None:
    """Resolve the request's DRAM device, error curves and placement (None for compute
    only)."""
    name = soc.default_dram if request.dram is None else request.dram
    if name == "none":
        if request.vdd_v is not None or request.trcd_ns is not None:
            raise ConfigError("--vdd and --trcd need a DRAM device (--dram none was given)")
        return None
    device = load_dram(name)
    check_idle_dram(soc, device)
    vendor_curve(request.vendor, request.ber_quantile)
    trcd_curve(request.vendor, request.ber_quantile)
    layout = request.partition_layout
    if layout in LAYOUTS:
        placement = named_placement(layout, table, device, request.vendor,
                                    vdd_v=request.vdd_v, trcd_ns=request.trcd_ns,
                                    quantile=request.ber_quantile)
    elif Path(layout).is_file():
        if request.vdd_v is not None or request.trcd_ns is not None:
            raise ConfigError("with a partitions file, give vdd_v / trcd_ns in the file, "
                              "not --vdd / --trcd")
        placement = placement_from_file(Path(layout), table, device, request.vendor,
                                        request.ber_quantile)
    else:
        raise ConfigError(f"--partition-layout '{layout}' is neither a layout "
                          f"({', '.join(LAYOUTS)}) nor an existing JSON file")
    return DramSetting(device=device, vendor=request.vendor, placement=placement,
                       ber_quantile=request.ber_quantile)


def cost_report(request: CostRequest) -> CostReport:
    """Per-layer and total cost of one mapping: DIANA compute plus DRAM."""
    from dse.workload import load_workload

    soc = load_soc(request.hw)
    workload = load_workload(request.network, request.dataset)
    table = workload.table
    n_analog, channels = resolve_split(request.mapping, table, soc)
    dram = dram_setting(request, table, soc)
    cost = system_cost(table, soc, n_analog, dram, overlap=request.overlap)
    if not costs_are_finite(cost):
        raise ConfigError(f"hardware preset '{request.hw}' gives non-finite costs; check its "
                          "numbers (e.g. clock_hz)")
    compute = cost.compute
    layers = [
        {
            "name": table.name[i], "kind": table.kind[i],
            **{key: int(getattr(table, key)[i])
               for key in ("cin", "cout", "kx", "ky", "ox", "oy", "groups")},
            "n_digital": int(table.cout[i] - n_analog[i]),
            "n_analog": int(n_analog[i]),
            "analog_channels": _channels_of(channels, i),
            "digital_cycles": float(compute.digital_cycles[i]),
            "analog_cycles": float(compute.analog_cycles[i]),
            "compute_cycles": float(compute.latency_cycles[i]),
            "latency_cycles": float(cost.latency_cycles[i]),
            "compute_energy_j": float(compute.energy_j[i]),
            "energy_j": float(cost.energy_j[i]),
            "dram_bytes": float(cost.traffic.total_bytes[i]),
            "dram_time_s": float(cost.dram_time_s[i]),
            "dram_energy_j": float(cost.dram_energy_j[i]),
            "weight_ber": float(cost.weight_ber[i]),
            "activation_ber": float(cost.activation_ber[i]),
            "weights_resident": bool(cost.traffic.weights_resident[i]),
            "working_set": LEVEL_NAMES[int(cost.traffic.level[i])],
            "input_in_dram": bool(cost.traffic.input_in_dram[i]),
            "input_tensor": table.name[int(table.input_tensor[i])],
            "shortcut_tensor": (None if table.shortcut_tensor[i] < 0
                                else table.name[int(table.shortcut_tensor[i])]),
            "shortcut_in_dram": bool(cost.traffic.shortcut_in_dram[i]),
            "shortcut_ber": float(0.0 if cost.shortcut_ber is None else cost.shortcut_ber[i]),
        }
        for i in range(table.n_layers)
    ]
    return CostReport(
        network=request.network,
        dataset=workload.dataset.name,
        hw=soc.name,
        mapping=request.mapping,
        dram=_dram_summary(dram, request.overlap, soc.memory.idle_dram,
                           holds_tensor=bool(cost.traffic.total_bytes.sum() > 0)),
        clock_hz=soc.clock_hz,
        layers=layers,
        total={
            "latency_cycles": float(cost.total_latency_s() * soc.clock_hz),
            "latency_s": float(cost.total_latency_s()),
            "compute_energy_j": float(cost.total_compute_energy_j()),
            "dram_energy_j": float(cost.total_dram_energy_j()),
            "energy_j": float(cost.total_energy_j()),
            "dram_energy_breakdown_j": {part: float(np.sum(values)) for part, values
                                        in cost.dram_energy_parts_j.items()},
        },
        note=NOT_COSTED_NOTE,
    )


def _channels_of(channels: Channels | None, layer: int) -> list[int] | None:
    chosen = None if channels is None else channels[layer]
    return None if chosen is None else list(chosen)


def costs_are_finite(cost: SystemCost) -> bool:
    """Every per-layer value and total ``dse cost`` prints is finite, also in the unit it is
    printed in (finite layers may overflow in their sum, a finite 1e303 J in µJ)."""
    per_layer = (cost.latency_s, cost.latency_cycles, cost.energy_j, cost.dram_time_s,
                 cost.dram_energy_j, cost.compute.energy_j)
    totals = (cost.total_latency_s(), cost.total_latency_s() * cost.compute.clock_hz,
              cost.total_energy_j(), cost.total_dram_energy_j(), cost.total_compute_energy_j())
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.asarray(values, dtype=float) * LARGEST_SHOWN_SCALE).all()
                   for values in (*per_layer, totals))


def _dram_summary(dram: DramSetting | None, overlap: bool, idle_dram: str, *,
                  holds_tensor: bool) -> dict[str, Any] | None:
    if dram is None:
        return None
    return {
        "device": dram.device.name,
        "vendor": dram.vendor,
        "ber_quantile": dram.ber_quantile,
        "layout": dram.placement.layout,
        "overlap": overlap,
        "idle_dram": idle_dram,
        "holds_tensor": holds_tensor,
        "partitions": [
            {"name": p.name, "capacity_bytes": p.capacity_bytes, "vdd_v": p.vdd_v,
             "trcd_ns": p.trcd_ns}
            for p in dram.placement.partitions
        ],
    }


def dram_report(device: str, vendor: str, vdd_v: float | None, trcd_ns: float | None,
                ber_quantile: str = DEFAULT_BER_QUANTILE) -> DramPointReport:
    """One operating point of a DRAM device (nominal where not given)."""
    preset = load_dram(device)
    vdd_v = preset.vdd_nominal_v if vdd_v is None else vdd_v
    trcd_ns = preset.trcd_nominal_ns if trcd_ns is None else trcd_ns
    return DramPointReport(**operating_point(preset, vendor, vdd_v, trcd_ns, ber_quantile))


def dram_devices(ber_quantile: str = DEFAULT_BER_QUANTILE) -> DramCatalogue:
    """Every DRAM preset with its nominal point and allowed ranges (per vendor and BER
    quantile for VDD: the usable floor)."""
    check_quantile(ber_quantile)
    rows = []
    for name in list_dram_presets():
        device = load_dram(name)
        rows.append(DramDeviceRow(
            device=name,
            description=device.description,
            vdd_nominal_v=device.vdd_nominal_v,
            trcd_nominal_ns=device.trcd_nominal_ns,
            vdd_min_v={v: device.vdd_range_v(v, ber_quantile)[0] for v in list_vendors()},
            vdd_floor_v={v: {q: device.vdd_range_v(v, q)[0] for q in BER_QUANTILES}
                         for v in list_vendors()},
            ber_quantile=ber_quantile,
            trcd_min_ns=device.trcd_min_ns,
            trcd_lowest_characterised_ns=device.lowest_characterised_trcd_ns(),
            bandwidth_bytes_per_s=device.bandwidth_bytes_per_s,
            capacity_bytes=device.capacity_bytes,
            partition_unit=device.partition_unit,
            partition_units=device.partition_units,
            ber_transfer=device.ber_transfer,
            default_vendor=DEFAULT_VENDOR,
            default_ber_quantile=DEFAULT_BER_QUANTILE,
        ))
    return DramCatalogue(tuple(rows))
