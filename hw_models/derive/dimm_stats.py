"""Statistics over a vendor's DIMM population: the columns both derived BER tables carry.

Each measured operating point of a vendor has one BER per DIMM measured there. The tables
give, per point, ``mean_ber``, ``median_ber``, ``p90_ber`` and ``max_ber`` over those DIMMs;
a DIMM without errors counts as 0. Quantiles interpolate linearly between order statistics
(Hyndman and Fan's type 7, numpy's default): with n DIMMs sorted, quantile q is read at rank
(n - 1) q, so the median of an even count is the mean of the middle two and ``p90`` of 4
DIMMs lies between the worst two. The mean is not a quantile: where one DIMM is far worse
than the rest it can exceed ``p90``.

Censored DIMMs (``population_columns(bers, n_censored)``): DIMMs known to be worse than every
DIMM with a value, without a value of their own (Voltron: a DIMM that stopped working, or
whose measurement saturates; ``hw_models.derive.voltron``). They take the top ranks of the
population of n = len(bers) + k DIMMs. A quantile q is known only while the order statistics
it reads are all uncensored: with type 7 it reads ranks floor((n - 1) q) and ceil((n - 1) q)
(0-based), so it is known iff ceil((n - 1) q) <= n - k - 1, i.e. iff it does not reach into
the k censored ranks. Then its value is the uncensored DIMMs' order statistics read at the
population's rank (higher than the quantile of the uncensored DIMMs alone, which would leave
the worst DIMMs out). ``max`` is known only with k = 0; so is the mean (a mean over the
uncensored DIMMs is biased low, and a censored DIMM has no value to average). Unknown
statistics are None (an empty cell in the tables): the operating point is outside the
usable range of that statistic. Examples: n = 10, k = 4: the median reads ranks 4 and 5 of
0..9, ceil(4.5) = 5 <= 5: known; p90 reads rank 9 > 5: unknown. n = 11, k = 2: median
(rank 5 <= 8) known, p90 (rank 9 > 8) not.

Pure Python, so that the derivations read like the arithmetic they do.
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import IO, Callable, Sequence

from hw_models.dram import BER_QUANTILES, column

QUANTILE_RANK = {"median": 0.5, "p90": 0.9, "max": 1.0}  # the ordered ones (mean apart)


def quantile(values: Sequence[float], q: float) -> float:
    """Type-7 quantile of ``values`` (0 <= q <= 1)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def known(n: int, n_censored: int, q: float) -> bool:
    """Whether the type-7 quantile ``q`` of ``n`` DIMMs, the worst ``n_censored`` of them
    without a value, reads only DIMMs with a value (the module docstring)."""
    return math.ceil((n - 1) * q - 1e-12) <= n - n_censored - 1


def censored_quantile(values: Sequence[float], n_censored: int, q: float) -> float | None:
    """Type-7 quantile ``q`` of ``values`` plus ``n_censored`` DIMMs worse than all of them;
    None where it would read a censored DIMM."""
    n = len(values) + n_censored
    if not n or not known(n, n_censored, q):
        return None
    ordered = sorted(values)
    position = (n - 1) * q
    low = math.floor(position)
    high = min(low + 1, n - 1)
    if high == low or position == low:
        return ordered[low]
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def population_columns(bers: Sequence[float], n_censored: int = 0
                       ) -> dict[str, float | None]:
    """``mean_ber``, ``median_ber``, ``p90_ber``, ``max_ber`` of the per-DIMM BERs, with
    ``n_censored`` more DIMMs worse than all of them (None: not known, see the module
    docstring)."""
    if not bers and not n_censored:
        raise ValueError("no DIMM measured at this point")
    stats: dict[str, float | None] = {
        "mean": math.fsum(bers) / len(bers) if bers and not n_censored else None}
    stats.update({name: censored_quantile(bers, n_censored, rank)
                  for name, rank in QUANTILE_RANK.items()})
    return {column(name): stats[name] for name in BER_QUANTILES}


def write_table(header: str, rows: list[dict[str, object]], out: IO[str], *,
                point_column: str | tuple[str, ...]) -> None:
    """A derived table: its provenance ``header``, then CSV rows; every float but the
    operating point's columns (``point_column``) as %.6e."""
    points = (point_column,) if isinstance(point_column, str) else point_column
    out.write(header)
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6e}" if isinstance(value, float)
                               and key not in points else value)
                         for key, value in row.items()})


def derivation_main(argv: list[str], *, usage: str, prog: str, derive: Callable[[Path], None],
                    folder: bool) -> None:
    """The command line of a derivation script: one path argument (a file, or a folder
    when ``folder``), ``-h``; ``derive`` writes the table to standard output."""
    if argv in (["-h"], ["--help"]):
        print(usage)
        return
    if len(argv) != 1:
        sys.exit(usage)
    source = Path(argv[0])
    if not (source.is_dir() if folder else source.is_file()):
        sys.exit(f"{prog}: error: no {'folder' if folder else 'file'} {source}")
    derive(source)
