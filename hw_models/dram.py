"""DRAM device presets and the approximate-DRAM operating point: BER, energy scale, latency.

A device is read from ``presets/dram/<name>.toml`` (every number sourced). Its bit error
rate at a supply voltage comes from the Voltron DDR3L measurements (``presets/voltron_ber.csv``,
see ``hw_models.voltron``), per vendor:

* at or above the vendor's lowest voltage at which every DIMM was error-free: exactly 0;
* between measured voltages with errors: log-linear interpolation of the mean BER;
* between the highest voltage with errors and the error-free voltage: held at the BER of the
  highest voltage with errors (the data cannot say where it reaches 0; this never
  underestimates);
* below the lowest measured voltage: an error (no data).

Other devices use the DDR3L curve at the same relative undervolt V / V_nominal (an assumption,
labelled in their presets). BER from a shortened tRCD is 0 down to ``trcd_safe_fraction`` of
nominal, then ``trcd_ber_at_margin`` rising by ``trcd_decades_per_ns`` per ns (assumption);
the two combine as 1 - (1 - b_V)(1 - b_t).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hw_models.error_models import ErrorModelParams
from hw_models.errors import ConfigError
from hw_models.presets import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    checked_values,
    plain_string,
    read_toml,
)

DRAM_PRESET_DIR = Path(__file__).parent / "presets" / "dram"
VOLTRON_TABLE = Path(__file__).parent / "presets" / "voltron_ber.csv"
MAX_BER = 0.5  # a cell that has lost its charge reads as random data

_SCHEMA = {
    "vdd_nominal_v": POSITIVE, "trcd_nominal_ns": POSITIVE, "trcd_min_ns": POSITIVE,
    "tcl_ns": POSITIVE, "burst_ns": POSITIVE, "row_bytes": POSITIVE_INT,
    "bandwidth_bytes_per_s": POSITIVE, "capacity_bytes": POSITIVE_INT,
    "read_energy_vdd_pj_per_byte": NON_NEGATIVE, "write_energy_vdd_pj_per_byte": NON_NEGATIVE,
    "read_io_pj_per_byte": NON_NEGATIVE, "write_io_pj_per_byte": NON_NEGATIVE,
    "activation_energy_vdd_pj": NON_NEGATIVE, "activation_energy_fixed_pj": NON_NEGATIVE,
    "active_standby_vdd_mw": NON_NEGATIVE, "active_standby_fixed_mw": NON_NEGATIVE,
    "powerdown_vdd_mw": NON_NEGATIVE, "powerdown_fixed_mw": NON_NEGATIVE,
    "refresh_vdd_mw": NON_NEGATIVE, "refresh_fixed_mw": NON_NEGATIVE,
    "ber.reference_nominal_v": POSITIVE, "ber.trcd_safe_fraction": FRACTION,
    "ber.trcd_ber_at_margin": FRACTION, "ber.trcd_decades_per_ns": POSITIVE,
    "errors.weak_bitline_fraction": FRACTION, "errors.weak_wordline_fraction": FRACTION,
    "errors.one_to_zero_share": FRACTION,
}


@dataclass(frozen=True)
class VendorCurve:
    """Measured mean BER vs VDD of one DDR3L vendor (reference voltages, ascending)."""

    vendor: str
    vdd_v: np.ndarray
    ber: np.ndarray
    error_free_vdd_v: float

    @property
    def lowest_vdd_v(self) -> float:
        return float(self.vdd_v[0])


@dataclass(frozen=True)
class DramDevice:
    """A DRAM device preset; energies split into a VDD part (scales) and a fixed part."""

    name: str
    description: str
    ber_transfer: str
    vdd_nominal_v: float
    trcd_nominal_ns: float
    trcd_min_ns: float
    tcl_ns: float
    burst_ns: float
    row_bytes: int
    bandwidth_bytes_per_s: float
    capacity_bytes: int
    read_energy_vdd_pj_per_byte: float
    write_energy_vdd_pj_per_byte: float
    read_io_pj_per_byte: float
    write_io_pj_per_byte: float
    activation_energy_vdd_pj: float
    activation_energy_fixed_pj: float
    active_standby_vdd_mw: float
    active_standby_fixed_mw: float
    powerdown_vdd_mw: float
    powerdown_fixed_mw: float
    refresh_vdd_mw: float
    refresh_fixed_mw: float
    ber_reference_nominal_v: float
    trcd_safe_fraction: float
    trcd_ber_at_margin: float
    trcd_decades_per_ns: float
    error_params: ErrorModelParams
    sources: dict[str, str]

    def vdd_range_v(self, vendor: str) -> tuple[float, float]:
        """Allowed supply voltages: the lowest measured (transferred) voltage to nominal."""
        return (float(self.to_device_v(vendor_curve(vendor).lowest_vdd_v)), self.vdd_nominal_v)

    def to_device_v(self, reference_v: float | np.ndarray) -> float | np.ndarray:
        return reference_v * self.vdd_nominal_v / self.ber_reference_nominal_v

    def to_reference_v(self, vdd_v: float | np.ndarray) -> float | np.ndarray:
        return vdd_v * self.ber_reference_nominal_v / self.vdd_nominal_v


DEFAULT_VENDOR = "B"  # the most DIMMs (11) and the widest measured voltage range


def list_dram_presets() -> list[str]:
    return sorted(p.stem for p in DRAM_PRESET_DIR.glob("*.toml"))


@lru_cache(maxsize=None)
def dram_preset_path(name_or_path: str) -> Path | None:
    """The file of a DRAM preset name or path; None for ``none`` (no DRAM)."""
    if name_or_path == "none":
        return None
    if name_or_path in list_dram_presets():
        return DRAM_PRESET_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.is_file():
        raise ConfigError(f"unknown DRAM device '{name_or_path}' (known: "
                          f"{', '.join(list_dram_presets())}, or a .toml file; none where "
                          "a command runs without DRAM)")
    return path


def load_dram(name_or_path: str) -> DramDevice:
    """Load a DRAM preset by name or TOML path; raise ConfigError if unknown or invalid."""
    path = dram_preset_path(name_or_path)
    if path is None:
        raise ConfigError("DRAM device 'none' has no preset (it means: no DRAM)")
    document = read_toml(path)
    values, sources = checked_values(document, _SCHEMA, path,
                                     plain_keys=("name", "description", "ber_transfer"))
    device = DramDevice(
        name=plain_string(document, "name", path),
        description=str(document.get("description", "")),
        ber_transfer=_ber_transfer(document, path),
        error_params=ErrorModelParams(**{k.split(".", 1)[1]: v for k, v in values.items()
                                         if k.startswith("errors.")}),
        sources=sources,
        **{_field_name(k): v for k, v in values.items() if not k.startswith("errors.")},
    )
    if not device.trcd_min_ns <= device.trcd_nominal_ns:
        raise ConfigError(f"{path}: trcd_min_ns must not exceed trcd_nominal_ns")
    return device


BER_TRANSFERS = ("measured", "relative-undervolt")  # how the Voltron curve applies


def _ber_transfer(document: dict, path: Path) -> str:
    value = plain_string(document, "ber_transfer", path)
    if value not in BER_TRANSFERS:
        raise ConfigError(f"{path}: ber_transfer must be one of {', '.join(BER_TRANSFERS)}, "
                          f"not '{value}'")
    return value


def _field_name(key: str) -> str:
    return "ber_reference_nominal_v" if key == "ber.reference_nominal_v" else key.split(".")[-1]


@lru_cache(maxsize=None)
def _vendor_curves() -> dict[str, VendorCurve]:
    rows: dict[str, list[tuple[float, float]]] = {}
    with open(VOLTRON_TABLE, newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    for row in csv.DictReader(lines):
        rows.setdefault(row["vendor"], []).append((float(row["vdd_v"]), float(row["mean_ber"])))
    return {vendor: _curve(vendor, sorted(points)) for vendor, points in rows.items()}


def _curve(vendor: str, points: list[tuple[float, float]]) -> VendorCurve:
    vdd_v = np.array([v for v, _ in points])
    ber = np.array([b for _, b in points])
    erroneous = np.flatnonzero(ber > 0)
    error_free_v = float(vdd_v[erroneous[-1] + 1]) if erroneous.size else float(vdd_v[0])
    keep = ber > 0
    return VendorCurve(vendor=vendor, vdd_v=vdd_v[keep], ber=ber[keep],
                       error_free_vdd_v=error_free_v)


def list_vendors() -> list[str]:
    return sorted(_vendor_curves())


def vendor_curve(vendor: str) -> VendorCurve:
    try:
        return _vendor_curves()[vendor]
    except KeyError:
        raise ConfigError(f"unknown vendor '{vendor}' (known: {', '.join(list_vendors())})"
                          ) from None


def ber_from_vdd(device: DramDevice, vendor: str, vdd_v: float | np.ndarray) -> np.ndarray:
    """Bit error rate at supply voltage ``vdd_v`` (any shape); see the module docstring."""
    curve = vendor_curve(vendor)
    reference_v = np.asarray(device.to_reference_v(np.asarray(vdd_v, dtype=float)))
    if (reference_v < curve.lowest_vdd_v - 1e-12).any():
        low, _ = device.vdd_range_v(vendor)
        raise ConfigError(f"{device.name}: VDD {float(np.min(vdd_v)):.4g} V is below the lowest "
                          f"characterised voltage {low:.4g} V (vendor {vendor})")
    clipped = np.minimum(reference_v, curve.vdd_v[-1])  # hold the last erroneous BER
    ber = np.exp(np.interp(clipped, curve.vdd_v, np.log(curve.ber)))
    return np.where(reference_v >= curve.error_free_vdd_v - 1e-12, 0.0, ber)


def ber_from_trcd(device: DramDevice, trcd_ns: float | np.ndarray) -> np.ndarray:
    """Bit error rate from a shortened tRCD (assumed curve, parameters in the preset)."""
    trcd_ns = np.asarray(trcd_ns, dtype=float)
    safe_ns = device.trcd_safe_fraction * device.trcd_nominal_ns
    rising = device.trcd_ber_at_margin * 10.0 ** (device.trcd_decades_per_ns * (safe_ns - trcd_ns))
    return np.where(trcd_ns >= safe_ns - 1e-12, 0.0, np.minimum(rising, MAX_BER))


def combined_ber(ber_vdd: float | np.ndarray, ber_trcd: float | np.ndarray) -> np.ndarray:
    """A bit is correct only if neither mechanism flips it."""
    return 1.0 - (1.0 - np.asarray(ber_vdd)) * (1.0 - np.asarray(ber_trcd))


def energy_scale(device: DramDevice, vdd_v: float | np.ndarray) -> np.ndarray:
    """Factor on VDD-domain energy and power: (V / V_nominal)^2 (I proportional to V)."""
    return (np.asarray(vdd_v, dtype=float) / device.vdd_nominal_v) ** 2


def row_miss_ns(device: DramDevice, trcd_ns: float | np.ndarray) -> np.ndarray:
    """Latency of a read that opens a row: tRCD + tCL + one burst."""
    return np.asarray(trcd_ns, dtype=float) + device.tcl_ns + device.burst_ns


def check_operating_point(device: DramDevice, vendor: str, vdd_v: float, trcd_ns: float) -> None:
    """Raise ConfigError when VDD or tRCD is outside the device's allowed range."""
    low_v, high_v = device.vdd_range_v(vendor)
    if not low_v - 1e-9 <= vdd_v <= high_v + 1e-9:
        raise ConfigError(f"{device.name}: VDD {vdd_v:g} V outside the allowed range "
                          f"[{low_v:.4g}, {high_v:g}] V (vendor {vendor})")
    if not device.trcd_min_ns - 1e-9 <= trcd_ns <= device.trcd_nominal_ns + 1e-9:
        raise ConfigError(f"{device.name}: tRCD {trcd_ns:g} ns outside the allowed range "
                          f"[{device.trcd_min_ns:g}, {device.trcd_nominal_ns:g}] ns")


def operating_point(device: DramDevice, vendor: str, vdd_v: float, trcd_ns: float) -> dict:
    """Everything ``dse dram`` reports about one (VDD, tRCD) point of a device."""
    check_operating_point(device, vendor, vdd_v, trcd_ns)
    b_v = float(ber_from_vdd(device, vendor, vdd_v))
    b_t = float(ber_from_trcd(device, trcd_ns))
    return {
        "device": device.name, "vendor": vendor, "vdd_v": vdd_v, "trcd_ns": trcd_ns,
        "vdd_nominal_v": device.vdd_nominal_v, "trcd_nominal_ns": device.trcd_nominal_ns,
        "ber_vdd": b_v, "ber_trcd": b_t, "ber": float(combined_ber(b_v, b_t)),
        "energy_scale": float(energy_scale(device, vdd_v)),
        "row_miss_ns": float(row_miss_ns(device, trcd_ns)),
        "ber_transfer": device.ber_transfer,
    }
