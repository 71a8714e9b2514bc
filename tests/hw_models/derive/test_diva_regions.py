"""The region fit of the DIVA-DRAM errors: uniform (EDEN model 0) or confined to part of the
16 regions a summary line marks."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from hw_models.derive.diva import MODULE_BITS, DivaFormatError
from hw_models.derive.diva_regions import (
    LR_CRITICAL,
    REGIONS,
    derive_region_table,
    fit_fraction,
    fit_point,
    log_marked_set,
    main,
    read_summary_regions,
    uniform_p_value,
    write_table,
)

REGION_TABLE = (Path(__file__).resolve().parents[3] / "hw_models" / "presets"
                / "diva_trcd_regions.csv")
DIVA_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "diva-dram"
needs_data = pytest.mark.skipif(not DIVA_DIR.is_dir(), reason="the DIVA-DRAM source data "
                                "(../shared/data/diva-dram) is not on this machine")
HEADER = "MODE   tREFI tRCD tRAS  tRP  tWR : \n"


def line(trcd: int, marks: str, bits: int) -> str:
    """One summary line at tRAS 15, tRP 5, tWR 6 cycles."""
    count = f"{bits:>10} S" if bits else ""
    return f"READ   256ms    {trcd}   15    5    6 : {marks[:8]} {marks[8:]} {count}\n"


def synthetic_dimms(fraction: float, n_dimms: int, bits: int, seed: int
                    ) -> list[tuple[int, int]]:
    """(error bits, regions hit) of DIMMs drawn from the confined model with a known
    fraction: each region affected with probability ``fraction`` (at least one), ``bits``
    errors thrown uniformly into the affected regions."""
    rng = np.random.default_rng(seed)
    dimms = []
    for _ in range(n_dimms):
        affected = np.flatnonzero(rng.random(REGIONS) < fraction)
        while not affected.size:
            affected = np.flatnonzero(rng.random(REGIONS) < fraction)
        hit = np.unique(rng.choice(affected, size=bits))
        dimms.append((bits, int(hit.size)))
    return dimms


def test_the_fit_recovers_a_known_fraction_and_prefers_the_confined_model():
    dimms = synthetic_dimms(0.4, n_dimms=40, bits=2000, seed=1)
    f_hat, lr = fit_fraction(dimms)
    # 640 regions drawn at 0.4: the estimate's standard error is about 0.02
    assert f_hat == pytest.approx(0.4, abs=0.07)
    assert lr > LR_CRITICAL
    row = fit_point([(n, k, 0) for n, k in dimms])
    assert row["model"] == "confined" and row["n_uniform_rejected"] == 40


def test_uniform_errors_fit_as_uniform():
    dimms = synthetic_dimms(1.0, n_dimms=20, bits=300, seed=2)
    f_hat, lr = fit_fraction(dimms)
    assert f_hat == 1.0 and lr == 0.0
    row = fit_point([(n, k, n) for n, k in dimms] + [(0, 0, 0)])
    assert (row["model"], row["n_with_errors"], row["n_dimms"]) == ("uniform", 20, 21)
    assert row["max_ber_in_region"] == pytest.approx(300 / MODULE_BITS)


def test_few_errors_cannot_reject_uniform():
    """Two error bits per DIMM, thrown uniformly: one DIMM alone never rejects uniform
    (both in one region has chance 1/16), and the pooled test keeps it."""
    dimms = synthetic_dimms(1.0, n_dimms=30, bits=2, seed=3)
    row = fit_point([(n, k, 0) for n, k in dimms])
    assert row["n_uniform_rejected"] == 0
    lr = row["lr_statistic"]
    assert isinstance(lr, float) and lr < LR_CRITICAL and row["model"] == "uniform"


def test_occupancy_p_value_is_exact():
    assert uniform_p_value(2, 1) == pytest.approx(1 / 16)
    # P(K = 1) + P(K = 2) for 3 bits: (16 + C(16, 2) (2^3 - 2)) / 16^3
    assert uniform_p_value(3, 2) == pytest.approx((16 + 120 * 6) / 16**3)
    assert uniform_p_value(5000, 16) == 1.0
    assert uniform_p_value(42209, 9) < 1e-300


@pytest.mark.parametrize("fraction", [0.2, 0.7, 1.0])
def test_the_marked_set_probabilities_sum_to_one(fraction):
    """Over every non-empty set of 4 regions, for 3 error bits: a distribution."""
    total = sum(math.comb(4, k) * math.exp(log_marked_set(3, k, fraction, regions=4))
                for k in range(1, 4))
    assert total == pytest.approx(1.0, rel=1e-12)


def test_derivation_on_small_summaries(tmp_path):
    vendor = tmp_path / "vendorX"
    vendor.mkdir()
    confined, full, none = "S.S.S.S." * 2, "S" * 16, "." * 16
    (vendor / "summary_01").write_text(
        HEADER + line(5, none, 0) + line(4, confined, 90000) + line(3, full, 2**33))
    (vendor / "summary_02").write_text(
        HEADER + line(5, "S.S" + "." * 13, 3) + line(4, confined, 50000) + line(3, full, 2**32))
    rows = {row["trcd_ns"]: row for row in derive_region_table(tmp_path)}
    assert rows[7.5]["model"] == "uniform" and rows[7.5]["fraction_mle"] == 1.0
    ten = rows[10.0]
    assert ten["model"] == "confined" and ten["fraction_mle"] == pytest.approx(0.5, abs=0.01)
    assert ten["fraction_median"] == 0.5 and ten["n_uniform_rejected"] == 2
    # tRCD-added bits (beyond 12.5 ns) over the marked half of the module
    assert ten["max_ber_in_region"] == pytest.approx(90000 / MODULE_BITS / 0.5)
    assert ten["median_ber_in_region"] == pytest.approx((90000 + 49997) / 2 / MODULE_BITS / 0.5)
    twelve = rows[12.5]
    assert twelve["n_with_errors"] == 1 and twelve["model"] == "uniform"  # 3 bits: no verdict


def test_marks_that_contradict_the_count_are_refused(tmp_path):
    path = tmp_path / "summary_01"
    path.write_text(HEADER + line(5, "." * 16, 0).rstrip() + " 12 S\n")
    with pytest.raises(DivaFormatError, match="disagree"):
        read_summary_regions(path)
    path.write_text(HEADER + "READ   256ms    5   15    5    6 : SSSS 12 S\n")
    with pytest.raises(DivaFormatError, match="16 region marks"):
        read_summary_regions(path)


def test_script_help_and_errors(capsys, tmp_path):
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m hw_models.derive.diva_regions")
    with pytest.raises(SystemExit, match="diva_regions: error: .*no vendor"):
        main([str(tmp_path)])


@needs_data
def test_shipped_fit_equals_a_fresh_derivation():
    fresh = io.StringIO()
    write_table(derive_region_table(DIVA_DIR), fresh)
    assert REGION_TABLE.read_text() == fresh.getvalue()


@needs_data
def test_the_fit_on_the_shipped_data():
    """Every vendor: uniform at 7.5 and 5 ns (all 16 regions on every DIMM), confined at
    10 ns; vendor A DIMM 01 at 10 ns marks 9 of 16 regions with 42209 error bits."""
    rows = {(row["vendor"], row["trcd_ns"]): row for row in derive_region_table(DIVA_DIR)}
    for vendor in "ABC":
        for ns in (5.0, 7.5):
            assert rows[(vendor, ns)]["model"] == "uniform"
            assert rows[(vendor, ns)]["n_all_regions"] == rows[(vendor, ns)]["n_dimms"]
        assert rows[(vendor, 10.0)]["model"] == "confined"
    assert rows[("A", 10.0)]["fraction_mle"] == pytest.approx(0.76, abs=0.01)
    assert read_summary_regions(DIVA_DIR / "vendorA" / "summary_01")[(4, 15, 5, 6)] == (42209, 9)
