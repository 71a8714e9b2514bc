"""Approximate DRAM: presets, measured BER curves (VDD and tRCD), energy scale, latency."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from hw_models import ConfigError
from hw_models.derive.voltron import derive_ber_table, write_table
from hw_models.dram import (
    BER_QUANTILES,
    DEFAULT_BER_QUANTILE,
    DRAM_PRESET_DIR,
    VOLTRON_TABLE,
    ber_from_trcd,
    ber_from_vdd,
    check_operating_point,
    combined_ber,
    energy_scale,
    list_dram_presets,
    list_vendors,
    load_dram,
    measured_trcd_ber,
    operating_point,
    row_miss_ns,
    trcd_curve,
    trcd_error_model,
    vdd_curve_trcd_ns,
    vendor_curve,
)

VOLTRON_CSV = (Path(__file__).resolve().parents[3] / "shared" / "data" / "voltron"
               / "dimm_faulty_cachelines.csv")
DEVICES = ["ddr3l-1600", "ddr4-2400", "lpddr4-3200"]
ORDERED = ("median", "p90", "max")  # quantiles of one population: never decreasing


@pytest.fixture(scope="module")
def ddr3l():
    return load_dram("ddr3l-1600")


def test_three_presets_every_number_sourced():
    assert list_dram_presets() == DEVICES
    for name in list_dram_presets():
        device = load_dram(name)
        assert len(device.sources) == 30  # with the two self-refresh powers and the region fit
        assert all(len(note) > 10 for note in device.sources.values())


def test_ddr3l_currents_and_every_transfer_are_labelled_assumptions():
    text = (DRAM_PRESET_DIR / "ddr3l-1600.toml").read_text()
    assert "ASSUMPTION" in text
    for name in ("ddr4-2400", "lpddr4-3200"):
        assert load_dram(name).ber_transfer == "relative-undervolt"
        assert "assumption" in load_dram(name).sources["ber.reference_nominal_v"].lower()
    for name in DEVICES:
        device = load_dram(name)
        note = device.sources["ber.reference_nominal_trcd_ns"]
        assert "DIVA-DRAM" in note and device.ber_reference_nominal_trcd_ns == 13.75
        if name == "ddr3l-1600":  # DDR3L-1600 and DDR3-1600 share the nominal tRCD
            assert "same tRCD in ns" in note
        else:
            assert "same tRCD / tRCD_nominal (assumption)" in note


def test_default_quantile_is_the_worst_dimm():
    assert DEFAULT_BER_QUANTILE == "max" and BER_QUANTILES == ("mean", "median", "p90", "max")
    assert list_vendors() == ["A", "B", "C"]


@pytest.mark.parametrize("vendor, vdd_v, quantile, expected", [
    ("B", 1.075, "mean", 3.68e-7),
    ("B", 1.05, "median", 1.262e-6),   # rank 5 of 11: B5 and B12 stopped, ranked worst
    ("B", 1.075, "median", 5.82e-9),
    ("B", 1.075, "p90", 5.87e-7),
    ("B", 1.075, "max", 3.24e-6),
    ("A", 1.1, "median", 2.336e-4),   # 3 saturated + A3 stopped: ranks 4.5 of 0..9
    ("A", 1.125, "max", 7.18e-5),
    ("A", 1.15, "max", 0.0),
    ("A", 1.35, "mean", 0.0),
    ("C", 1.30, "max", 0.0),
])
def test_calibration_points(ddr3l, vendor, vdd_v, quantile, expected):
    assert float(ber_from_vdd(ddr3l, vendor, vdd_v, quantile)) == pytest.approx(expected,
                                                                             rel=2e-3)


def test_error_free_voltages_per_quantile(ddr3l):
    assert {v: vendor_curve(v, "max").error_free_from for v in "ABC"} == {
        "A": 1.15, "B": 1.15, "C": 1.30}
    assert {v: vendor_curve(v, "median").error_free_from for v in "ABC"} == {
        "A": 1.125, "B": 1.1, "C": 1.30}
    assert float(ber_from_vdd(ddr3l, "C", 1.2999)) > 0


def test_log_linear_between_points_and_held_below_error_free(ddr3l):
    low, high = (float(ber_from_vdd(ddr3l, "B", v, "mean")) for v in (1.075, 1.1))
    middle = float(ber_from_vdd(ddr3l, "B", 1.0875, "mean"))
    assert middle == pytest.approx(np.sqrt(low * high), rel=1e-9)
    last = float(ber_from_vdd(ddr3l, "B", 1.125, "mean"))
    assert float(ber_from_vdd(ddr3l, "B", 1.14, "mean")) == last > 0


def test_a_dip_is_filled_and_the_floor_is_where_every_point_above_is_known(tmp_path):
    """A table of one vendor: the median dips at 1.15 V (the DIMMs measured change), and
    the max is unknown at 1.0 and 1.1 V (empty cells): usable from 1.15 V only."""
    from hw_models.dram import _curves
    table = tmp_path / "table.csv"
    table.write_text("# a comment\n"
                     "vendor,vdd_v,n_dimms,n_stopped,n_saturated,mean_ber,median_ber,p90_ber,"
                     "max_ber\n"
                     "X,1.0,2,1,0,,1e-3,,\n"
                     "X,1.1,3,0,1,,1e-4,,\n"
                     "X,1.125,2,0,0,,1e-6,,\n"
                     "X,1.15,3,0,0,2e-6,2e-6,4e-6,5e-6\n"
                     "X,1.2,3,0,0,0,0,0,0\n")
    curves = _curves(table, "vdd_v")
    assert curves[("X", "median")].lowest == 1.0
    assert list(curves[("X", "median")].ber) == [1e-3, 1e-4, 2e-6, 2e-6, 0]  # dip filled
    assert list(curves[("X", "median")].n_dimms) == [3, 3, 2, 3, 3]  # stopped ones ranked
    assert curves[("X", "max")].lowest == curves[("X", "mean")].lowest == 1.15


def derive_rows_shipped() -> list[dict]:
    import csv
    with open(VOLTRON_TABLE) as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return [{k: (v if k == "vendor" else float(v) if v else None) for k, v in row.items()}
            for row in rows]


# usable floors, reference DDR3L volts: a type-7 quantile may not read a stopped or
# saturated DIMM (max, mean: none of them)
FLOORS = {"A": {"median": 1.1, "p90": 1.125, "max": 1.125, "mean": 1.125},
          "B": {"median": 1.05, "p90": 1.075, "max": 1.075, "mean": 1.075},
          "C": {"median": 1.175, "p90": 1.25, "max": 1.25, "mean": 1.25}}


def test_usable_floor_per_vendor_and_quantile(ddr3l):
    assert {v: {q: vendor_curve(v, q).lowest for q in FLOORS[v]} for v in "ABC"} == FLOORS
    lpddr4 = load_dram("lpddr4-3200")
    for vendor, floors in FLOORS.items():
        for quantile, floor in floors.items():
            assert ddr3l.vdd_range_v(vendor, quantile) == (floor, 1.35)
            assert lpddr4.vdd_range_v(vendor, quantile)[0] == pytest.approx(floor * 1.1 / 1.35)


@pytest.mark.parametrize("vendor, vdd_v, quantile, floor", [
    ("B", 1.025, "max", "1.075"),      # 7 of 11 stopped, B7 saturated
    ("B", 1.05, "max", "1.075"),       # B5, B12 stopped
    ("B", 1.05, "mean", "1.075"),
    ("B", 1.025, "median", "1.05"),
    ("A", 1.1, "max", "1.125"),        # A3 stopped, A4 A7 A10 saturated
    ("A", 1.1, "p90", "1.125"),
    ("C", 1.15, "median", "1.175"),    # C1 C5 C8 C9 on the 50 % plateau, C7 stopped
    ("C", 1.2, "max", "1.25"),         # C6, C9 at 49.2 %
    ("C", 1.2, "p90", "1.25"),
])
def test_below_the_usable_floor_is_refused_naming_it(ddr3l, vendor, vdd_v, quantile, floor):
    message = f"VDD {vdd_v:g} V is below the usable floor {floor} V of vendor {vendor}'s " \
              f"{quantile} BER"
    with pytest.raises(ConfigError, match=message):
        check_operating_point(ddr3l, vendor, vdd_v, 13.75, quantile)
    with pytest.raises(ConfigError, match=message):
        ber_from_vdd(ddr3l, vendor, vdd_v, quantile)


def test_survivors_only_statistics_are_gone_from_the_shipped_table():
    """Where a DIMM stopped or saturated, max and mean are empty; vendor C's 50 % plateau
    (1.1 to 1.175 V) is no BER of any statistic but the median at 1.175 V, whose rank 4
    of 0..8 falls on a measured DIMM."""
    for row in derive_rows_shipped():
        censored = row["n_stopped"] + row["n_saturated"]
        if censored:
            assert row["max_ber"] is None and row["mean_ber"] is None
        else:
            assert row["max_ber"] is not None and row["mean_ber"] is not None
    rows = {(r["vendor"], r["vdd_v"]): r for r in derive_rows_shipped()}
    assert [rows[("C", v)]["n_saturated"] for v in (1.1, 1.125, 1.15, 1.175, 1.2, 1.25)] == [
        7, 5, 4, 3, 2, 0]
    assert all(rows[("C", v)]["median_ber"] is None for v in (1.1, 1.125, 1.15))
    assert rows[("B", 1.025)]["n_stopped"] == 7 and rows[("B", 1.025)]["median_ber"] is None


def test_below_lowest_measured_voltage_is_an_error(ddr3l):
    with pytest.raises(ConfigError, match="below the usable floor 1.05 V of vendor B's "
                                          "median BER"):
        ber_from_vdd(ddr3l, "B", 1.0, "median")


def grid(device, vendor, quantile="max"):
    low, high = device.vdd_range_v(vendor, quantile)
    return (np.linspace(low, high, 400),
            np.linspace(device.trcd_min_ns, device.trcd_nominal_ns, 400))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vendor", ["A", "B", "C"])
@pytest.mark.parametrize("quantile", BER_QUANTILES)
def test_ber_monotone_in_vdd_and_trcd(device, vendor, quantile):
    preset = load_dram(device)
    volts, trcd = grid(preset, vendor, quantile)
    bers = ber_from_vdd(preset, vendor, volts, quantile)
    assert (np.diff(bers) <= 0).all() and bers[-1] == 0
    assert bers[0] > 0
    trcd_bers = ber_from_trcd(preset, vendor, trcd, quantile)
    assert (np.diff(trcd_bers) <= 0).all() and trcd_bers[-1] == 0 and trcd_bers[0] > 0
    assert (trcd_bers <= 0.5).all() and (bers <= 0.5).all()
    measured = measured_trcd_ber(preset, vendor, trcd, quantile)
    assert (np.diff(measured) <= 0).all() and (trcd_bers <= measured).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vendor", ["A", "B", "C"])
def test_quantiles_are_ordered_at_every_point(device, vendor):
    preset = load_dram(device)
    volts, trcd = grid(preset, vendor)
    for values in (
            [ber_from_vdd(preset, vendor, volts, q) for q in ORDERED],
            [ber_from_trcd(preset, vendor, trcd, q) for q in ORDERED]):
        median, p90, worst = values
        assert (worst >= p90).all() and (p90 >= median).all()


@pytest.mark.parametrize("vendor", ["A", "B", "C"])
@pytest.mark.parametrize("quantile", BER_QUANTILES)
def test_trcd_ber_is_0_from_the_longest_error_free_point(vendor, quantile):
    lpddr4 = load_dram("lpddr4-3200")
    curve = trcd_curve(vendor, quantile)
    error_free_ns = float(lpddr4.to_device_trcd_ns(curve.error_free_from))
    above = np.linspace(error_free_ns, lpddr4.trcd_nominal_ns, 50)
    assert (measured_trcd_ber(lpddr4, vendor, above, quantile) == 0).all()
    assert float(measured_trcd_ber(lpddr4, vendor, error_free_ns - 0.01, quantile)) > 0
    # errors added by shortening tRCD below the test's 12.5 ns: none at 12.5 ns itself
    assert curve.error_free_from <= 12.5


def test_trcd_error_free_points_and_the_cliff():
    assert {v: trcd_curve(v, "max").error_free_from for v in "ABC"} == {
        "A": 12.5, "B": 12.5, "C": 12.5}
    assert {v: trcd_curve(v, "median").error_free_from for v in "ABC"} == {
        "A": 12.5, "B": 10.0, "C": 10.0}
    ddr3l = load_dram("ddr3l-1600")
    at_10 = [float(measured_trcd_ber(ddr3l, v, 10.0, "median")) for v in "ABC"]
    at_7_5 = [float(measured_trcd_ber(ddr3l, v, 7.5, "median")) for v in "ABC"]
    assert max(at_10) <= 3e-5 and all(0.011 <= b <= 0.34 for b in at_7_5)


def test_trcd_log_linear_between_points_and_held_above_the_last_erroneous(ddr3l):
    low, high = (float(measured_trcd_ber(ddr3l, "A", t, "mean")) for t in (7.5, 10.0))
    assert float(measured_trcd_ber(ddr3l, "A", 8.75, "mean")) == pytest.approx(
        np.sqrt(low * high), rel=1e-9)
    assert float(measured_trcd_ber(ddr3l, "A", 12.0, "max")) == pytest.approx(6.167658e-2)
    assert float(measured_trcd_ber(ddr3l, "A", 12.5, "max")) == 0


def test_a_lower_quantiles_hold_raises_the_higher_ones(ddr3l):
    """Vendor B, tRCD just below 10 ns: median held at its 7.5 ns value, p90 and max with
    errors at 10 ns interpolate from there; the ordered curves take the median's."""
    median = float(measured_trcd_ber(ddr3l, "B", 9.9, "median"))
    assert median == pytest.approx(2.278692e-1)
    assert float(measured_trcd_ber(ddr3l, "B", 9.9, "p90")) == median
    assert float(measured_trcd_ber(ddr3l, "B", 10.0, "p90")) == pytest.approx(6.271828e-5)


def test_transfer_by_relative_undervolt_and_relative_trcd(ddr3l):
    ddr4, lpddr4 = load_dram("ddr4-2400"), load_dram("lpddr4-3200")
    for ddr3l_v in (1.075, 1.1, 1.125):
        assert float(ber_from_vdd(ddr4, "B", ddr3l_v * 1.2 / 1.35)) == pytest.approx(
            float(ber_from_vdd(ddr3l, "B", ddr3l_v)), rel=1e-9)
    for diva_ns in (6.0, 7.5, 8.2, 10.0, 11.0, 12.5):
        for vendor in "ABC":
            for curve in (ber_from_trcd, measured_trcd_ber):
                assert float(curve(lpddr4, vendor, diva_ns * 18.125 / 13.75)) == \
                    pytest.approx(float(curve(ddr3l, vendor, diva_ns)), rel=1e-9)


def test_below_lowest_measured_trcd_is_an_error(ddr3l):
    with pytest.raises(ConfigError, match="below the lowest characterised tRCD 5 ns"):
        ber_from_trcd(ddr3l, "C", 4.9)
    lpddr4 = load_dram("lpddr4-3200")
    assert lpddr4.lowest_characterised_trcd_ns() == pytest.approx(5 * 18.125 / 13.75)
    with pytest.raises(ConfigError, match="below the lowest characterised tRCD 6.591 ns"):
        check_operating_point(lpddr4, "B", 1.1, 6.5)


def test_no_preset_allows_a_trcd_below_the_data():
    for name in DEVICES:
        device = load_dram(name)
        assert device.trcd_min_ns >= device.lowest_characterised_trcd_ns()


def test_a_preset_below_the_data_or_with_the_retired_trcd_keys_is_refused(tmp_path):
    text = (DRAM_PRESET_DIR / "lpddr4-3200.toml").read_text()
    path = tmp_path / "fast.toml"
    path.write_text(text.replace("value = 9.0625", "value = 6.0"))
    with pytest.raises(ConfigError, match="trcd_min_ns 6 is below the lowest characterised "
                                          "tRCD 6.591 ns"):
        load_dram(str(path))
    old = tmp_path / "old.toml"
    old.write_text(text + '\n[ber.trcd_safe_fraction]\nvalue = 0.8\nsource = "old"\n')
    with pytest.raises(ConfigError, match="'ber.trcd_safe_fraction' belongs to the retired "
                                          "assumed BER\\(tRCD\\) curve") as caught:
        load_dram(str(old))
    assert "\n" not in str(caught.value)


def test_every_preset_names_the_region_fit_and_it_supports_model_0_below_10_ns():
    """The tRCD errors this tool adds (DIVA below 10 ns) fill all 16 regions on every DIMM of
    every vendor: uniform, EDEN model 0; at 10 ns they are confined to part of them."""
    for name in DEVICES:
        device = load_dram(name)
        assert device.ber_trcd_region_fit == "diva_trcd_regions.csv"
        assert "diva_regions.py" in device.sources["ber.trcd_region_fit"]
        for vendor in list_vendors():
            fit = trcd_error_model(device, vendor)
            assert fit is not None and fit["eden_model"] == 0
            assert fit["applies_below_trcd_ns"] == pytest.approx(device.vdd_test_trcd_ns())
            models = {p["trcd_reference_ns"]: p["model"] for p in fit["points"]}
            assert models == {5.0: "uniform", 7.5: "uniform", 10.0: "confined",
                              12.5: "confined"}
    fit = trcd_error_model(load_dram("ddr3l-1600"), "A")
    assert fit is not None
    ten = next(p for p in fit["points"] if p["trcd_reference_ns"] == 10.0)
    assert ten["trcd_ns"] == 10.0 and ten["fraction_mle"] == pytest.approx(0.76, abs=0.01)
    assert ten["max_ber_in_region"] > ten["median_ber_in_region"] > 0


def test_a_preset_without_a_region_fit_loads_and_a_stray_name_is_refused(tmp_path):
    text = (DRAM_PRESET_DIR / "lpddr4-3200.toml").read_text()
    start = text.index("[ber.trcd_region_fit]")
    end = text.index("\n\n", start)
    bare = tmp_path / "bare.toml"
    bare.write_text(text[:start] + text[end + 2:])
    device = load_dram(str(bare))
    assert device.ber_trcd_region_fit is None and trcd_error_model(device, "B") is None
    stray = tmp_path / "stray.toml"
    stray.write_text(text.replace('value = "diva_trcd_regions.csv"', 'value = "mine.csv"'))
    with pytest.raises(ConfigError, match="ber.trcd_region_fit must name a shipped fit"):
        load_dram(str(stray))


def test_energy_scale_and_row_miss(ddr3l):
    volts = np.linspace(1.025, 1.35, 50)
    assert (np.diff(energy_scale(ddr3l, volts)) > 0).all()
    assert float(energy_scale(ddr3l, 1.35)) == 1.0
    assert float(energy_scale(ddr3l, 1.35 * 0.9)) == pytest.approx(0.81)
    assert float(row_miss_ns(ddr3l, 13.75)) == pytest.approx(32.5)
    assert float(row_miss_ns(load_dram("lpddr4-3200"), 18.125)) == pytest.approx(40.625)
    assert float(combined_ber(np.array(0.1), np.array(0.2))) == pytest.approx(0.28)


def test_operating_point_contract():
    point = operating_point(load_dram("lpddr4-3200"), "B", 0.9, 12.0)
    assert {"device", "vendor", "ber_quantile", "vdd_v", "trcd_ns", "vdd_nominal_v",
            "trcd_nominal_ns", "ber_vdd", "ber_trcd", "ber", "ber_vdd_dimms",
            "ber_trcd_dimms", "vdd_reference_v", "trcd_reference_ns", "energy_scale",
            "row_miss_ns"} <= set(point)
    assert point["ber"] == pytest.approx(1 - (1 - point["ber_vdd"]) * (1 - point["ber_trcd"]))
    assert point["ber_quantile"] == "max" and point["ber_trcd_dimms"] == 28
    assert point["ber_vdd_dimms"] == 7  # interpolated between 1.1 V (11) and 1.125 V (7)
    assert 0 < point["ber_trcd"] <= point["ber_trcd_measured"]  # 12 ns: 9.10 reference ns
    assert point["vdd_test_trcd_ns"] == pytest.approx(10 * 18.125 / 13.75)
    assert point["vdd_floor_v"]["max"] == pytest.approx(1.075 * 1.1 / 1.35)
    median = operating_point(load_dram("lpddr4-3200"), "B", 0.9, 12.0, "median")
    assert median["ber_quantile"] == "median" and median["ber_trcd"] <= point["ber_trcd"]
    assert median["vdd_floor_v"]["median"] == pytest.approx(1.05 * 1.1 / 1.35)


def test_vdd_errors_at_voltrons_test_trcd_are_not_counted_twice(ddr3l):
    """Voltron measured at tRCD 10 ns: there, and up to nominal, the BER is the VDD curve's
    alone; below 10 ns DIVA adds only its excess over its own 10 ns value."""
    b_v = float(ber_from_vdd(ddr3l, "B", 1.1, "max"))
    assert b_v == pytest.approx(1.984891e-8)
    for trcd_ns in (10.0, 12.0, 13.75):
        point = operating_point(ddr3l, "B", 1.1, trcd_ns, "max")
        assert point["ber_trcd"] == 0 and point["ber"] == pytest.approx(b_v, rel=1e-9)
    assert operating_point(ddr3l, "B", 1.1, 10.0, "max")["ber_trcd_measured"] == \
        pytest.approx(2.819574e-3)  # what the old reading added on top
    at_10 = float(measured_trcd_ber(ddr3l, "A", 10.0, "mean"))
    at_8 = float(measured_trcd_ber(ddr3l, "A", 8.0, "mean"))
    assert float(ber_from_trcd(ddr3l, "A", 8.0, "mean")) == pytest.approx(
        (at_8 - at_10) / (1 - at_10), rel=1e-12)
    point = operating_point(ddr3l, "A", 1.15, 8.0, "mean")
    assert point["ber"] == pytest.approx((at_8 - at_10) / (1 - at_10), rel=1e-12)


def test_the_vdd_test_trcd_is_a_sourced_table_key(tmp_path):
    """The Voltron table states the tRCD it was measured at, with its source; a table with
    two test timings or one outside the DIVA-DRAM data is refused."""
    assert vdd_curve_trcd_ns() == 10.0
    header = "".join(line for line in VOLTRON_TABLE.read_text().splitlines(keepends=True)
                     if line.startswith("#"))
    assert "rcd4_rp4" in header and "2500 ps" in header and "ASSUMPTION" in header
    assert all(row["trcd_ns"] == 10.0 for row in derive_rows_shipped())
    for name in DEVICES:
        device = load_dram(name)
        assert device.vdd_test_trcd_ns() == pytest.approx(10 * device.trcd_nominal_ns / 13.75)
    text = VOLTRON_TABLE.read_text()
    for value, message in (("14.0", "trcd_ns 14 is outside the DIVA-DRAM data"),
                           (None, "the trcd_ns column must hold one value")):
        table = tmp_path / f"table{value}.csv"
        lines = text.splitlines(keepends=True)
        if value is None:  # one row at another timing
            lines[-1] = lines[-1].replace(",10.0,", ",12.5,")
            table.write_text("".join(lines))
        else:
            table.write_text(text.replace(",10.0,", f",{value},"))
        with pytest.raises(ConfigError, match=message):
            vdd_curve_trcd_ns(table)


@pytest.mark.parametrize("vdd_v, trcd_ns, message", [
    (1.2, 18.125, "VDD 1.2 V outside"),
    (0.8, 18.125, "VDD 0.8 V is below the usable floor 0.8759 V of vendor B's max BER"),
    (1.1, 20.0, "tRCD 20 ns outside"),
    (1.1, 8.0, "tRCD 8 ns outside"),
    (1.1, 5.0, "tRCD 5 ns is below the lowest characterised tRCD 6.591 ns"),
])
def test_operating_point_range(vdd_v, trcd_ns, message):
    with pytest.raises(ConfigError, match=message):
        check_operating_point(load_dram("lpddr4-3200"), "B", vdd_v, trcd_ns)


def test_unknown_device_and_vendor():
    with pytest.raises(ConfigError, match="unknown DRAM device 'hbm2'"):
        load_dram("hbm2")
    with pytest.raises(ConfigError, match="unknown vendor 'D'"):
        vendor_curve("D")
    with pytest.raises(ConfigError, match="unknown vendor 'D'"):
        trcd_curve("D")
    with pytest.raises(ConfigError, match=r"unknown BER quantile 'p95' \(known: mean, median, "
                                          r"p90, max\)"):
        ber_from_vdd(load_dram("lpddr4-3200"), "B", 1.0, "p95")


def test_malformed_dram_preset(tmp_path):
    text = (DRAM_PRESET_DIR / "lpddr4-3200.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("value = 6.4e9", "value = -1"))
    with pytest.raises(ConfigError, match="'bandwidth_bytes_per_s' must be a positive number"):
        load_dram(str(path))
    path.write_text(text.replace('ber_transfer = "relative-undervolt"', 'ber_transfer = "foo"'))
    with pytest.raises(ConfigError, match="ber_transfer must be one of measured, "
                                          "relative-undervolt, not 'foo'"):
        load_dram(str(path))
    with pytest.raises(ConfigError, match="'none' has no preset"):
        load_dram("none")


def test_voltron_script_help_and_errors(capsys):
    from hw_models.derive.voltron import main
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m hw_models.derive.voltron")
    with pytest.raises(SystemExit, match="no file /no/such.csv"):
        main(["/no/such.csv"])


def test_shipped_table_matches_its_source():
    if not VOLTRON_CSV.is_file():
        pytest.skip("the Voltron source data (../shared/data) is not on this machine")
    fresh = io.StringIO()
    write_table(derive_ber_table(VOLTRON_CSV), fresh)
    assert VOLTRON_TABLE.read_text() == fresh.getvalue()


def test_voltron_statistics_over_the_dimms_measured(tmp_path):
    source = tmp_path / "faulty.csv"
    source.write_text("dimm_name,vdd,vendor,error_cacheline_percent\n"
                      "X1,1.0,X,30\nX2,1.0,X,0\nX3,1.1,X,1\nX1,1.1,X,0\nX2,1.1,X,0\n"
                      "X4,1.1,X,0\nX4,0.9,X,0\nX2,0.9,X,46\n")
    lowest, low, high = derive_ber_table(source)
    # 1.0 V: X3 stopped (no row there or below), X4 not tested (a row below): left out
    assert (low["vdd_v"], low["n_dimms"], low["n_stopped"], low["n_saturated"]) == (
        1.0, 2, 1, 0)
    assert low["max_ber"] is None and low["mean_ber"] is None  # would read X3
    assert low["median_ber"] == pytest.approx(-np.log(0.7) / 512)  # rank 1 of 0..2: X1
    assert (high["n_dimms"], high["n_stopped"], high["median_ber"]) == (4, 0, 0.0)
    # 0.9 V: X2 at 46 % saturated, X1 and X3 stopped: 3 of 4 censored
    assert (lowest["vdd_v"], lowest["n_saturated"], lowest["n_stopped"]) == (0.9, 1, 2)
    assert all(lowest[f"{q}_ber"] is None for q in BER_QUANTILES)
