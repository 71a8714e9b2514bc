"""Derive per-vendor BER(VDD) from the Voltron reduced-voltage DDR3L measurements.

Source data: Chang et al., "Understanding Reduced-Voltage Operation in Modern DRAM Devices"
(SIGMETRICS 2017), repository CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, file
``characterization_results/dimm_faulty_cachelines_out.csv``: per DIMM and VDD, the percentage
of 64-byte (512-bit) cache lines with at least one bit flip (DDR3L, nominal 1.35 V, 20 C).

Conversion (independent errors within a line; a lower bound when errors cluster): a DIMM with
a fraction f of faulty lines has BER = -ln(1 - f) / 512. Per vendor and voltage, over the
DIMMs measured there: ``mean_ber``, ``median_ber``, ``p90_ber``, ``max_ber``
(``hw_models.derive.dimm_stats``; a DIMM without errors counts as 0), with ``n_dimms`` and
``n_stopped``, the vendor's DIMMs whose lowest measured voltage is above this one.

DIMMs that stop working at a voltage have no row there or below (``n_stopped``: A 1.1 V 1, B
1.025 V 7 and 1.05 V 2, C 1.1 V 2 and 1.125 to 1.175 V 1). Other DIMMs were not measured at
some voltages above their lowest (B 1.125 V: 7 of 11 measured; A and B 1.175 to 1.3 V: 3 to 6
measured; C6 at 1.125 and 1.15 V, C9 at 1.125 V): those gaps leave a point with fewer DIMMs but
no known direction of bias. A DIMM that stopped working is worse than every DIMM still
measured, so every statistic at a voltage with ``n_stopped`` > 0 is biased low, the more so the
higher the quantile: with k of a vendor's n DIMMs stopped, the survivors' q-quantile is about
the population's q (n - k) / n quantile. Vendor B at 1.025 V (4 of 11 measured): its ``max`` is
about the 36th percentile of the vendor's DIMMs, its ``median`` the 18th, its ``p90`` the 33rd;
the mean leaves out DIMMs that return no correct data at all. The tool shows the DIMM count
behind every BER it reports.

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
# The header names the script by its former path, hw_models/voltron.py, as the shipped table
# does: the derived table stays byte-identical to it.
TABLE_HEADER = """\
# Per-vendor bit error rate vs supply voltage of DDR3L DIMMs (nominal 1.35 V, 20 C).
# Derived by hw_models/voltron.py from the Voltron data (Chang et al., SIGMETRICS 2017;
# CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, dimm_faulty_cachelines_out.csv):
# per DIMM ber = -ln(1 - f) / 512, f = fraction of 512-bit cache lines with an error;
# mean / median / p90 / max over the DIMMs measured at the voltage (quantiles type 7);
# n_stopped: the vendor's DIMMs with no row at this voltage or below (stopped working).
"""


def derive_ber_table(csv_path: Path) -> list[dict[str, object]]:
    """Rows (vendor, vdd_v, n_dimms, n_stopped, mean_ber, median_ber, p90_ber, max_ber,
    max_faulty_line_fraction), sorted."""
    per_point: dict[tuple[str, float], list[float]] = defaultdict(list)
    lowest_v: dict[tuple[str, str], float] = {}  # (vendor, DIMM) -> lowest measured VDD
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            vendor, vdd_v = row["vendor"], float(row["vdd"])
            per_point[(vendor, vdd_v)].append(float(row["error_cacheline_percent"]) / 100.0)
            key = (vendor, row["dimm_name"])
            lowest_v[key] = min(vdd_v, lowest_v.get(key, math.inf))
    rows = []
    for (vendor, vdd_v), fractions in sorted(per_point.items()):
        bers = [-math.log1p(-f) / BITS_PER_CACHE_LINE for f in fractions]
        stopped = sum(low > vdd_v for (v, _), low in lowest_v.items() if v == vendor)
        rows.append({"vendor": vendor, "vdd_v": vdd_v, "n_dimms": len(fractions),
                     "n_stopped": stopped, **population_columns(bers),
                     "max_faulty_line_fraction": max(fractions)})
    return rows


def write_table(rows: list[dict[str, object]], out: IO[str]) -> None:
    dimm_stats.write_table(TABLE_HEADER, rows, out, point_column="vdd_v")


def main(argv: list[str]) -> None:
    dimm_stats.derivation_main(
        argv, usage="usage: python -m hw_models.derive.voltron dimm_faulty_cachelines.csv > "
        "voltron_ber.csv", prog="voltron",
        derive=lambda source: write_table(derive_ber_table(source), sys.stdout), folder=False)


if __name__ == "__main__":
    main(sys.argv[1:])
