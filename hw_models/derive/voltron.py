"""Derive per-vendor BER(VDD) from the Voltron reduced-voltage DDR3L measurements.

Source data: Chang et al., "Understanding Reduced-Voltage Operation in Modern DRAM Devices"
(SIGMETRICS 2017), repository CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, file
``characterization_results/dimm_faulty_cachelines_out.csv``: per DIMM and VDD, the percentage
of 64-byte (512-bit) cache lines with at least one bit flip (DDR3L, nominal 1.35 V, 20 C).

Conversion (independent errors within a line; a lower bound when errors cluster): a DIMM with
a fraction f of faulty lines has BER = -ln(1 - f) / 512.

Which DIMMs a statistic is over. Per vendor and voltage V, every DIMM of the vendor is in one
of four states, read from the rows alone (the CSV has no failure marker):

* **measured**: it has a row at V, with f <= ``SATURATED_FRACTION``; its BER is the value;
* **saturated**: a row at V with f > ``SATURATED_FRACTION`` (below);
* **stopped**: no row at V and none at any lower voltage. A DIMM that returns no usable data
  at V was not measured below it either, so its lowest row is where it stopped working;
  it is worse than every measured DIMM there;
* **not tested**: no row at V but a row at some lower voltage: it worked below V, so V was
  simply skipped (B 1.125 V: 4 of 11 DIMMs; A and B 1.175 to 1.3 V; C6 at 1.125 and 1.15 V,
  C9 at 1.125 V). It is left out of the population at V (no known direction of bias).

Saturated and stopped DIMMs are censored: known to be worse than every measured DIMM, with
no BER. The statistic at V is over the population of measured + censored DIMMs, the
censored ones ranked worst (``hw_models.derive.dimm_stats``): a quantile q is known iff its
type-7 ranks fall on measured DIMMs; ``max`` and ``mean`` need no censored DIMM. An
unknown statistic is an empty cell: V is outside the usable range of that statistic, and
the runtime (``hw_models.dram``) allows voltages from the lowest V from which every
measured voltage has the statistic (its floor) up to nominal.

Why saturated DIMMs are censored, and why ``SATURATED_FRACTION`` = 0.45. The conversion
assumes independent bit errors: f = 1 - (1 - b)^512. Vendor C sits at f = 0.500 within
+-0.4 % from 1.1 to 1.175 V on most DIMMs (C1, C5, C8, C9, C6), which the conversion turns
into a BER of 1.35e-3 on every one of them; independent errors would put a DIMM with twice
that BER at f = 0.75, so a ceiling at exactly one half of the lines is no BER but a
structure: half of the lines (a half of the array, every other burst, one of two
subarrays) failing as a whole, with many bits per line (a random-data line has 256 wrong
bits, not one). There the conversion no longer bounds the BER from below in any useful way:
the true BER of those lines can be anything up to 0.5, i.e. up to 370x the converted value.
Below the plateau the fractions spread (C 1.25 V: 0 to 25 %) and move with V, as
independent weak cells would. The threshold must sit below the plateau with margin for its
spread (49.2 % to 50.03 %; C3 reaches 45.5 % at 1.125 V on its way up), and above the
largest fractions that still move smoothly with V: B10 32.0 % at 1.05 V, C1 42.9 % and C8
41.6 % at 1.175 V. 0.45 is the round number between (the converted BER there is 1.17e-3).
It marks 3 of vendor A's 9 DIMMs at 1.1 V (69 to 90 %), B7 at 1.025 V (56 %), and vendor C's
plateau DIMMs and C6 / C9 at 1.2 V (49.2 %) as saturated.

Resulting usable floors (reference DDR3L volts; from ``n_dimms``, ``n_stopped``,
``n_saturated`` in the table), median / p90 / max / mean: A 1.1 / 1.125 / 1.125 / 1.125,
B 1.05 / 1.075 / 1.075 / 1.075, C 1.175 / 1.25 / 1.25 / 1.25. Before this rule, vendor B's
``max`` at 1.025 V was the worst of the 4 DIMMs still working out of 11 (about the
population's 36th percentile), and vendor C's BER was pinned at 1.35e-3 on its plateau.

Caveats of the rows themselves: the repository's spatial-locality plots show A1 and A5 at
1.075 V, B6 at 1.025 to 1.35 V and C7 at 1.15 and 1.175 V, none of which has a row (B6 has
none at all). Read by the rule, C7 counts as stopped at 1.175 V and below (the C floors are
the same without it); A1 / A5 at 1.075 V do not matter (no vendor-A row there).

Test timing: the same plots are named ``<DIMM>_rcd4_rp4_temp20_volt<V>.pdf``: tRCD = tRP = 4
cycles of the SoftMC tester's 2.5 ns clock (CMU-SAFARI/SoftMC, ``softMC.inc``: tCK 2500 ps),
so every row is an error rate at (V, tRCD 10 ns), 27 % below DDR3L-1600's 13.75 ns (research
note dram_presets.md section 7; DIVA-DRAM's files count tRCD in the same 2.5 ns cycles). The
table states it in its ``trcd_ns`` column (``TEST_TRCD_NS``), which ``hw_models.dram`` reads:
the VDD curve holds at (V, 10 ns), and a shorter tRCD adds only DIVA's excess over its
10 ns value. The other reading (Voltron at nominal tRCD, DIVA's errors added in full) gives
at vendor B, ``max``, 1.1 V and 10 ns a BER of 2.8e-3 instead of 2.0e-8.

The derived table ships as ``presets/voltron_ber.csv``; regenerate it with

    python -m hw_models.derive.voltron path/to/dimm_faulty_cachelines.csv \
        > hw_models/presets/voltron_ber.csv
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import IO

from hw_models.derive import dimm_stats
from hw_models.derive.dimm_stats import population_columns

BITS_PER_CACHE_LINE = 512
TABLE_HEADER = """\
# Per-vendor bit error rate vs supply voltage of DDR3L DIMMs (nominal 1.35 V, 20 C), at the
# test's tRCD (trcd_ns, inferred: every plot of the repository is named
# <DIMM>_rcd4_rp4_temp20_volt<V>, 4 cycles of the SoftMC tester's tCK 2500 ps, CMU-SAFARI/
# SoftMC hw/boards/ML605/softMC.inc). ASSUMPTION: from there to nominal tRCD the errors are
# as measured; the other reading (measured at nominal tRCD, DIVA-DRAM's 10 ns errors added)
# gives at vendor B, max, 1.1 V, 10 ns a BER of 2.8e-3 instead of 2.0e-8.
# Derived by hw_models/derive/voltron.py from the Voltron data (Chang et al., SIGMETRICS
# 2017; CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, dimm_faulty_cachelines_out.csv):
# per DIMM ber = -ln(1 - f) / 512, f = fraction of 512-bit cache lines with an error.
# n_dimms: DIMMs with a row at this voltage; n_stopped: the vendor's DIMMs with no row at
# this voltage or below (stopped working); n_saturated: rows with f > 0.45 (no BER).
# mean / median / p90 / max over measured + stopped + saturated DIMMs, the last two ranked
# worst (quantiles type 7); empty: the statistic would read a stopped or saturated DIMM
# (the voltage is outside its usable range).
"""
SATURATED_FRACTION = 0.45  # faulty-line fraction above which f gives no BER (docstring)
TEST_TRCD_NS = 10.0  # rcd4 x the SoftMC 2.5 ns clock (docstring)


def derive_ber_table(csv_path: Path) -> list[dict[str, object]]:
    """Rows (vendor, vdd_v, n_dimms, n_stopped, n_saturated, mean_ber, median_ber, p90_ber,
    max_ber, max_faulty_line_fraction), sorted; a statistic is None where it is not known
    (the module docstring)."""
    per_point: dict[tuple[str, float], list[float]] = defaultdict(list)
    lowest_v: dict[tuple[str, str], float] = {}  # (vendor, DIMM) -> lowest measured VDD
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            vendor, vdd_v = row["vendor"], float(row["vdd"])
            per_point[(vendor, vdd_v)].append(float(row["error_cacheline_percent"]) / 100.0)
            key = (vendor, row["dimm_name"])
            lowest_v[key] = min(vdd_v, lowest_v.get(key, math.inf))
    rows: list[dict[str, object]] = []
    for (vendor, vdd_v), fractions in sorted(per_point.items()):
        bers = [-math.log1p(-f) / BITS_PER_CACHE_LINE for f in fractions
                if f <= SATURATED_FRACTION]
        saturated = len(fractions) - len(bers)
        stopped = sum(low > vdd_v for (v, _), low in lowest_v.items() if v == vendor)
        rows.append({"vendor": vendor, "vdd_v": vdd_v, "trcd_ns": TEST_TRCD_NS,
                     "n_dimms": len(fractions),
                     "n_stopped": stopped, "n_saturated": saturated,
                     **population_columns(bers, stopped + saturated),
                     "max_faulty_line_fraction": max(fractions)})
    return rows


def write_table(rows: list[dict[str, object]], out: IO[str]) -> None:
    dimm_stats.write_table(TABLE_HEADER, rows, out, point_column=("vdd_v", "trcd_ns"))


def main(argv: list[str]) -> None:
    dimm_stats.derivation_main(
        argv, usage="usage: python -m hw_models.derive.voltron dimm_faulty_cachelines.csv > "
        "voltron_ber.csv", prog="voltron",
        derive=lambda source: write_table(derive_ber_table(source), sys.stdout), folder=False)


if __name__ == "__main__":
    main(sys.argv[1:])
