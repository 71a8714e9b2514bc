"""The DIVA-DRAM derivation: summaries to the shipped BER(tRCD) table."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from hw_models.derive.diva import (
    MODULE_BITS,
    DivaFormatError,
    derive_trcd_table,
    main,
    read_summary,
    write_table,
)

DIVA_TABLE = Path(__file__).resolve().parents[3] / "hw_models" / "presets" / "diva_trcd_ber.csv"
DIVA_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "diva-dram"
needs_data = pytest.mark.skipif(not DIVA_DIR.is_dir(), reason="the DIVA-DRAM source data "
                                "(../shared/data/diva-dram) is not on this machine")
HEADER = "MODE   tREFI tRCD tRAS  tRP  tWR : \n"


def summary(*rows: tuple[int, int, int, int | None]) -> str:
    """A summary file: (tRCD, tRAS, tRP, error bits or None) per row, tWR 6."""
    lines = [f"READ   256ms    {trcd}   {tras}    {trp}    6 : S....... ........ "
             f"{'' if bits is None else bits:>10} {'' if bits is None else 'S'}\n"
             for trcd, tras, trp, bits in rows]
    return HEADER + "".join(lines)


def shipped_rows() -> list[dict[str, str]]:
    import csv
    with open(DIVA_TABLE) as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


@needs_data
def test_shipped_table_equals_a_fresh_derivation():
    fresh = io.StringIO()
    write_table(derive_trcd_table(DIVA_DIR), fresh)
    assert DIVA_TABLE.read_text() == fresh.getvalue()


@needs_data
def test_table_equals_what_the_raw_summaries_give():
    """Re-read every summary here, independently of the parser, with numpy's statistics."""
    pattern = re.compile(r"READ\s+256ms\s+(\d)\s+15\s+5\s+6\s*:\s*\S+\s+\S+\s*(\d*)")
    table = {(r["vendor"], float(r["trcd_ns"])): r for r in shipped_rows()}
    for vendor, n_files in (("A", 29), ("B", 28), ("C", 46)):
        files = sorted((DIVA_DIR / f"vendor{vendor}").glob("summary_*"))
        assert len(files) == n_files
        counts = []
        for path in files:
            found = {int(m[1]): int(m[2] or 0) for m in pattern.finditer(path.read_text())}
            counts.append(found)
        for cycles in (2, 3, 4, 5):
            measured = [c for c in counts if cycles in c]
            added = np.array([max(c[cycles] - c[5], 0) for c in measured]) / 2**34
            row = table[(vendor, cycles * 2.5)]
            assert int(row["n_dimms"]) == len(measured)
            assert int(row["n_error_free"]) == int((added == 0).sum())
            for column, value in (("mean_ber", added.mean()),
                                  ("median_ber", np.median(added)),
                                  ("p90_ber", np.percentile(added, 90)),
                                  ("max_ber", added.max())):
                assert float(row[column]) == pytest.approx(value, rel=1e-6, abs=1e-15)
    assert int(table[("C", 5.0)]["n_dimms"]) == 45  # vendor C summary_30: no 5 ns row


@needs_data
def test_the_raw_medians_the_issue_quotes():
    """Without the baseline subtracted: median at most ~3e-5 at 10 ns, 0.011-0.34 at 7.5."""
    medians = {}
    for vendor in "ABC":
        for cycles in (3, 4):
            bits = [read_summary(p).get((cycles, 15, 5, 6))
                    for p in sorted((DIVA_DIR / f"vendor{vendor}").glob("summary_*"))]
            medians[(vendor, cycles)] = float(np.median([b for b in bits if b is not None]))
    assert max(medians[(v, 4)] for v in "ABC") / MODULE_BITS <= 3e-5
    assert all(0.011 <= medians[(v, 3)] / MODULE_BITS <= 0.34 for v in "ABC")


def test_derivation_on_small_summaries(tmp_path):
    vendor = tmp_path / "vendorX" / "summary"
    vendor.mkdir(parents=True)
    (vendor / "summary_01").write_text(summary(
        (5, 15, 5, 100), (5, 14, 4, 900), (4, 15, 5, 300), (3, 15, 5, 2**33)))
    (vendor / "summary_02").write_text(summary(
        (5, 15, 5, None), (4, 15, 5, None), (3, 15, 5, 2**32)))
    (vendor / "summary_03").write_text(summary(  # fewer errors at 10 ns than at 12.5 ns
        (5, 15, 5, 50), (4, 15, 5, 20), (3, 15, 5, 2**31)))
    rows = {row["trcd_ns"]: row for row in derive_trcd_table(tmp_path)}
    assert sorted(rows) == [7.5, 10.0, 12.5]  # the tRAS / tRP rows are not used
    ten = rows[10.0]
    assert (ten["vendor"], ten["n_dimms"], ten["n_error_free"], ten["n_below_baseline"]) == (
        "X", 3, 2, 1)
    assert ten["max_ber"] == pytest.approx(200 / MODULE_BITS)
    assert ten["median_ber"] == 0 and ten["mean_ber"] == pytest.approx(200 / 3 / MODULE_BITS)
    assert rows[12.5]["max_ber"] == 0 and rows[12.5]["n_error_free"] == 3
    assert rows[7.5]["median_ber"] == pytest.approx((2**32 - 0) / MODULE_BITS)


def test_a_dimm_without_the_baseline_row_or_another_format_is_refused(tmp_path):
    vendor = tmp_path / "vendorX"
    vendor.mkdir()
    (vendor / "summary_01").write_text(summary((4, 15, 5, 10)))
    with pytest.raises(DivaFormatError, match="no row at tRCD 5 cycles"):
        derive_trcd_table(tmp_path)
    (vendor / "summary_01").write_text(summary((5, 15, 5, 1)).replace("256ms", "64ms"))
    with pytest.raises(DivaFormatError, match="expected 'READ 256ms"):
        derive_trcd_table(tmp_path)
    (vendor / "summary_01").write_text("tRCD tRAS\n")
    with pytest.raises(DivaFormatError, match="expected the header"):
        derive_trcd_table(tmp_path)
    with pytest.raises(DivaFormatError, match="no vendor"):
        derive_trcd_table(tmp_path / "vendorX")


def test_script_help_and_errors(capsys, tmp_path):
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m hw_models.derive.diva")
    with pytest.raises(SystemExit, match="no folder /no/such"):
        main(["/no/such"])
    with pytest.raises(SystemExit, match="diva: error: .*no vendor"):
        main([str(tmp_path)])
