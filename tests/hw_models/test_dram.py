"""Approximate DRAM: presets, BER calibration, energy scale, latency."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hw_models import ConfigError
from hw_models.dram import (
    DRAM_PRESET_DIR,
    VOLTRON_TABLE,
    ber_from_trcd,
    ber_from_vdd,
    check_operating_point,
    combined_ber,
    energy_scale,
    list_dram_presets,
    load_dram,
    operating_point,
    row_miss_ns,
    vendor_curve,
)
from hw_models.voltron import derive_ber_table

VOLTRON_CSV = (Path(__file__).resolve().parents[3] / "shared" / "data" / "voltron"
               / "dimm_faulty_cachelines.csv")


@pytest.fixture(scope="module")
def ddr3l():
    return load_dram("ddr3l-1600")


def test_three_presets_every_number_sourced():
    assert list_dram_presets() == ["ddr3l-1600", "ddr4-2400", "lpddr4-3200"]
    for name in list_dram_presets():
        device = load_dram(name)
        assert len(device.sources) == 27
        assert all(len(note) > 10 for note in device.sources.values())


def test_ddr3l_currents_are_labelled_an_assumption():
    text = (DRAM_PRESET_DIR / "ddr3l-1600.toml").read_text()
    assert "ASSUMPTION" in text
    for name in ("ddr4-2400", "lpddr4-3200"):
        assert load_dram(name).ber_transfer == "relative-undervolt"
        assert "assumption" in load_dram(name).sources["ber.reference_nominal_v"].lower()


@pytest.mark.parametrize("vendor, vdd_v, expected", [
    ("B", 1.075, 3.68e-7),
    ("B", 1.05, 8.46e-5),
    ("A", 1.15, 0.0),
    ("A", 1.35, 0.0),
    ("C", 1.30, 0.0),
])
def test_calibration_points(ddr3l, vendor, vdd_v, expected):
    assert float(ber_from_vdd(ddr3l, vendor, vdd_v)) == pytest.approx(expected, rel=2e-3)


def test_error_free_voltages(ddr3l):
    assert {v: vendor_curve(v).error_free_vdd_v for v in "ABC"} == {"A": 1.15, "B": 1.15,
                                                                   "C": 1.30}
    assert float(ber_from_vdd(ddr3l, "C", 1.2999)) > 0


def test_log_linear_between_points_and_held_below_error_free(ddr3l):
    low, high = (float(ber_from_vdd(ddr3l, "B", v)) for v in (1.05, 1.075))
    middle = float(ber_from_vdd(ddr3l, "B", 1.0625))
    assert middle == pytest.approx(np.sqrt(low * high), rel=1e-9)
    last = float(ber_from_vdd(ddr3l, "B", 1.125))
    assert float(ber_from_vdd(ddr3l, "B", 1.14)) == last > 0


def test_below_lowest_measured_voltage_is_an_error(ddr3l):
    with pytest.raises(ConfigError, match="below the lowest characterised voltage 1.025 V"):
        ber_from_vdd(ddr3l, "B", 1.0)


@pytest.mark.parametrize("device", ["ddr3l-1600", "ddr4-2400", "lpddr4-3200"])
@pytest.mark.parametrize("vendor", ["A", "B", "C"])
def test_ber_monotone_in_vdd_and_trcd(device, vendor):
    preset = load_dram(device)
    low, high = preset.vdd_range_v(vendor)
    bers = ber_from_vdd(preset, vendor, np.linspace(low, high, 400))
    assert (np.diff(bers) <= 0).all() and bers[-1] == 0 and bers[0] > 0
    trcd = np.linspace(preset.trcd_min_ns, preset.trcd_nominal_ns, 400)
    trcd_bers = ber_from_trcd(preset, trcd)
    assert (np.diff(trcd_bers) <= 0).all() and trcd_bers[-1] == 0 and trcd_bers[0] > 0
    assert (trcd_bers <= 0.5).all()


def test_transfer_by_relative_undervolt(ddr3l):
    ddr4 = load_dram("ddr4-2400")
    for ddr3l_v in (1.05, 1.075, 1.1):
        assert float(ber_from_vdd(ddr4, "B", ddr3l_v * 1.2 / 1.35)) == pytest.approx(
            float(ber_from_vdd(ddr3l, "B", ddr3l_v)), rel=1e-9)


def test_trcd_curve_shape(ddr3l):
    safe = 0.8 * 13.75
    assert float(ber_from_trcd(ddr3l, safe)) == 0
    assert float(ber_from_trcd(ddr3l, safe - 1)) == pytest.approx(1e-9 * 10 ** 1.5)
    assert float(ber_from_trcd(ddr3l, safe - 2)) == pytest.approx(1e-6)


def test_energy_scale_and_row_miss(ddr3l):
    volts = np.linspace(1.025, 1.35, 50)
    assert (np.diff(energy_scale(ddr3l, volts)) > 0).all()
    assert float(energy_scale(ddr3l, 1.35)) == 1.0
    assert float(energy_scale(ddr3l, 1.35 * 0.9)) == pytest.approx(0.81)
    assert float(row_miss_ns(ddr3l, 13.75)) == pytest.approx(32.5)
    assert float(row_miss_ns(load_dram("lpddr4-3200"), 18.125)) == pytest.approx(40.625)
    assert float(combined_ber(np.array(0.1), np.array(0.2))) == pytest.approx(0.28)


def test_operating_point_contract():
    point = operating_point(load_dram("lpddr4-3200"), "B", 0.9, 14.0)
    assert {"device", "vendor", "vdd_v", "trcd_ns", "vdd_nominal_v", "trcd_nominal_ns",
            "ber_vdd", "ber_trcd", "ber", "energy_scale", "row_miss_ns"} <= set(point)
    assert point["ber"] == pytest.approx(1 - (1 - point["ber_vdd"]) * (1 - point["ber_trcd"]))


@pytest.mark.parametrize("vdd_v, trcd_ns, message", [
    (1.2, 18.125, "VDD 1.2 V outside"),
    (0.8, 18.125, "VDD 0.8 V outside"),
    (1.1, 20.0, "tRCD 20 ns outside"),
    (1.1, 5.0, "tRCD 5 ns outside"),
])
def test_operating_point_range(vdd_v, trcd_ns, message):
    with pytest.raises(ConfigError, match=message):
        check_operating_point(load_dram("lpddr4-3200"), "B", vdd_v, trcd_ns)


def test_unknown_device_and_vendor():
    with pytest.raises(ConfigError, match="unknown DRAM device 'hbm2'"):
        load_dram("hbm2")
    with pytest.raises(ConfigError, match="unknown vendor 'D'"):
        vendor_curve("D")


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
    from hw_models.voltron import main
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m hw_models.voltron")
    with pytest.raises(SystemExit, match="no file /no/such.csv"):
        main(["/no/such.csv"])


def test_shipped_table_matches_its_source():
    if not VOLTRON_CSV.is_file():
        pytest.skip("the Voltron source data (../shared/data) is not on this machine")
    derived = derive_ber_table(VOLTRON_CSV)
    with open(VOLTRON_TABLE) as handle:
        shipped = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    assert len(shipped) == len(derived)
    for row, fresh in zip(shipped, derived):
        assert (row["vendor"], float(row["vdd_v"]), int(row["n_dimms"])) == (
            fresh["vendor"], fresh["vdd_v"], fresh["n_dimms"])
        assert float(row["mean_ber"]) == pytest.approx(fresh["mean_ber"], rel=1e-6)
