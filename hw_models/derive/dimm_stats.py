"""Statistics over a vendor's DIMM population: the columns both derived BER tables carry.

Each measured operating point of a vendor has one BER per DIMM measured there. The tables
give, per point, ``mean_ber``, ``median_ber``, ``p90_ber`` and ``max_ber`` over those DIMMs;
a DIMM without errors counts as 0. Quantiles interpolate linearly between order statistics
(Hyndman and Fan's type 7, numpy's default): with n DIMMs sorted, quantile q is read at rank
(n - 1) q, so the median of an even count is the mean of the middle two and ``p90`` of 4
DIMMs lies between the worst two. The mean is not a quantile: where one DIMM is far worse
than the rest it can exceed ``p90``.

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


def population_columns(bers: Sequence[float]) -> dict[str, float]:
    """``mean_ber``, ``median_ber``, ``p90_ber``, ``max_ber`` of the per-DIMM BERs."""
    if not bers:
        raise ValueError("no DIMM measured at this point")
    stats = {"mean": math.fsum(bers) / len(bers)}
    stats.update({name: quantile(bers, rank) for name, rank in QUANTILE_RANK.items()})
    return {column(name): stats[name] for name in BER_QUANTILES}


def write_table(header: str, rows: list[dict[str, object]], out: IO[str], *,
                point_column: str) -> None:
    """A derived table: its provenance ``header``, then CSV rows; every float but the
    operating point (``point_column``) as %.6e."""
    out.write(header)
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6e}" if isinstance(value, float)
                               and key != point_column else value)
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
