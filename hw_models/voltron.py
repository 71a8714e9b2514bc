"""Derive per-vendor BER(VDD) from the Voltron reduced-voltage DDR3L measurements.

Source data: Chang et al., "Understanding Reduced-Voltage Operation in Modern DRAM Devices"
(SIGMETRICS 2017), repository CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, file
``characterization_results/dimm_faulty_cachelines_out.csv``: per DIMM and VDD, the percentage
of 64-byte (512-bit) cache lines with at least one bit flip (DDR3L, nominal 1.35 V, 20 C).

Conversion (independent errors within a line; a lower bound when errors cluster): a DIMM with
a fraction f of faulty lines has BER = -ln(1 - f) / 512; a vendor's BER at a voltage is the mean
over the DIMMs measured there (DIMMs that stop working at low voltage have no row and do not
count). The derived table ships as ``presets/voltron_ber.csv``; regenerate it with

    python -m hw_models.voltron path/to/dimm_faulty_cachelines.csv \
        > hw_models/presets/voltron_ber.csv
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

BITS_PER_CACHE_LINE = 512
TABLE_HEADER = """\
# Per-vendor mean bit error rate vs supply voltage of DDR3L DIMMs (nominal 1.35 V, 20 C).
# Derived by hw_models/voltron.py from the Voltron data (Chang et al., SIGMETRICS 2017;
# CMU-SAFARI/DRAM-Voltage-Study @ b2089c3, dimm_faulty_cachelines_out.csv):
# ber = mean over DIMMs of -ln(1 - f) / 512, f = fraction of 512-bit cache lines with an error.
"""


def derive_ber_table(csv_path: Path) -> list[dict[str, object]]:
    """Rows (vendor, vdd_v, n_dimms, mean_ber, max_faulty_line_fraction), sorted."""
    per_point: dict[tuple[str, float], list[float]] = defaultdict(list)
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            fraction = float(row["error_cacheline_percent"]) / 100.0
            per_point[(row["vendor"], float(row["vdd"]))].append(fraction)
    rows = []
    for (vendor, vdd_v), fractions in sorted(per_point.items()):
        bers = [-math.log1p(-f) / BITS_PER_CACHE_LINE for f in fractions]
        rows.append({"vendor": vendor, "vdd_v": vdd_v, "n_dimms": len(fractions),
                     "mean_ber": sum(bers) / len(bers),
                     "max_faulty_line_fraction": max(fractions)})
    return rows


def write_table(rows: list[dict[str, object]], out) -> None:
    out.write(TABLE_HEADER)
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6e}" if isinstance(v, float) and k != "vdd_v" else v)
                         for k, v in row.items()})


def main(argv: list[str]) -> None:
    usage = "usage: python -m hw_models.voltron dimm_faulty_cachelines.csv > voltron_ber.csv"
    if argv in (["-h"], ["--help"]):
        print(usage)
        return
    if len(argv) != 1:
        sys.exit(usage)
    source = Path(argv[0])
    if not source.is_file():
        sys.exit(f"voltron: error: no file {source}")
    write_table(derive_ber_table(source), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
