"""DRAM device presets and the approximate-DRAM operating point: BER, energy scale, latency.

A device is read from ``presets/dram/<name>.toml`` (every number sourced). Its bit error rate
comes from two measured tables, per vendor and per statistic over the vendor's DIMMs
(``--ber-quantile``: ``mean``, ``median``, ``p90`` or ``max``; see
``hw_models.derive.dimm_stats``):

* from the supply voltage: the Voltron DDR3L measurements (``presets/voltron_ber.csv``, see
  ``hw_models.derive.voltron``), read at the same V / V_nominal on other devices. Each
  statistic has a usable floor per vendor: below it, too many of the vendor's DIMMs stopped
  working or saturate (faulty-line fraction above 0.45) for the statistic to be known (its
  cells are empty in the table; ``max`` and ``mean`` need every DIMM measured). Reference
  floors, median / p90 / max / mean: A 1.1 / 1.125 / 1.125 / 1.125 V, B 1.05 / 1.075 /
  1.075 / 1.075 V, C 1.175 / 1.25 / 1.25 / 1.25 V. A VDD below the floor is an error;
* from a shortened tRCD: the DIVA-DRAM DDR3 measurements (``presets/diva_trcd_ber.csv``, see
  ``hw_models.derive.diva``: the errors added below the test's 12.5 ns at a 256 ms refresh
  interval), read at the same tRCD / tRCD_nominal, DIVA's nominal being 13.75 ns
  (``ber.reference_nominal_trcd_ns`` in every preset; an assumption, labelled there).

Both curves follow the same rules along their knob (reference volts or ns):

* at or above the lowest measured point from which the statistic is 0 at every measured
  point (the error-free point): exactly 0;
* between measured points with errors: log-linear interpolation;
* between the last point with errors and the error-free point: held at the BER of the last
  point with errors (the data cannot say where it reaches 0; this never underestimates);
* below the lowest usable point (VDD: the floor above; tRCD: DIVA's 5 ns): an error;
* a statistic is made non-increasing in the knob (a running maximum toward lower VDD or
  shorter tRCD): where the DIMMs measured change between points (a DIMM not tested at one
  voltage), a quantile can dip; the dip is filled, never kept (the shipped tables have none
  in their usable ranges; vendor C's plateau had one, now below its floors);
* the quantiles are ordered, median <= p90 <= max, at every point: a higher quantile takes
  a lower one's value where the lower one is held above the higher one's interpolation
  (vendor B's tRCD median is 0 at 10 ns and held at its 7.5 ns value, 0.23, below 10 ns,
  while p90 interpolates from 6.3e-5 at 10 ns); this only raises curves.

Where the two curves meet: Voltron measured at one tRCD, 10 ns (the ``trcd_ns`` column of
``voltron_ber.csv``, in reference ns: its plots are named ``rcd4_rp4``, 4 cycles of the
tester's 2.5 ns clock; ``vdd_curve_trcd_ns``), so the VDD curve b_V(V) is the error rate at
(V, 10 ns), errors of the 27 % shorter tRCD included. The tRCD curve then adds only what
a tRCD below 10 ns adds beyond 10 ns:

    b_t_eff(t) = max(0, b_t(t) - b_t(10 ns)) / (1 - b_t(10 ns))   for t < 10 ns, else 0

(``ber_from_trcd``, per quantile from its ordered b_t, then ordered across quantiles as
above; ``measured_trcd_ber`` is DIVA's b_t itself). For a tRCD between 10 ns
and nominal the VDD errors are taken as measured at 10 ns (ASSUMPTION: a longer activation
would likely remove some of them; no data set measures VDD at two timings). The other
reading, Voltron at nominal tRCD and DIVA's errors added in full, gives 1 - (1 - b_V)(1 -
b_t): at DDR3L, vendor B, ``max``, 1.1 V, 10 ns, 2.8e-3 instead of the 2.0e-8 used here
(DIVA's worst vendor-B DIMM at 10 ns and a 256 ms refresh, on top of Voltron's).

Where the errors fall (``presets/diva_trcd_regions.csv``, ``hw_models.derive.diva_regions``,
named by a preset's ``ber.trcd_region_fit``; ``trcd_error_model``): below 10 ns, where this
tool adds tRCD errors, every DIVA DIMM has errors in all 16 regions its summary marks, so of
the models the summaries can test the uniform one (EDEN model 0) fits; at 10 and 12.5 ns they
are confined to part of the regions. It changes no BER and no injected flip.

Then VDD and tRCD errors combine as 1 - (1 - b_V)(1 - b_t_eff): a bit reads correctly only
if neither flips it, the two taken as independent. No data set varies both knobs (Voltron
varies VDD at one timing, DIVA-DRAM timings at nominal VDD); Voltron finds that a lower VDD
needs a longer activation to stay error-free, so both mechanisms eat the same sensing margin
and below 10 ns at a reduced VDD the true BER is likely above this product.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from hw_models.error_models import ErrorModelParams
from hw_models.errors import ConfigError
from hw_models.presets import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SAME_COSTS_KEY,
    TEXT,
    checked_values,
    lookup,
    plain_string,
    read_toml,
    same_costs_as,
)

BER_QUANTILES = ("mean", "median", "p90", "max")   # which DIMM of the population


def column(quantile: str) -> str:
    """The table column of a population statistic: ``mean`` -> ``mean_ber``."""
    return f"{quantile}_ber"


DRAM_PRESET_DIR = Path(__file__).parent / "presets" / "dram"
VOLTRON_TABLE = Path(__file__).parent / "presets" / "voltron_ber.csv"
DIVA_TABLE = Path(__file__).parent / "presets" / "diva_trcd_ber.csv"
# How the two tables become a BER (bump when that changes: studies are bound to it through
# ``ber_model_sha256``). 2: usable VDD floors, and tRCD errors only beyond Voltron's test tRCD.
BER_MODEL_VERSION = 2


def ber_model_sha256() -> str:
    """The digest of the DRAM error model: its version and the two shipped BER tables. A
    study with DRAM is bound to it, so trials measured under another model never share a
    front with today's."""
    digest = hashlib.sha256(f"ber-model {BER_MODEL_VERSION}\n".encode())
    for table in (VOLTRON_TABLE, DIVA_TABLE):
        digest.update(table.read_bytes())
    return digest.hexdigest()
# Where on a module the DIVA-DRAM errors fall, fitted per vendor and tRCD
# (``hw_models.derive.diva_regions``); a preset names it in ``ber.trcd_region_fit``. Not in
# ``ber_model_sha256``: no BER and no injected flip depends on it (it says which EDEN model
# the data support; the probe's ``--error-model`` picks the model injected).
REGION_FIT_TABLES = ("diva_trcd_regions.csv",)
# the EDEN error model a fit's verdict names (``confined`` has no faithful EDEN model: the
# regions' layout in the address space is not known, see hw_models.derive.diva_regions)
EDEN_MODEL_OF_FIT = {"uniform": 0}
MAX_BER = 0.5  # a cell that has lost its charge reads as random data
# The statistic over a vendor's DIMMs that the curves describe. max: a deployed design must
# hold on the module it is given, and max is the only choice under which no characterised
# DIMM has more errors than the design assumes (p90 accepts one module in ten above it).
DEFAULT_BER_QUANTILE = "max"
# the invented BER(tRCD) curve these keys described is replaced by the DIVA-DRAM data
RETIRED_KEYS = ("ber.trcd_safe_fraction", "ber.trcd_ber_at_margin", "ber.trcd_decades_per_ns")

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
    "self_refresh_vdd_mw": NON_NEGATIVE, "self_refresh_fixed_mw": NON_NEGATIVE,
    "ber.reference_nominal_v": POSITIVE, "ber.reference_nominal_trcd_ns": POSITIVE,
    "errors.weak_bitline_fraction": FRACTION, "errors.weak_wordline_fraction": FRACTION,
    "errors.one_to_zero_share": FRACTION,
    "partition.unit": TEXT, "partition.units": POSITIVE_INT,
    "ber.trcd_region_fit": TEXT,
}
# absent: the device has no self-refresh power, and an SoC whose idle DRAM self-refreshes
# cannot use it; no region fit (``dse dram`` says none)
_OPTIONAL = ("self_refresh_vdd_mw", "self_refresh_fixed_mw", "ber.trcd_region_fit")


@dataclass(frozen=True)
class MeasuredCurve:
    """One statistic over one vendor's DIMMs at the usable measured points of a knob:
    reference VDD in V (Voltron) or DIVA tRCD in ns, ascending; ``ber`` made non-increasing;
    ``n_dimms`` the DIMMs the statistic ranks at each point (stopped and saturated ones
    included)."""

    vendor: str
    quantile: str
    knob: np.ndarray
    ber: np.ndarray
    n_dimms: np.ndarray

    @property
    def lowest(self) -> float:
        """The lowest usable point (for VDD, the statistic's floor): below it the statistic
        is not known."""
        return float(self.knob[0])

    @property
    def error_free_from(self) -> float:
        """The lowest measured point from which every measured point is 0 (inf: none)."""
        erroneous = np.flatnonzero(self.ber > 0)
        if not erroneous.size:
            return self.lowest
        if erroneous[-1] == len(self.knob) - 1:
            return math.inf
        return float(self.knob[erroneous[-1] + 1])

    def at(self, knob: np.ndarray) -> np.ndarray:
        """BER at ``knob`` (at or above ``lowest``; the rules of the module docstring)."""
        knob = np.asarray(knob, dtype=float)
        keep = self.ber > 0
        if not keep.any():
            return np.zeros_like(knob)
        points, bers = self.knob[keep], self.ber[keep]
        held = np.minimum(knob, points[-1])  # hold the last erroneous BER
        ber = np.exp(np.interp(held, points, np.log(bers)))
        return np.where(knob >= self.error_free_from - 1e-12, 0.0, ber)

    def dimms_at(self, knob: float) -> int:
        """How many DIMMs the BER at ``knob`` rests on: the fewer of the two measured points
        around it (the one point where ``knob`` is measured or beyond the last)."""
        last = len(self.knob) - 1
        low = min(max(int(np.searchsorted(self.knob, knob + 1e-12, side="right")) - 1, 0), last)
        high = low if abs(self.knob[low] - knob) <= 1e-12 or low == last else low + 1
        return int(min(self.n_dimms[low], self.n_dimms[high]))


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
    ber_reference_nominal_trcd_ns: float
    error_params: ErrorModelParams
    sources: dict[str, str]
    partition_unit: str = "device"   # what a partition is made of (a bank, a rank...)
    partition_units: int = 1         # how many of them the device has
    self_refresh_vdd_mw: float | None = None    # None: not in the preset
    self_refresh_fixed_mw: float | None = None
    ber_trcd_region_fit: str | None = None      # a REGION_FIT_TABLES name; None: not named

    @property
    def unit_bytes(self) -> int:
        """Capacity of one partition unit."""
        return self.capacity_bytes // self.partition_units

    def vdd_range_v(self, vendor: str, quantile: str = DEFAULT_BER_QUANTILE
                    ) -> tuple[float, float]:
        """Allowed supply voltages: the statistic's usable floor (transferred) to nominal."""
        return (float(self.to_device_v(vendor_curve(vendor, quantile).lowest)),
                self.vdd_nominal_v)

    def vdd_test_trcd_ns(self) -> float:
        """The tRCD at which the VDD curve was measured, on this device (Voltron's 10 ns at
        the same tRCD / nominal)."""
        return float(self.to_device_trcd_ns(vdd_curve_trcd_ns()))

    def to_device_v(self, reference_v: float | np.ndarray) -> float | np.ndarray:
        return reference_v * self.vdd_nominal_v / self.ber_reference_nominal_v

    def to_reference_v(self, vdd_v: float | np.ndarray) -> float | np.ndarray:
        return vdd_v * self.ber_reference_nominal_v / self.vdd_nominal_v

    def to_device_trcd_ns(self, reference_ns: float | np.ndarray) -> float | np.ndarray:
        return reference_ns * self.trcd_nominal_ns / self.ber_reference_nominal_trcd_ns

    def to_reference_trcd_ns(self, trcd_ns: float | np.ndarray) -> float | np.ndarray:
        return trcd_ns * self.ber_reference_nominal_trcd_ns / self.trcd_nominal_ns

    def lowest_characterised_trcd_ns(self) -> float:
        """The shortest tRCD with data for every vendor (DIVA-DRAM's 5 ns, transferred)."""
        return float(self.to_device_trcd_ns(max(trcd_curve(v).lowest for v in list_vendors())))


# Voltron's most DIMMs (11) and its widest measured voltage range (DIVA-DRAM: 28 DIMMs)
DEFAULT_VENDOR = "B"


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


def earlier_fingerprints(name_or_path: str) -> frozenset[str]:
    """Digests of earlier versions of the DRAM preset file (its ``same_costs_as_sha256``)
    that cost every mapping as it does: a study bound to one resumes under it."""
    path = dram_preset_path(name_or_path)
    return frozenset() if path is None else same_costs_as(path)


def load_dram(name_or_path: str) -> DramDevice:
    """Load a DRAM preset by name or TOML path; raise ConfigError if unknown or invalid."""
    path = dram_preset_path(name_or_path)
    if path is None:
        raise ConfigError("DRAM device 'none' has no preset (it means: no DRAM)")
    document = read_toml(path)
    for key in RETIRED_KEYS:
        if lookup(document, key) is not None:
            raise ConfigError(f"{path}: '{key}' belongs to the retired assumed BER(tRCD) curve; "
                              "BER(tRCD) is measured now (DIVA-DRAM): replace the ber.trcd_* "
                              "entries by ber.reference_nominal_trcd_ns as in the shipped "
                              "presets")
    values, sources = checked_values(document, _SCHEMA, path,
                                     plain_keys=("name", "description", "ber_transfer",
                                                 SAME_COSTS_KEY),
                                     optional=_OPTIONAL)
    if (values.get("self_refresh_vdd_mw") is None) != (values.get("self_refresh_fixed_mw")
                                                       is None):
        raise ConfigError(f"{path}: give both self_refresh_vdd_mw and self_refresh_fixed_mw, "
                          "or neither")
    same_costs_as(path)  # a malformed list fails here, not when a study is resumed
    device = DramDevice(
        name=plain_string(document, "name", path),
        description=str(document.get("description", "")),
        ber_transfer=_ber_transfer(document, path),
        error_params=ErrorModelParams(**{k.split(".", 1)[1]: v for k, v in values.items()
                                         if k.startswith("errors.")}),
        sources=sources,
        **{_field_name(k): v for k, v in values.items() if not k.startswith("errors.")},
    )
    if device.capacity_bytes % device.partition_units:
        raise ConfigError(f"{path}: capacity_bytes must be a whole number of partition units "
                          f"({device.partition_units} {device.partition_unit}s)")
    if device.ber_trcd_region_fit not in (None, *REGION_FIT_TABLES):
        raise ConfigError(f"{path}: ber.trcd_region_fit must name a shipped fit "
                          f"({', '.join(REGION_FIT_TABLES)}), not "
                          f"'{device.ber_trcd_region_fit}'")
    if not device.trcd_min_ns <= device.trcd_nominal_ns:
        raise ConfigError(f"{path}: trcd_min_ns must not exceed trcd_nominal_ns")
    lowest_ns = device.lowest_characterised_trcd_ns()
    if device.trcd_min_ns < lowest_ns - 1e-9:
        raise ConfigError(f"{path}: trcd_min_ns {device.trcd_min_ns:g} is below the lowest "
                          f"characterised tRCD {lowest_ns:.4g} ns (DIVA-DRAM's shortest, at "
                          "the same tRCD / nominal)")
    if vdd_curve_trcd_ns() > device.ber_reference_nominal_trcd_ns + 1e-9:
        raise ConfigError(f"{path}: ber.reference_nominal_trcd_ns "
                          f"{device.ber_reference_nominal_trcd_ns:g} is below the tRCD the "
                          f"VDD curve was measured at ({vdd_curve_trcd_ns():g} ns)")
    return device


BER_TRANSFERS = ("measured", "relative-undervolt")  # how the Voltron curve applies


def _ber_transfer(document: dict, path: Path) -> str:
    value = plain_string(document, "ber_transfer", path)
    if value not in BER_TRANSFERS:
        raise ConfigError(f"{path}: ber_transfer must be one of {', '.join(BER_TRANSFERS)}, "
                          f"not '{value}'")
    return value


def _field_name(key: str) -> str:
    if key.startswith(("ber.", "partition.")):
        return key.replace(".", "_")
    return key.split(".")[-1]


# ordered quantiles whose curves bound each statistic from below (the mean stands alone)
_AT_LEAST = {"mean": ("mean",), "median": ("median",), "p90": ("median", "p90"),
             "max": ("median", "p90", "max")}


@lru_cache(maxsize=None)
def _curves(table: Path, knob: str) -> dict[tuple[str, str], MeasuredCurve]:
    """Every (vendor, statistic) curve of a derived table, its knob column named."""
    with open(table, newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    rows: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(lines):
        rows.setdefault(row["vendor"], []).append(row)
    curves = {}
    for vendor, points in rows.items():
        points.sort(key=lambda row: float(row[knob]))
        for quantile in BER_QUANTILES:
            cells = [row[column(quantile)].strip() for row in points]
            # usable: from the lowest point above which every point has the statistic
            first = len(cells)
            while first and cells[first - 1]:
                first -= 1
            usable = points[first:]
            if not usable:
                continue
            knobs = np.array([float(row[knob]) for row in usable])
            n_dimms = np.array([int(row["n_dimms"]) + int(row.get("n_stopped") or 0)
                                for row in usable])
            ber = np.array([float(cell) for cell in cells[first:]])
            monotone = np.maximum.accumulate(ber[::-1])[::-1]  # fill dips toward low knobs
            curves[(vendor, quantile)] = MeasuredCurve(vendor, quantile, knobs, monotone,
                                                       n_dimms)
    return curves


@lru_cache(maxsize=None)
def vdd_curve_trcd_ns(table: Path = VOLTRON_TABLE) -> float:
    """The tRCD (reference ns) at which the VDD curve was measured: the table's ``trcd_ns``
    column, one value for every row, within the DIVA-DRAM data."""
    with open(table, newline="") as handle:
        values = {float(row["trcd_ns"]) for row in
                  csv.DictReader(line for line in handle if not line.startswith("#"))}
    if len(values) != 1:
        raise ConfigError(f"{table}: the trcd_ns column must hold one value, not "
                          f"{sorted(values)}")
    value = values.pop()
    known = _curves(DIVA_TABLE, "trcd_ns")
    low = max(curve.lowest for curve in known.values())
    high = min(float(curve.knob[-1]) for curve in known.values())
    if not low <= value <= high:
        raise ConfigError(f"{table}: trcd_ns {value:g} is outside the DIVA-DRAM data "
                          f"[{low:g}, {high:g}] ns")
    return value


def list_vendors() -> list[str]:
    """Vendors with both a BER(VDD) and a BER(tRCD) curve."""
    vdd = {vendor for vendor, _ in _curves(VOLTRON_TABLE, "vdd_v")}
    return sorted(vdd & {vendor for vendor, _ in _curves(DIVA_TABLE, "trcd_ns")})


def check_quantile(quantile: str) -> None:
    if quantile not in BER_QUANTILES:
        raise ConfigError(f"unknown BER quantile '{quantile}' (known: "
                          f"{', '.join(BER_QUANTILES)})")


def _curve(table: Path, knob: str, vendor: str, quantile: str) -> MeasuredCurve:
    check_quantile(quantile)
    if vendor not in list_vendors():
        raise ConfigError(f"unknown vendor '{vendor}' (known: {', '.join(list_vendors())})")
    curves = _curves(table, knob)
    if (vendor, quantile) not in curves:
        raise ConfigError(f"{table.name}: vendor {vendor} has no usable {quantile} BER "
                          "at any measured point")
    return curves[(vendor, quantile)]


def vendor_curve(vendor: str, quantile: str = DEFAULT_BER_QUANTILE) -> MeasuredCurve:
    """The vendor's measured BER vs reference VDD (Voltron DDR3L at tRCD 10 ns, V) at one
    statistic, from its usable floor up."""
    return _curve(VOLTRON_TABLE, "vdd_v", vendor, quantile)


def trcd_curve(vendor: str, quantile: str = DEFAULT_BER_QUANTILE) -> MeasuredCurve:
    """The vendor's measured BER vs reference tRCD (DIVA-DRAM DDR3, ns) at one statistic."""
    return _curve(DIVA_TABLE, "trcd_ns", vendor, quantile)


def _ordered_ber(curve_of: Callable[[str, str], MeasuredCurve], vendor: str, quantile: str,
                 reference: np.ndarray) -> np.ndarray:
    """The statistic's curve, raised to every lower quantile's (median <= p90 <= max)."""
    bers = [curve_of(vendor, q).at(reference) for q in _AT_LEAST[quantile]]
    return np.minimum(np.max(bers, axis=0), MAX_BER)


def vdd_floor_message(device: DramDevice, vendor: str, quantile: str) -> str:
    """Where the usable VDD range of a statistic ends, and why (for error messages)."""
    low, _ = device.vdd_range_v(vendor, quantile)
    reference = vendor_curve(vendor, quantile).lowest
    return (f"the usable floor {low:.4g} V of vendor {vendor}'s {quantile} BER (Voltron "
            f"DDR3L {reference:g} V; below it too many of the vendor's DIMMs stopped working "
            f"or saturate for the {quantile} to be known)")


def ber_from_vdd(device: DramDevice, vendor: str, vdd_v: float | np.ndarray,
                 quantile: str = DEFAULT_BER_QUANTILE) -> np.ndarray:
    """Bit error rate at supply voltage ``vdd_v`` (any shape), at Voltron's test tRCD; see
    the module docstring."""
    curve = vendor_curve(vendor, quantile)
    reference_v = np.asarray(device.to_reference_v(np.asarray(vdd_v, dtype=float)))
    if (reference_v < curve.lowest - 1e-12).any():
        raise ConfigError(f"{device.name}: VDD {float(np.min(vdd_v)):.4g} V is below "
                          + vdd_floor_message(device, vendor, quantile))
    return _ordered_ber(vendor_curve, vendor, quantile, reference_v)


def ber_from_trcd(device: DramDevice, vendor: str, trcd_ns: float | np.ndarray,
                  quantile: str = DEFAULT_BER_QUANTILE) -> np.ndarray:
    """Bit error rate a shortened tRCD adds to the VDD curve (any shape): DIVA's excess
    over its value at Voltron's test tRCD, 0 from there up (``b_t_eff`` of the module
    docstring); ordered across quantiles as the measured curves are."""
    measured = measured_trcd_ber(device, vendor, trcd_ns, quantile)  # checks the range
    reference_ns = np.asarray(device.to_reference_trcd_ns(np.asarray(trcd_ns, dtype=float)))
    below = reference_ns < vdd_curve_trcd_ns() - 1e-9
    excess = []
    for q in _AT_LEAST[quantile]:
        at_test = _trcd_ber_at_test(vendor, q)
        raw = measured if q == quantile else _ordered_ber(trcd_curve, vendor, q, reference_ns)
        excess.append(np.where(below, np.maximum(raw - at_test, 0.0) / (1.0 - at_test), 0.0))
    return np.max(excess, axis=0)


@lru_cache(maxsize=None)
def _trcd_ber_at_test(vendor: str, quantile: str) -> float:
    """DIVA-DRAM's BER at Voltron's test tRCD (a constant per vendor and statistic)."""
    return float(_ordered_ber(trcd_curve, vendor, quantile, np.asarray(vdd_curve_trcd_ns())))


def measured_trcd_ber(device: DramDevice, vendor: str, trcd_ns: float | np.ndarray,
                      quantile: str = DEFAULT_BER_QUANTILE) -> np.ndarray:
    """DIVA-DRAM's bit error rate from a shortened tRCD (any shape), the curve at the same
    tRCD / nominal, at nominal VDD; see the module docstring."""
    curve = trcd_curve(vendor, quantile)
    reference_ns = np.asarray(device.to_reference_trcd_ns(np.asarray(trcd_ns, dtype=float)))
    if (reference_ns < curve.lowest - 1e-12).any():
        low = float(device.to_device_trcd_ns(curve.lowest))
        raise ConfigError(f"{device.name}: tRCD {float(np.min(trcd_ns)):.4g} ns is below the "
                          f"lowest characterised tRCD {low:.4g} ns (vendor {vendor})")
    return _ordered_ber(trcd_curve, vendor, quantile, reference_ns)


@dataclass(frozen=True)
class RegionFit:
    """One row of a region-fit table (``hw_models.derive.diva_regions``): at one DIVA tRCD
    (reference ns), whether the vendor's errors fill the 16 regions (``uniform``), are
    confined to a fraction of them (``confined``), or there are none (``none``)."""

    vendor: str
    trcd_reference_ns: float
    n_dimms: int
    n_with_errors: int
    n_uniform_rejected: int
    model: str
    fraction_mle: float | None
    lr_statistic: float | None
    median_ber_in_region: float | None
    max_ber_in_region: float | None


@lru_cache(maxsize=None)
def region_fits(name: str) -> dict[str, tuple[RegionFit, ...]]:
    """A shipped region-fit table by vendor, rows by ascending tRCD."""
    if name not in REGION_FIT_TABLES:
        raise ConfigError(f"unknown region fit '{name}' (known: {', '.join(REGION_FIT_TABLES)})")
    with open(Path(__file__).parent / "presets" / name, newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))

    def number(text: str) -> float | None:
        return float(text) if text.strip() else None

    fits: dict[str, list[RegionFit]] = {}
    for row in rows:
        fits.setdefault(row["vendor"], []).append(RegionFit(
            vendor=row["vendor"], trcd_reference_ns=float(row["trcd_ns"]),
            n_dimms=int(row["n_dimms"]), n_with_errors=int(row["n_with_errors"]),
            n_uniform_rejected=int(row["n_uniform_rejected"]), model=row["model"],
            fraction_mle=number(row["fraction_mle"]),
            lr_statistic=number(row["lr_statistic"]),
            median_ber_in_region=number(row["median_ber_in_region"]),
            max_ber_in_region=number(row["max_ber_in_region"])))
    return {vendor: tuple(sorted(each, key=lambda fit: fit.trcd_reference_ns))
            for vendor, each in fits.items()}


def trcd_error_model(device: DramDevice, vendor: str) -> dict | None:
    """The fitted spatial model of the vendor's tRCD errors, for ``dse dram``: the fit at
    every DIVA tRCD (also in device ns), and ``eden_model``, the EDEN model the fit supports
    for the errors this tool adds from tRCD (those below the VDD curve's test tRCD): 0 where
    every such point is ``uniform``, None otherwise. None when the preset names no fit."""
    if device.ber_trcd_region_fit is None:
        return None
    fits = region_fits(device.ber_trcd_region_fit)
    if vendor not in fits:
        raise ConfigError(f"{device.ber_trcd_region_fit}: no region fit for vendor {vendor}")
    below = {fit.model for fit in fits[vendor]
             if fit.trcd_reference_ns < vdd_curve_trcd_ns() - 1e-9 and fit.model != "none"}
    eden = EDEN_MODEL_OF_FIT.get(below.pop()) if len(below) == 1 else None
    return {"table": device.ber_trcd_region_fit, "vendor": vendor, "eden_model": eden,
            "applies_below_trcd_ns": device.vdd_test_trcd_ns(),
            "points": [{**asdict(fit), "trcd_ns": float(device.to_device_trcd_ns(
                fit.trcd_reference_ns))} for fit in fits[vendor]]}


def combined_ber(ber_vdd: float | np.ndarray, ber_trcd: float | np.ndarray) -> np.ndarray:
    """A bit is correct only if neither mechanism flips it, the two taken as independent
    (the module docstring says why, and which way this errs); ``ber_trcd`` is what tRCD
    adds beyond Voltron's test tRCD (``ber_from_trcd``)."""
    return 1.0 - (1.0 - np.asarray(ber_vdd)) * (1.0 - np.asarray(ber_trcd))


def energy_scale(device: DramDevice, vdd_v: float | np.ndarray) -> np.ndarray:
    """Factor on VDD-domain energy and power: (V / V_nominal)^2 (I proportional to V)."""
    return (np.asarray(vdd_v, dtype=float) / device.vdd_nominal_v) ** 2


def row_miss_ns(device: DramDevice, trcd_ns: float | np.ndarray) -> np.ndarray:
    """Latency of a read that opens a row: tRCD + tCL + one burst."""
    return np.asarray(trcd_ns, dtype=float) + device.tcl_ns + device.burst_ns


def check_operating_point(device: DramDevice, vendor: str, vdd_v: float, trcd_ns: float,
                          quantile: str = DEFAULT_BER_QUANTILE) -> None:
    """Raise ConfigError when VDD or tRCD is outside the device's allowed range (VDD: from
    the usable floor of the ``quantile`` BER)."""
    low_v, high_v = device.vdd_range_v(vendor, quantile)
    if vdd_v < low_v - 1e-9:
        raise ConfigError(f"{device.name}: VDD {vdd_v:g} V is below "
                          + vdd_floor_message(device, vendor, quantile))
    if not low_v - 1e-9 <= vdd_v <= high_v + 1e-9:
        raise ConfigError(f"{device.name}: VDD {vdd_v:g} V outside the allowed range "
                          f"[{low_v:.4g}, {high_v:g}] V (vendor {vendor})")
    lowest_ns = device.lowest_characterised_trcd_ns()
    if trcd_ns < lowest_ns - 1e-9:
        raise ConfigError(f"{device.name}: tRCD {trcd_ns:g} ns is below the lowest "
                          f"characterised tRCD {lowest_ns:.4g} ns (DIVA-DRAM's 5 ns at the "
                          "same tRCD / nominal)")
    if not device.trcd_min_ns - 1e-9 <= trcd_ns <= device.trcd_nominal_ns + 1e-9:
        raise ConfigError(f"{device.name}: tRCD {trcd_ns:g} ns outside the allowed range "
                          f"[{device.trcd_min_ns:g}, {device.trcd_nominal_ns:g}] ns")


def operating_point(device: DramDevice, vendor: str, vdd_v: float, trcd_ns: float,
                    quantile: str = DEFAULT_BER_QUANTILE) -> dict:
    """Everything ``dse dram`` reports about one (VDD, tRCD) point of a device."""
    check_quantile(quantile)
    check_operating_point(device, vendor, vdd_v, trcd_ns, quantile)
    b_v = float(ber_from_vdd(device, vendor, vdd_v, quantile))
    b_t = float(ber_from_trcd(device, vendor, trcd_ns, quantile))
    reference_v = float(device.to_reference_v(vdd_v))
    reference_ns = float(device.to_reference_trcd_ns(trcd_ns))
    return {
        "device": device.name, "vendor": vendor, "ber_quantile": quantile,
        "vdd_v": vdd_v, "trcd_ns": trcd_ns,
        "vdd_nominal_v": device.vdd_nominal_v, "trcd_nominal_ns": device.trcd_nominal_ns,
        "ber_vdd": b_v, "ber_trcd": b_t, "ber": float(combined_ber(b_v, b_t)),
        "ber_trcd_measured": float(measured_trcd_ber(device, vendor, trcd_ns, quantile)),
        "vdd_test_trcd_ns": device.vdd_test_trcd_ns(),
        "vdd_floor_v": {q: device.vdd_range_v(vendor, q)[0] for q in BER_QUANTILES},
        "ber_vdd_dimms": vendor_curve(vendor, quantile).dimms_at(reference_v),
        "ber_trcd_dimms": trcd_curve(vendor, quantile).dimms_at(reference_ns),
        "vdd_reference_v": reference_v, "trcd_reference_ns": reference_ns,
        "energy_scale": float(energy_scale(device, vdd_v)),
        "row_miss_ns": float(row_miss_ns(device, trcd_ns)),
        "ber_transfer": device.ber_transfer,
        "trcd_error_model": trcd_error_model(device, vendor),
    }
