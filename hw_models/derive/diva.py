"""Derive per-vendor BER(tRCD) from the DIVA-DRAM reduced-latency DDR3 measurements.

Source data: Lee et al., "Design-Induced Latency Variation in Modern DRAM Chips:
Characterization, Analysis, and Latency Reduction Mechanisms" (SIGMETRICS 2017), repository
CMU-SAFARI/DIVA-DRAM @ b18d853, files ``profile_data/vendor{A,B,C}/summary/summary_NN``: one
file per DDR3 SO-DIMM (A 29, B 28, C 46; 103 files for what the paper calls 96 DIMMs), one line
per test condition, ``READ 256ms tRCD tRAS tRP tWR : <16 region marks> <error bits>``, the
count of erroneous bits over the whole module (blank: none).

Which rows: each file has rows that vary tRAS / tRP at tRCD = 5 cycles and rows that vary
tRCD (5, 4, 3, 2 cycles) at tRAS 15, tRP 5, tWR 6 cycles, the test's nominal tRAS / tRP.
Only the latter are used: they change tRCD alone.

Conversion and assumptions:

* **Timing**: one test cycle is 2.5 ns, so tRCD 5 / 4 / 3 / 2 cycles = 12.5 / 10 / 7.5 / 5 ns
  (tRAS 37.5 ns, tRP 12.5 ns, tWR 15 ns). The DDR3-1600 nominal tRCD is 13.75 ns; the tester's
  2.5 ns clock cannot set it, so 12.5 ns is the test's nominal point (0.91 x 13.75 ns).
* **Module capacity** (not in the files): 2 GiB = 2^34 bits, so BER = error bits / 2^34. The
  largest counts (up to 8.54e9 bits) sit just under half of 2^34, where a module returning
  random data saturates; 1 GiB would put them at 0.99 of all bits, so the modules hold at least
  2 GiB. If they held 4 GiB, every BER here would halve (0.3 decades lower).
* **Baseline subtracted per DIMM**: the BER at a tRCD counts the error bits *added* by
  shortening tRCD below 12.5 ns, max(count(tRCD) - count(12.5 ns), 0) / 2^34. Why: every test
  ran at a 256 ms refresh interval (4x the standard 64 ms), and many DIMMs already fail at the
  test's nominal 12.5 ns (raw median BER there: A 5.6e-7, B 2.9e-11, C 0; vendor A's worst
  DIMM 4.1e-3). Those bits fail without any tRCD reduction: they are the long refresh interval's
  retention failures (12.5 ns is 9 % below 13.75 ns, well inside AL-DRAM's >= 17.3 % error-free
  timing margin at standard refresh). A device in this tool refreshes at the standard
  interval, where nominal timing is error-free by specification; keeping the raw counts would
  give a nominal device a BER, the retention errors of a refresh interval it does not use.
  Subtracted, the table is 0 at 12.5 ns for every DIMM, and "0 above the longest tRCD at
  which a quantile measured no error" means what it says: 0 from 12.5 ns up, and from 10 ns up
  where a quantile has no added errors at 10 ns (vendors B and C, median).
  Two biases remain, in opposite directions: (1) a cell that has leaked for 256 ms holds less
  charge and senses more slowly, so some added errors would not occur at 64 ms refresh (the
  table overstates tRCD errors for a standard device); (2) retention failures come and go
  between runs, so a count difference carries the baseline's run-to-run noise: 6 DIMMs have
  fewer errors at 10 ns than at 12.5 ns (A 19, 20, 21; B 03; C 13, 26), counted as 0 and
  reported in ``n_below_baseline``; there the added errors may be understated by up to the
  baseline (A 20: 45 M bits at 12.5 ns, 1.3 M at 10 ns). The bit-level files of the
  repository (``rawdata_*.gz``, not used here) would allow a bit-wise set difference instead.
* **Population**: per vendor and tRCD, over the DIMMs with that row (vendor C summary_30 has
  no 5 ns row: 45 DIMMs there), ``mean_ber``, ``median_ber``, ``p90_ber``, ``max_ber``
  (``hw_models.derive.dimm_stats``; a DIMM without added errors counts as 0), with ``n_dimms``,
  ``n_error_free`` and ``n_below_baseline``.
* Not stated in the summaries: the test temperature and the data pattern; per-DIMM counts need
  not fall with tRCD (21 of vendor C's 45 DIMMs have fewer errors at 5 ns than at 7.5 ns), but
  every quantile in the table does.

Using the table for other devices (``hw_models.dram``): by tRCD relative to nominal, device
tRCD / device nominal = DIVA tRCD / 13.75 ns (an assumption, labelled in every preset). The
vendor letters are the paper's anonymised labels; ``--vendor`` pairs them with Voltron's
letters, which need not name the same manufacturers.

Regenerate the shipped table with

    python -m hw_models.derive.diva path/to/diva-dram > hw_models/presets/diva_trcd_ber.csv

where the folder holds ``vendorA/``, ``vendorB/``, ``vendorC/`` with the ``summary_NN`` files
(directly or in a ``summary/`` subfolder, as in the repository).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from hw_models.derive import dimm_stats
from hw_models.derive.dimm_stats import population_columns

CLOCK_NS = 2.5                      # one cycle of the DIVA-DRAM test infrastructure
MODULE_BITS = 2 * 2**30 * 8         # 2 GiB per DIMM (assumed: the files do not say)
REFRESH = "256ms"                   # every test condition in the files
NOMINAL_TRAS, NOMINAL_TRP, NOMINAL_TWR = 15, 5, 6   # cycles: the rows that vary tRCD alone
BASELINE_TRCD = 5                   # cycles: 12.5 ns, the test's nominal tRCD
HEADER = ("MODE", "tREFI", "tRCD", "tRAS", "tRP", "tWR")
# The header names the script by its former path, hw_models/diva.py, as the shipped table
# does: the derived table stays byte-identical to it.
TABLE_HEADER = """\
# Per-vendor bit error rate added by a shortened tRCD, DDR3 SO-DIMMs, over each vendor's DIMMs.
# Derived by hw_models/diva.py from the DIVA-DRAM data (Lee et al., SIGMETRICS 2017;
# CMU-SAFARI/DIVA-DRAM @ b18d853, profile_data/vendor*/summary/summary_NN): READ tests at a
# 256 ms refresh interval, tRAS 37.5 ns, tRP 12.5 ns, tWR 15 ns, tRCD 12.5/10/7.5/5 ns.
# ber = max(error bits at tRCD - error bits at 12.5 ns, 0) / 2^34 (2 GiB module: assumed);
# n_below_baseline: DIMMs with fewer error bits here than at 12.5 ns (counted as 0).
# Quantiles over DIMMs, type 7; a DIMM without added errors counts as 0.
"""


class DivaFormatError(ValueError):
    """A summary file that does not read as the DIVA-DRAM format."""


def read_summary(path: Path) -> dict[tuple[int, int, int, int], int]:
    """Error bits per (tRCD, tRAS, tRP, tWR) in cycles of one DIMM's summary file."""
    lines = [line for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    if not lines or tuple(lines[0].replace(":", " ").split()) != HEADER:
        raise DivaFormatError(f"{path}: expected the header {' '.join(HEADER)}")
    counts: dict[tuple[int, int, int, int], int] = {}
    for number, line in enumerate(lines[1:], start=2):
        condition, colon, result = line.partition(":")
        fields = condition.split()
        if not colon or len(fields) != 6 or fields[0] != "READ" or fields[1] != REFRESH \
                or not all(f.isdigit() for f in fields[2:]):
            raise DivaFormatError(f"{path}:{number}: expected 'READ {REFRESH} tRCD tRAS tRP "
                                  f"tWR : ...', got {line.strip()!r}")
        numbers = [token for token in result.split() if token.isdigit()]
        if len(numbers) > 1:
            raise DivaFormatError(f"{path}:{number}: more than one error count")
        key = (int(fields[2]), int(fields[3]), int(fields[4]), int(fields[5]))
        counts[key] = int(numbers[0]) if numbers else 0
    return counts


def summary_files(vendor_dir: Path) -> list[Path]:
    """A vendor's ``summary_NN`` files, directly in its folder or in ``summary/``."""
    files = sorted(vendor_dir.glob("summary_*")) or sorted(vendor_dir.glob("summary/summary_*"))
    return [path for path in files if path.is_file()]


def trcd_counts(counts: dict[tuple[int, int, int, int], int]) -> dict[int, int]:
    """The rows that vary tRCD alone: error bits per tRCD (cycles)."""
    return {trcd: bits for (trcd, tras, trp, twr), bits in counts.items()
            if (tras, trp, twr) == (NOMINAL_TRAS, NOMINAL_TRP, NOMINAL_TWR)}


def derive_trcd_table(directory: Path) -> list[dict[str, object]]:
    """Rows (vendor, trcd_ns, n_dimms, n_error_free, n_below_baseline, mean_ber, median_ber,
    p90_ber, max_ber), by vendor and ascending tRCD."""
    vendor_dirs = sorted(p for p in Path(directory).glob("vendor*") if p.is_dir())
    if not vendor_dirs:
        raise DivaFormatError(f"{directory}: no vendor*/ folders")
    rows: list[dict[str, object]] = []
    for vendor_dir in vendor_dirs:
        vendor = vendor_dir.name.removeprefix("vendor")
        dimms = [trcd_counts(read_summary(path)) for path in summary_files(vendor_dir)]
        if not dimms:
            raise DivaFormatError(f"{vendor_dir}: no summary_NN files")
        for path, dimm in zip(summary_files(vendor_dir), dimms):
            if BASELINE_TRCD not in dimm:
                raise DivaFormatError(f"{path}: no row at tRCD {BASELINE_TRCD} cycles, "
                                      f"tRAS {NOMINAL_TRAS}, tRP {NOMINAL_TRP} (the baseline)")
        for trcd in sorted({t for dimm in dimms for t in dimm}):
            measured = [dimm for dimm in dimms if trcd in dimm]
            added = [max(dimm[trcd] - dimm[BASELINE_TRCD], 0) for dimm in measured]
            rows.append({
                "vendor": vendor, "trcd_ns": trcd * CLOCK_NS, "n_dimms": len(measured),
                "n_error_free": sum(bits == 0 for bits in added),
                "n_below_baseline": sum(dimm[trcd] < dimm[BASELINE_TRCD] for dimm in measured),
                **population_columns([bits / MODULE_BITS for bits in added]),
            })
    return rows


def write_table(rows: list[dict[str, object]], out: IO[str]) -> None:
    dimm_stats.write_table(TABLE_HEADER, rows, out, point_column="trcd_ns")


def _derive(source: Path) -> None:
    try:
        rows = derive_trcd_table(source)
    except (DivaFormatError, OSError, UnicodeDecodeError) as exc:
        sys.exit(f"diva: error: {exc}")
    write_table(rows, sys.stdout)


def main(argv: list[str]) -> None:
    dimm_stats.derivation_main(argv, usage="usage: python -m hw_models.derive.diva DIVA_DIR > "
                               "diva_trcd_ber.csv", prog="diva", derive=_derive, folder=True)


if __name__ == "__main__":
    main(sys.argv[1:])
