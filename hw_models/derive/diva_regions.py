"""Fit where on a module the DIVA-DRAM errors fall: uniform (EDEN model 0) or confined to a
fraction of the 16 regions each summary line marks.

Source data: the DIVA-DRAM summaries (``hw_models.derive.diva``; Lee et al., SIGMETRICS 2017,
CMU-SAFARI/DIVA-DRAM @ b18d853, ``profile_data/vendor*/summary/summary_NN``). Each line
``READ 256ms tRCD tRAS tRP tWR : <8 marks> <8 marks> <error bits> S`` marks 16 units ``S``
(errors seen) or ``.`` (none); the trailing ``S`` stands on exactly the lines with errors.
What a unit is, the repository does not say (README: "a quick overview of how many error bits
are observed at different DRAM test conditions"); the data README calls them banks/regions.
They are not the module's 8 banks, nor 16 contiguous row ranges: in the repository's bit-level
files (``rawdata_NN_tRCD_tRAS_tRP.gz``, not shipped with dse), vendor A DIMMs 01, 03, 04 at
10 ns have errors in all 8 banks and in every 1/16 of the rows, where their summaries mark
9 of 16 (the bit-level files list fewer erroneous words than the summaries count bits, so
they may come from another run of the test). So "region" below means one of 16 equal parts of
the module (an assumption: equal sizes) whose layout in the address space is not known.

The fit, per vendor and tRCD (rows varying tRCD alone: tRAS 37.5, tRP 12.5, tWR 15 ns), over
the DIMMs with at least one error bit (a DIMM without errors says nothing about where they
fall). Per DIMM: n error bits (the raw count: the marks cannot be split between the
retention errors of the 256 ms refresh and the errors a shorter tRCD adds) in k marked regions.

* Uniform (EDEN model 0): every error bit falls in each region with probability 1/16. The
  chance of exactly the marked set is (k/16)^n q(n, k), q(n, k) the chance that n bits thrown
  uniformly into k regions hit all of them.
* Region-confined, one parameter f: each region of a DIMM is affected with probability f,
  independently; the error bits fall uniformly into the affected regions (at BER / f there,
  0 elsewhere). The chance of the marked set sums over the affected sets m >= k that contain
  it, C(16 - k, m - k) f^m (1 - f)^(16 - m) (k/m)^n q(n, k), over 1 - (1 - f)^16 (a DIMM
  with errors has an affected region). f = 1 is the uniform model.
* Criterion: the likelihood-ratio statistic LR = 2 (l(f_hat) - l(1)) over the vendor's DIMMs
  at that tRCD, against chi-square with one degree of freedom at 1 % (LR > 6.63: confined; the
  nested model sits on the boundary f = 1, where this is conservative). Beside it, per DIMM,
  the exact occupancy p-value of the uniform model, P(K <= k | n) (``n_uniform_rejected``:
  p < 0.01).
* ``fraction_*``: f_hat (maximum likelihood), and the median and the least of k/16 over the
  DIMMs with errors. ``*_ber_in_region``: per DIMM, the BER that tRCD adds (the
  ``diva_trcd_ber.csv`` definition: error bits beyond those at 12.5 ns, over 2^34) divided
  by k/16, the BER inside the marked regions; median and max over the DIMMs with errors (a
  lower bound on the concentration where some marked regions hold only retention errors).

What the summaries cannot fit: EDEN's models 1 (bitline) and 2 (wordline) need each error's
row and column (bank, row, column, bit: what ``rawdata_*.gz`` records), to compare how many
rows and bitlines hold errors with what the count spreads uniformly; model 3 (data-dependent)
needs the stored data pattern, which the summaries do not state. At region resolution they
look like model 0 where the BER is high: a weak cell flips at most with probability 1, so a
weak-line fraction is at least the BER (0.011-0.34 for the median DIMM at 7.5 ns): 1 % of a
2 GiB module's 2^18 rows of 8 KiB is about 160 weak rows per region, so every region holds
some unless weak lines and regions are aligned. "Uniform" here means "not confined to part of
the regions", not "model 0 rather than 1, 2 or 3".

Regenerate the shipped table with

    python -m hw_models.derive.diva_regions path/to/diva-dram > \\
        hw_models/presets/diva_trcd_regions.csv
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import IO, Callable, Sequence

import numpy as np

from hw_models.derive import dimm_stats
from hw_models.derive.diva import (
    BASELINE_TRCD,
    CLOCK_NS,
    HEADER,
    MODULE_BITS,
    NOMINAL_TRAS,
    NOMINAL_TRP,
    NOMINAL_TWR,
    REFRESH,
    DivaFormatError,
    summary_files,
)

REGIONS = 16                 # marks per summary line
ALPHA = 0.01                 # significance of both tests
# chi-square, 1 degree of freedom, upper 1 % point (scipy.stats.chi2.ppf(0.99, 1))
LR_CRITICAL = 6.634896601021214
_EXACT_BELOW = 4096          # error counts up to which q(n, k) is summed in integers
TABLE_HEADER = """\
# Where the DIVA-DRAM errors fall: uniform over the 16 regions each summary line marks, or
# confined to a fraction of them; fitted by hw_models/derive/diva_regions.py from the DIVA-DRAM
# summaries (Lee et al., SIGMETRICS 2017; CMU-SAFARI/DIVA-DRAM @ b18d853,
# profile_data/vendor*/summary/summary_NN), READ at a 256 ms refresh, tRAS 37.5 ns, tRP 12.5 ns.
# Per vendor and tRCD, over the DIMMs with error bits: fraction_mle = f maximising the
# likelihood of the marked sets (each region affected with probability f, errors uniform in the
# affected ones); lr_statistic = 2 (l(f_mle) - l(1)); model = confined if above 6.63 (chi-square,
# 1 dof, 1 %), else uniform (none: no DIMM with errors); n_uniform_rejected: DIMMs whose
# occupancy p-value under uniform is below 0.01; *_ber_in_region: tRCD-added BER / (k / 16).
"""


def read_summary_regions(path: Path) -> dict[tuple[int, int, int, int], tuple[int, int]]:
    """(error bits, regions marked) per (tRCD, tRAS, tRP, tWR) in cycles of one summary."""
    lines = [line for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    if not lines or tuple(lines[0].replace(":", " ").split()) != HEADER:
        raise DivaFormatError(f"{path}: expected the header {' '.join(HEADER)}")
    rows: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    for number, line in enumerate(lines[1:], start=2):
        condition, colon, result = line.partition(":")
        fields, tokens = condition.split(), result.split()
        if not colon or len(fields) != 6 or fields[0] != "READ" or fields[1] != REFRESH \
                or not all(f.isdigit() for f in fields[2:]):
            raise DivaFormatError(f"{path}:{number}: expected 'READ {REFRESH} tRCD tRAS tRP "
                                  f"tWR : ...', got {line.strip()!r}")
        marks = "".join(tokens[:2])
        if len(tokens) not in (2, 4) or len(marks) != REGIONS or set(marks) - {"S", "."}:
            raise DivaFormatError(f"{path}:{number}: expected {REGIONS} region marks (S or .)"
                                  f" and an error count, got {result.strip()!r}")
        bits = int(tokens[2]) if len(tokens) == 4 and tokens[2].isdigit() else 0
        marked = marks.count("S")
        if (bits > 0) != (marked > 0) or (len(tokens) == 4) != (bits > 0):
            raise DivaFormatError(f"{path}:{number}: error bits and region marks disagree "
                                  f"({bits} bits, {marked} regions marked)")
        key = (int(fields[2]), int(fields[3]), int(fields[4]), int(fields[5]))
        rows[key] = (bits, marked)
    return rows


def log_all_hit(n_bits: int, k: int) -> float:
    """log q(n, k): the chance that ``n_bits`` bits thrown uniformly into ``k`` regions hit
    every one of them (inclusion-exclusion; exact in integers for small counts)."""
    if k == 0:
        return 0.0 if n_bits == 0 else -math.inf
    if n_bits < k:
        return -math.inf
    if n_bits <= _EXACT_BELOW:
        hits = sum((-1) ** i * math.comb(k, i) * (k - i) ** n_bits for i in range(k + 1))
        return math.log(hits) - n_bits * math.log(k)
    miss = math.fsum((-1) ** (i + 1) * math.comb(k, i) * math.exp(n_bits * math.log1p(-i / k))
                     for i in range(1, k))
    return math.log1p(-miss)


def log_marked_set(n_bits: int, k: int, fraction: float, regions: int = REGIONS) -> float:
    """log P(exactly one given set of ``k`` regions holds errors | ``n_bits`` >= 1 error bits)
    under the region-confined model with affected fraction ``fraction`` (1: uniform)."""
    if not 1 <= k <= regions or n_bits < k or not 0 < fraction <= 1:
        raise ValueError(f"need 1 <= k <= {regions}, n_bits >= k, 0 < fraction <= 1")
    if fraction == 1:
        return n_bits * math.log(k / regions) + log_all_hit(n_bits, k)
    terms = [math.log(math.comb(regions - k, m - k)) + m * math.log(fraction)
             + (regions - m) * math.log1p(-fraction) + n_bits * math.log(k / m)
             for m in range(k, regions + 1)]
    top = max(terms)
    mixture = top + math.log(math.fsum(math.exp(t - top) for t in terms))
    some_affected = math.log(-math.expm1(regions * math.log1p(-fraction)))
    return mixture + log_all_hit(n_bits, k) - some_affected


def uniform_p_value(n_bits: int, k: int, regions: int = REGIONS) -> float:
    """P(K <= k | n_bits) for the number K of regions hit by ``n_bits`` uniform bits: the
    exact occupancy p-value of the uniform model (small: fewer regions than chance)."""
    terms = [math.log(math.comb(regions, j)) + n_bits * math.log(j / regions)
             + log_all_hit(n_bits, j) for j in range(1, k + 1)]
    terms = [t for t in terms if t > -math.inf]
    if not terms:
        return 0.0
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def log_likelihood(dimms: Sequence[tuple[int, int]], fraction: float,
                   regions: int = REGIONS) -> float:
    """Sum of ``log_marked_set`` over (error bits, regions marked) of DIMMs with errors."""
    return math.fsum(log_marked_set(n, k, fraction, regions) for n, k in dimms)


def fit_fraction(dimms: Sequence[tuple[int, int]], regions: int = REGIONS
                 ) -> tuple[float, float]:
    """(f_hat, LR): the maximum-likelihood affected fraction over DIMMs with errors, and
    2 (l(f_hat) - l(1)). A grid over (0, 1] finds the peak's neighbourhood, a golden-section
    search between the grid points around it refines it (to 1e-7)."""
    if not dimms:
        raise ValueError("no DIMM with errors to fit")
    grid = np.linspace(1.0 / (8 * regions), 1.0, 8 * regions)
    values = [log_likelihood(dimms, float(f), regions) for f in grid]
    best = int(np.argmax(values))
    f_hat, l_hat = float(grid[best]), values[best]
    if best < len(grid) - 1:
        low, high = float(grid[best - 1]) if best else 1e-9, float(grid[best + 1])
        inside = _golden_max(lambda f: log_likelihood(dimms, f, regions), low, high)
        if inside[1] > l_hat:
            f_hat, l_hat = inside
    return f_hat, max(0.0, 2.0 * (l_hat - values[-1]))


def _golden_max(function: Callable[[float], float], low: float, high: float,
                tolerance: float = 1e-7) -> tuple[float, float]:
    """(x, f(x)) at the maximum of a unimodal ``function`` on [low, high], golden section."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    fa, fb = function(a), function(b)
    while high - low > tolerance:
        if fa >= fb:
            high, b, fb = b, a, fa
            a = low + (1 - ratio) * (high - low)
            fa = function(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = function(b)
    return (a, fa) if fa >= fb else (b, fb)


def fit_point(dimms: Sequence[tuple[int, int, int]], regions: int = REGIONS
              ) -> dict[str, object]:
    """The table's fit columns from (error bits, regions marked, tRCD-added error bits) per
    DIMM measured at one vendor's tRCD."""
    erroneous = [(n, k, added) for n, k, added in dimms if n > 0]
    row: dict[str, object] = {
        "n_dimms": len(dimms), "n_with_errors": len(erroneous),
        "n_all_regions": sum(k == regions for _, k, _ in erroneous),
        "n_uniform_rejected": sum(uniform_p_value(n, k, regions) < ALPHA
                                  for n, k, _ in erroneous)}
    if not erroneous:
        return {**row, "fraction_mle": None, "fraction_median": None, "fraction_min": None,
                "lr_statistic": None, "model": "none", "median_ber_in_region": None,
                "max_ber_in_region": None}
    f_hat, lr = fit_fraction([(n, k) for n, k, _ in erroneous], regions)
    fractions = [k / regions for _, k, _ in erroneous]
    in_region = [added / MODULE_BITS / (k / regions) for _, k, added in erroneous]
    return {**row, "fraction_mle": f_hat, "fraction_median": dimm_stats.quantile(fractions, 0.5),
            "fraction_min": min(fractions), "lr_statistic": lr,
            "model": "confined" if lr > LR_CRITICAL else "uniform",
            "median_ber_in_region": dimm_stats.quantile(in_region, 0.5),
            "max_ber_in_region": max(in_region)}


def derive_region_table(directory: Path) -> list[dict[str, object]]:
    """Rows (vendor, trcd_ns, the ``fit_point`` columns) by vendor and ascending tRCD."""
    vendor_dirs = sorted(p for p in Path(directory).glob("vendor*") if p.is_dir())
    if not vendor_dirs:
        raise DivaFormatError(f"{directory}: no vendor*/ folders")
    nominal = (NOMINAL_TRAS, NOMINAL_TRP, NOMINAL_TWR)
    rows: list[dict[str, object]] = []
    for vendor_dir in vendor_dirs:
        paths = summary_files(vendor_dir)
        if not paths:
            raise DivaFormatError(f"{vendor_dir}: no summary_NN files")
        dimms = []
        for path in paths:
            found = {key[0]: value for key, value in read_summary_regions(path).items()
                     if key[1:] == nominal}
            if BASELINE_TRCD not in found:
                raise DivaFormatError(f"{path}: no row at tRCD {BASELINE_TRCD} cycles, "
                                      f"tRAS {NOMINAL_TRAS}, tRP {NOMINAL_TRP} (the baseline)")
            dimms.append(found)
        for trcd in sorted({t for dimm in dimms for t in dimm}):
            measured = [(bits, k, max(bits - dimm[BASELINE_TRCD][0], 0))
                        for dimm in dimms if trcd in dimm for bits, k in [dimm[trcd]]]
            rows.append({"vendor": vendor_dir.name.removeprefix("vendor"),
                         "trcd_ns": trcd * CLOCK_NS, **fit_point(measured)})
    return rows


def write_table(rows: list[dict[str, object]], out: IO[str]) -> None:
    dimm_stats.write_table(TABLE_HEADER, [{key: ("" if value is None else value)
                                           for key, value in row.items()} for row in rows],
                           out, point_column="trcd_ns")


def _derive(source: Path) -> None:
    try:
        rows = derive_region_table(source)
    except (DivaFormatError, OSError, UnicodeDecodeError) as exc:
        sys.exit(f"diva_regions: error: {exc}")
    write_table(rows, sys.stdout)


def main(argv: list[str]) -> None:
    dimm_stats.derivation_main(argv, usage="usage: python -m hw_models.derive.diva_regions "
                               "DIVA_DIR > diva_trcd_regions.csv", prog="diva_regions",
                               derive=_derive, folder=True)


if __name__ == "__main__":
    main(sys.argv[1:])
