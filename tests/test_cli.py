"""The command line, as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from dse import __version__
from hw_models.soc import PRESET_DIR

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_bare_dse_prints_help():
    result = run()
    assert result.exit_code == 0 and "Commands:" in result.output


@pytest.mark.slow
def test_user_model_in_the_working_directory(tmp_path):
    (tmp_path / "herenet.py").write_text(
        "from torch import nn\n"
        "def net(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n"
        "def noisy(input_shape, num_classes):\n"
        "    raise RuntimeError('line one\\nline two')\n")
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cli; cli.main()"
    good = subprocess.run([sys.executable, "-c", code, "layers", "herenet:net", "--dataset",
                           "cifar10", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["layers"][0]["cin"] == 3 * 32 * 32
    bad = subprocess.run([sys.executable, "-c", code, "layers", "herenet:noisy", "--dataset",
                          "cifar10"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "line one line two" in bad.stderr


@pytest.mark.parametrize("command", [[], ["networks"], ["layers"], ["cost"], ["dram"],
                                     ["train"], ["probe"]])
def test_help_everywhere(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.slow
def test_networks_lists_the_zoo():
    result = run("networks")
    assert result.exit_code == 0
    for name in ("resnet8", "resnet20", "mobilenetv1", "resnet18", "40,813,184"):
        assert name in result.output
    rows = json.loads(run("networks", "--json").output)
    by_name = {row["network"]: row for row in rows}
    assert by_name["mobilenetv1"]["input_shape"] == [3, 96, 96]
    assert by_name["resnet18"]["num_classes"] == 200


def test_layers_json_contract():
    result = run("layers", "resnet20", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert {"network", "input_shape", "num_classes", "layers"} <= set(report)
    assert report["input_shape"] == [3, 32, 32] and report["num_classes"] == 10
    assert len(report["layers"]) == 22
    assert set(report["layers"][0]) == {"name", "kind", "cin", "cout", "kx", "ky", "stride",
                                        "groups", "ox", "oy", "macs", "weights"}


def test_layers_adapts_to_dataset():
    report = json.loads(run("layers", "resnet8", "--dataset", "digits", "--json").output)
    assert report["layers"][0]["cin"] == 1 and report["layers"][0]["ox"] == 8
    text = run("layers", "mobilenetv1").output
    assert "depthwise" in text and "total: 28 layers" in text


LAYER_KEYS = {"name", "kind", "cin", "cout", "kx", "ky", "ox", "oy", "groups", "n_digital",
              "n_analog", "digital_cycles", "analog_cycles", "latency_cycles", "energy_j",
              "dram_bytes", "dram_time_s", "dram_energy_j", "weight_ber", "activation_ber"}


def test_cost_json_contract_and_reference():
    result = run("cost", "--network", "resnet20", "--mapping", "all-digital", "--dram", "none",
                 "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["hw"] == "diana" and report["network"] == "resnet20"
    assert report["total"]["latency_cycles"] == pytest.approx(257_673.25, rel=1e-12)
    assert report["total"]["energy_j"] == pytest.approx(24.736632e-6, rel=1e-9)
    assert report["total"]["latency_s"] == pytest.approx(257_673.25 / 260e6, rel=1e-12)
    assert LAYER_KEYS <= set(report["layers"][0])
    assert report["dram"] is None and report["total"]["dram_energy_j"] == 0
    assert sum(layer["energy_j"] for layer in report["layers"]) == pytest.approx(
        report["total"]["energy_j"], rel=1e-12)


def test_cost_breaks_the_dram_energy_down_by_part():
    result = run("cost", "--network", "resnet20", "--mapping", "diana-heuristic", "--vdd", "1.0",
                 "--json")
    assert result.exit_code == 0, result.output
    total = json.loads(result.output)["total"]
    parts = total["dram_energy_breakdown_j"]
    assert set(parts) == {"read_write_core", "read_write_io", "activation", "active_standby",
                          "powerdown", "refresh", "self_refresh"}
    assert sum(parts.values()) == pytest.approx(total["dram_energy_j"], rel=1e-12)
    text = run("cost", "--network", "resnet20", "--mapping", "diana-heuristic").output
    assert "DRAM energy by part: read/write (array) " in text and "refresh" in text


def _idle_preset(tmp_path, mode: str) -> Path:
    preset = tmp_path / f"idle-{mode}.toml"
    preset.write_text('extends = "diana"\nname = "idle"\n[memory.idle_dram]\n'
                      f'value = "{mode}"\nsource = "test"\n')
    return preset


def test_the_idle_dram_setting_decides_what_a_dram_holding_no_tensor_costs(tmp_path):
    """ResNet20 all-digital keeps every tensor on chip: its DRAM energy is the idle DRAM's
    over the 0.99 ms inference, as docs/model.md ("Idle DRAM") gives it per mode."""
    def dram(mode: str | None) -> tuple[float, dict[str, float], dict]:
        hw = ("--hw", str(_idle_preset(tmp_path, mode))) if mode else ()
        result = run("cost", "--network", "resnet20", "--dataset", "cifar10", "--mapping",
                     "all-digital", *hw, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        return (report["total"]["dram_energy_j"], report["total"]["dram_energy_breakdown_j"],
                report["dram"])

    default, parts, summary = dram(None)
    assert summary["idle_dram"] == "power-down" and summary["holds_tensor"] is False
    assert default == pytest.approx(11.91e-6, rel=1e-3)  # 6.29 + 5.73 mW
    assert parts["powerdown"] > 0 and parts["refresh"] > 0 and parts["active_standby"] == 0
    assert dram("power-down")[0] == pytest.approx(default, rel=1e-12)
    active, parts, _ = dram("active-standby")
    assert active == pytest.approx(43.2e-6, rel=1e-2) and parts["powerdown"] == 0
    self_refresh, parts, _ = dram("self-refresh")
    assert self_refresh == pytest.approx(1.19e-6, rel=1e-2)
    assert parts["refresh"] == 0 and parts["powerdown"] == 0
    off, parts, summary = dram("off")
    assert off == 0 and not any(parts.values()) and summary["idle_dram"] == "off"
    text = run("cost", "--network", "resnet20", "--mapping", "all-digital").output
    assert "idle DRAM: power-down (memory.idle_dram; the DRAM holds no tensor" in text


def test_the_idle_dram_setting_leaves_a_mapping_with_tensors_in_dram_alone(tmp_path):
    def dram(hw: str) -> float:
        result = run("cost", "--network", "resnet20", "--mapping", "all-digital", "--hw", hw,
                     "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["total"]["dram_energy_j"]

    streamed = tmp_path / "streamed-off.toml"
    streamed.write_text(f'extends = "{PRESET_DIR / "diana-streamed.toml"}"\nname = "s"\n'
                        '[memory.idle_dram]\nvalue = "off"\nsource = "test"\n')
    assert dram(str(streamed)) == pytest.approx(dram("diana-streamed"), rel=1e-12)


def test_a_bad_idle_dram_value_is_one_line(tmp_path):
    result = run("cost", "--network", "resnet20", "--mapping", "all-digital", "--hw",
                 str(_idle_preset(tmp_path, "sleep")))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "memory.idle_dram" in lines[0] and "self-refresh" in lines[0]


def test_cost_text_output():
    result = run("cost", "--network", "resnet20", "--mapping", "min-latency", "--dram", "none")
    assert result.exit_code == 0
    assert "total: 86,964.45 cycles" in result.output
    assert "not costed" in result.output


def test_cost_with_json_mapping_and_user_preset(tmp_path):
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"blocks.0.conv1.conv": 8}))
    preset = tmp_path / "soc.toml"
    preset.write_text((PRESET_DIR / "diana.toml").read_text().replace("value = 260e6",
                                                                      "value = 130e6"))
    report = json.loads(run("cost", "--network", "resnet8", "--mapping", str(mapping),
                            "--hw", str(preset), "--dram", "none", "--json").output)
    layer = report["layers"][1]
    assert (layer["n_analog"], layer["n_digital"]) == (8, 8)
    assert report["total"]["latency_s"] == pytest.approx(
        report["total"]["latency_cycles"] / 130e6)


def bad_preset(tmp_path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text((PRESET_DIR / "diana.toml").read_text().replace("value = 24.96", "value = 0"))
    return str(path)


def bad_json(tmp_path, document) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["layers", "vgg16"], "unknown network 'vgg16'"),
    (["layers", "resnet8", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["layers", "nosuch.module:fn", "--dataset", "cifar10"], "cannot import 'nosuch.module'"),
    (["cost", "--network", "resnet8", "--mapping", "best"], "neither a heuristic"),
    (["cost", "--network", "resnet8", "--mapping", "{tmp}/missing.json"], "neither a heuristic"),
    (["cost", "--network", "resnet8", "--mapping", "@unknown_layer"], "unknown layer 'nope'"),
    (["cost", "--network", "resnet8", "--mapping", "@too_many"], "n_analog must be in [0, 16]"),
    (["cost", "--network", "resnet8", "--mapping", "@fraction"], "must be an integer"),
    (["cost", "--network", "mobilenetv1", "--mapping", "@depthwise"], "the analog array cannot"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--hw", "@preset"],
     "must be a positive number"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--hw", "tpu"],
     "unknown hardware 'tpu'"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--dram", "sram"],
     "unknown DRAM device 'sram'"),
    (["cost", "--mapping", "all-analog"], "Missing option '--network'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    documents = {
        "@unknown_layer": {"nope": 1},
        "@too_many": {"stem.conv": 17},
        "@fraction": {"stem.conv": 1.5},
        "@depthwise": {"blocks.0.depthwise.conv": 1},
    }
    args = [bad_preset(tmp_path) if a == "@preset"
            else bad_json(tmp_path, documents[a]) if a in documents
            else a.format(tmp=tmp_path) for a in args]
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dse: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_console_entry_point_exit_code_and_stderr():
    code = "import cli; cli.main()"
    bad = subprocess.run([sys.executable, "-c", code, "cost", "--network", "nope",
                          "--mapping", "all-digital"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("dse: error: unknown network 'nope' (known: mobilenetv1, "
                                  "resnet18, resnet20, resnet8; or package.module:function)")
    good = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                          text=True, cwd=ROOT)
    assert good.returncode == 0 and __version__ in good.stdout


def test_dram_point_json_contract():
    result = run("dram", "--dram", "ddr3l-1600", "--vendor", "B", "--vdd", "1.075",
                 "--trcd", "13.75", "--ber-quantile", "mean", "--json")
    assert result.exit_code == 0, result.output
    point = json.loads(result.output)
    assert {"device", "vendor", "ber_quantile", "vdd_v", "trcd_ns", "vdd_nominal_v",
            "trcd_nominal_ns", "ber_vdd", "ber_trcd", "ber", "ber_vdd_dimms",
            "ber_trcd_dimms", "energy_scale", "row_miss_ns"} <= set(point)
    assert point["ber_quantile"] == "mean" and point["ber_vdd_dimms"] == 11
    assert point["ber_vdd"] == pytest.approx(3.68e-7, rel=2e-3)
    assert point["ber_trcd"] == 0 and point["row_miss_ns"] == pytest.approx(32.5)
    text = run("dram", "--dram", "lpddr4-3200").output
    assert "BER combined   0.000e+00" in text and "energy scale" in text


def test_dram_shows_the_fitted_error_model():
    point = json.loads(run("dram", "--dram", "ddr4-2400", "--vendor", "A", "--json").output)
    fit = point["trcd_error_model"]
    assert fit["eden_model"] == 0 and fit["table"] == "diva_trcd_regions.csv"
    assert [p["model"] for p in fit["points"]] == ["uniform", "uniform", "confined",
                                                   "confined"]
    text = run("dram", "--dram", "ddr4-2400", "--vendor", "A").output
    assert ("error model of the tRCD errors (below 9.695 ns): EDEN model 0 (uniform over the "
            "16 regions)") in text
    assert "10 ns (here 9.695 ns): confined, affected fraction 0.76" in text
    assert "not added from tRCD here" in text


def test_dram_shows_both_bers_with_the_quantile_and_its_dimms():
    point = json.loads(run("dram", "--dram", "lpddr4-3200", "--vdd", "0.9", "--trcd", "14",
                           "--json").output)
    assert point["ber_quantile"] == "max"  # the default: the worst measured DIMM
    # 14 ns is 10.62 DIVA ns, above Voltron's test tRCD (10 ns, 13.18 ns here): DIVA's
    # errors there are in the VDD curve already
    assert point["ber_vdd"] > 0 and point["ber_trcd"] == 0
    assert point["ber_trcd_measured"] == pytest.approx(2.819574e-3)
    assert point["ber"] == pytest.approx(point["ber_vdd"], rel=1e-9)
    assert (point["ber_vdd_dimms"], point["ber_trcd_dimms"]) == (7, 28)
    median = json.loads(run("dram", "--dram", "lpddr4-3200", "--vdd", "0.9", "--trcd", "14",
                            "--ber-quantile", "median", "--json").output)
    assert median["ber_quantile"] == "median" and median["ber_trcd"] == 0
    assert median["ber_vdd"] < point["ber_vdd"]
    text = run("dram", "--dram", "lpddr4-3200", "--vdd", "0.9", "--trcd", "12").output
    assert "max over 7 DIMMs" in text and "max over 28 DIMMs" in text
    assert ("BER from tRCD  2.279e-01  (added below 13.18 ns: DIVA-DRAM DDR3 at 9.103 ns, "
            "2.279e-01") in text
    assert "tested at tRCD 13.18 ns" in text


def test_dram_shows_the_usable_floor_and_refuses_below_it():
    text = run("dram", "--dram", "lpddr4-3200", "--vdd", "0.9").output
    assert "usable from 0.8759 V for the max" in text
    assert ("usable VDD floor, vendor B: mean 0.8759, median 0.8556, p90 0.8759, max 0.8759 V"
            in text)
    # the old example: B's max over the 4 DIMMs of 11 still working at 1.025 V
    result = run("dram", "--dram", "lpddr4-3200", "--vdd", "0.8352", "--trcd", "9.0625")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "VDD 0.8352 V is below the usable floor 0.8759 V of vendor " \
        "B's max BER (Voltron DDR3L 1.075 V" in lines[0]
    refused = run("dram", "--dram", "ddr3l-1600", "--vendor", "C", "--vdd", "1.15",
                  "--ber-quantile", "median")
    assert refused.exit_code == 2 and "usable floor 1.175 V of vendor C's median" in \
        refused.stderr
    assert run("dram", "--dram", "ddr3l-1600", "--vendor", "C", "--vdd", "1.175",
               "--ber-quantile", "median").exit_code == 0


def test_dram_list():
    result = run("dram", "--list")
    assert result.exit_code == 0
    for name in ("ddr3l-1600", "ddr4-2400", "lpddr4-3200"):
        assert name in result.output
    assert "max over the vendor's DIMMs" in result.output
    assert "1.125/1.075/1.250" in result.output  # ddr3l-1600, floors of the max
    assert "VDD min: the usable floor of the max BER" in result.output
    rows = json.loads(run("dram", "--list", "--json").output)
    assert rows[0]["vdd_min_v"]["B"] == pytest.approx(1.075)
    assert rows[0]["vdd_floor_v"]["C"] == pytest.approx(
        {"mean": 1.25, "median": 1.175, "p90": 1.25, "max": 1.25})
    median = json.loads(run("dram", "--list", "--ber-quantile", "median", "--json").output)
    assert median[0]["vdd_min_v"] == pytest.approx({"A": 1.1, "B": 1.05, "C": 1.175})
    assert rows[0]["default_ber_quantile"] == "max"
    assert rows[2]["trcd_lowest_characterised_ns"] == pytest.approx(5 * 18.125 / 13.75)


def test_cost_with_default_dram():
    report = json.loads(run("cost", "--network", "resnet20", "--mapping", "all-digital",
                            "--vdd", "0.9", "--trcd", "14", "--json").output)
    assert report["dram"]["device"] == "lpddr4-3200"
    total = report["total"]
    assert total["energy_j"] == pytest.approx(total["compute_energy_j"] + total["dram_energy_j"])
    assert total["compute_energy_j"] == pytest.approx(24.736632e-6, rel=1e-9)
    assert total["dram_energy_j"] > 0  # background power only:
    # ResNet20's 271 kB of int8 weights stay in DIANA's 512 kB L2, its activations on chip
    assert sum(layer["dram_bytes"] for layer in report["layers"]) == 0
    assert all(layer["weights_resident"] and layer["weight_ber"] == 0
               for layer in report["layers"])
    assert all(LAYER_KEYS <= set(layer) for layer in report["layers"])
    assert report["dram"]["ber_quantile"] == "max"
    text = run("cost", "--network", "resnet20", "--mapping", "all-digital").output
    assert "DRAM: lpddr4-3200 vendor B (BER: max over its DIMMs)" in text and "+ DRAM" in text
    # ResNet18's 11.3 MB do not fit: every layer streams its int8 weights, at the BER of
    # the chosen DIMM; its first stage's identity blocks hold their 256 kB input through
    # conv2 (768 kB with conv2's input and output, over L2), so 5 tensors of 256 kB go
    # through DRAM: written once each, read 8 times (conv1 and conv2 of blocks 0 and 1,
    # their two adds, block 2's conv1 and shortcut conv)
    streamed = {quantile: json.loads(run(
        "cost", "--network", "resnet18", "--mapping", "all-digital", "--vdd", "0.88",
        "--trcd", "14", "--ber-quantile", quantile, "--json").output)
        for quantile in ("median", "max")}
    layers = streamed["max"]["layers"]
    assert sum(layer["dram_bytes"] for layer in layers) == 11_261_632 + 13 * 64 * 64 * 64
    assert all(not layer["weights_resident"] and layer["weight_ber"] > 0 for layer in layers)
    assert streamed["median"]["dram"]["ber_quantile"] == "median"
    assert 0 < streamed["median"]["layers"][0]["weight_ber"] < layers[0]["weight_ber"]


def test_cost_no_overlap_is_slower():
    args = ["cost", "--network", "resnet18", "--mapping", "all-analog", "--json"]
    overlapped = json.loads(run(*args).output)["total"]["latency_s"]
    serial = json.loads(run(*args, "--no-overlap").output)["total"]["latency_s"]
    assert serial > overlapped


@pytest.mark.parametrize("args, message", [
    (["dram", "--dram", "hbm2"], "unknown DRAM device 'hbm2'"),
    (["dram", "--dram", "ddr4-2400", "--vendor", "Z"],
     "Invalid value for '--vendor': 'Z' is not one of 'A', 'B', 'C'"),
    (["dram", "--dram", "ddr4-2400", "--vdd", "0.7"],
     "VDD 0.7 V is below the usable floor 0.9556 V of vendor B's max BER"),
    (["dram", "--dram", "ddr4-2400", "--vdd", "1.3"], "VDD 1.3 V outside"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--vdd", "0.86"],
     "VDD 0.86 V is below the usable floor 0.8759 V of vendor B's max BER"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--vdd", "0.85",
      "--ber-quantile", "median"],
     "VDD 0.85 V is below the usable floor 0.8556 V of vendor B's median BER"),
    (["dram", "--dram", "ddr4-2400", "--trcd", "3"],
     "tRCD 3 ns is below the lowest characterised tRCD 4.847 ns"),
    (["dram", "--dram", "ddr4-2400", "--trcd", "5"], "tRCD 5 ns outside"),
    (["dram", "--dram", "lpddr4-3200", "--trcd", "6.5"],
     "lpddr4-3200: tRCD 6.5 ns is below the lowest characterised tRCD 6.591 ns"),
    (["dram", "--dram", "lpddr4-3200", "--ber-quantile", "p95"],
     "Invalid value for '--ber-quantile': 'p95' is not one of 'mean', 'median', 'p90', 'max'"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--ber-quantile", "worst"],
     "Invalid value for '--ber-quantile'"),
    (["dram"], "give --dram"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--dram", "none", "--vdd",
      "1.0"], "need a DRAM device"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--partition-layout",
      "@over"], "whole number of banks"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--partition-layout",
      "@unknown"], "unknown tensor 'weights/conv9'"),
    (["cost", "--network", "resnet8", "--mapping", "all-analog", "--partition-layout",
      "halves"], "neither a layout"),
])
def test_bad_dram_input_is_one_line_exit_2(tmp_path, args, message):
    documents = {
        "@over": {"partitions": [{"name": "p", "capacity_bytes": 100}]},
        "@unknown": {"partitions": [{"name": "p", "capacity_bytes": 805306368}],
                     "tensors": {"weights/conv9": "p"}},
    }
    args = [bad_json(tmp_path, documents[a]) if a in documents else a for a in args]
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.fixture(scope="module")
def synthetic_results(tmp_path_factory):
    """A results folder with a briefly trained resnet8 / synthetic checkpoint."""
    results = tmp_path_factory.mktemp("results")
    result = run("train", "--dataset", "synthetic", "--epochs", "2", "--results-dir",
                 str(results), "--json")
    assert result.exit_code == 0, result.stderr
    return results, json.loads(result.stdout)


@pytest.mark.slow
def test_train_caches_the_checkpoint(synthetic_results):
    results, report = synthetic_results
    assert report["trained"] and 0 <= report["val_accuracy"] <= 1
    assert report["checkpoint"].startswith(str(results / "checkpoints"))
    again = json.loads(run("train", "--dataset", "synthetic", "--epochs", "2", "--results-dir",
                           str(results), "--json").stdout)
    assert not again["trained"] and again["checkpoint"] == report["checkpoint"]


@pytest.mark.slow
def test_probe_json_contract(synthetic_results, tmp_path):
    from hw_models.soc import PRESET_DIR
    results, _ = synthetic_results
    # ResNet8's weights stay in DIANA's L2 (no DRAM error): a preset that streams them
    streaming = tmp_path / "streaming.toml"
    streaming.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    result = run("probe", "--dataset", "synthetic", "--epochs", "2", "--results-dir",
                 str(results), "--mapping", "all-analog", "--vdd", "0.9", "--steps", "2",
                 "--finetune-seeds", "2", "--error-seeds", "2", "--hw", str(streaming),
                 "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"network", "dataset", "mapping", "accuracy", "accuracy_std", "accuracy_ci_low",
            "accuracy_ci_high", "baseline_accuracy", "accuracy_change_pp",
            "accuracy_change_ci_low_pp", "accuracy_change_ci_high_pp", "images", "split",
            "steps", "finetune_seeds", "error_seeds", "seconds"} <= set(report)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["baseline_accuracy"] <= 1
    assert report["accuracy_ci_low"] <= report["accuracy"] <= report["accuracy_ci_high"]
    assert (report["accuracy_change_ci_low_pp"] <= report["accuracy_change_pp"]
            <= report["accuracy_change_ci_high_pp"])
    assert report["accuracy_change_pp"] == pytest.approx(
        (report["accuracy"] - report["baseline_accuracy"]) * 100)  # negative: worse
    assert (report["steps"], report["finetune_seeds"], report["error_seeds"]) == (2, 2, 2)
    assert (report["images"], report["split"]) == (128, "val")
    assert report["max_weight_ber"] > 0


def test_train_reports_the_checkpoint_it_used(synthetic_results, tmp_path):
    _, report = synthetic_results
    own = json.loads(run("train", "--dataset", "synthetic", "--checkpoint", report["checkpoint"],
                         "--results-dir", str(tmp_path), "--json").stdout)
    assert own["checkpoint"] == report["checkpoint"] and not own["trained"]


def test_probe_with_a_checkpoint_of_another_network(synthetic_results):
    _, report = synthetic_results
    result = run("probe", "--network", "resnet20", "--dataset", "synthetic", "--checkpoint",
                 report["checkpoint"], "--dram", "none")
    assert result.exit_code == 2
    assert "is of network 'resnet8', not 'resnet20'" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "cifar10"], "cifar10 needs --data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "/nonexistent"),
    (["train", "--dataset", "vww"], "vww needs --data-dir"),
    (["train", "--epochs", "0"], "--epochs must be >= 1"),
    (["probe", "--steps", "-1"], "--steps must be >= 0"),
    (["probe", "--error-seeds", "0"], "--error-seeds must be >= 1"),
    (["probe", "--finetune-seeds", "0"], "--finetune-seeds must be >= 1"),
    (["probe", "--seeds", "2"], "--seeds is retired"),
    (["probe", "--error-model", "4"], "--error-model"),
    (["probe", "--checkpoint", "/nonexistent.pt", "--dram", "none"], "does not exist"),
    (["probe", "--dataset", "synthetic", "--vdd", "0.86"],
     "VDD 0.86 V is below the usable floor 0.8759 V of vendor B's max BER"),
])
def test_bad_probe_input_is_one_line_exit_2(args, message, tmp_path):
    result = run(*args, "--results-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_cuda_without_cuda_is_refused(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("train", "--dataset", "synthetic", "--epochs", "1", "--device", "cuda",
                 "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "no CUDA device" in result.stderr
    assert run("train", "--dataset", "synthetic", "--epochs", "1", "--results-dir",
               str(tmp_path)).exit_code == 0
    cached = run("train", "--dataset", "synthetic", "--epochs", "1", "--device", "cuda",
                 "--results-dir", str(tmp_path))  # even with the checkpoint in the cache
    assert cached.exit_code == 2 and "no CUDA device" in cached.stderr


def test_probe_defaults_match_the_probe_config():
    from cli import ProbeDefaults
    from dse.accuracy.defaults import ProbeConfig
    assert (ProbeDefaults.steps, ProbeDefaults.finetune_seeds, ProbeDefaults.error_seeds) == (
        ProbeConfig.steps, ProbeConfig.finetune_seeds, ProbeConfig.error_seeds)


@pytest.mark.parametrize("script, command", [("setup.sbatch", "dse search"),
                                             ("search.sbatch", "dse search"),
                                             ("confirm.sbatch", "dse confirm")])
def test_slurm_examples_are_valid_bash_with_dse_commands(script, command):
    import subprocess
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "slurm" / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert command in text and "--storage" in text and "#SBATCH" in text


def test_every_option_has_help():
    import click
    missing = [f"{name} {param.opts[0]}" for name, command in cli.commands.items()
               for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def test_sigterm_before_a_search_starts_says_so(tmp_path):
    # a user model whose construction sends SIGTERM: the signal lands before the search's
    # own guard, while the network is built
    (tmp_path / "stopnet.py").write_text(
        "import os, signal\nfrom torch import nn\n"
        "def net(input_shape, num_classes):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))\n")
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cli; cli.main()"
    result = subprocess.run([sys.executable, "-c", code, "search", "--network", "stopnet:net",
                             "--dataset", "digits", "--objectives", "latency,energy",
                             "--results-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 143
    assert result.stderr.strip().splitlines() == ["dse: terminated (SIGTERM)"]


def test_library_warnings_reach_the_user_as_one_dse_line(capsys):
    import logging

    from cli import show_library_warnings
    show_library_warnings()
    show_library_warnings()  # once, however often the command line runs
    logging.getLogger("dse.engines.runner").warning("trial 3 was failed")
    logging.getLogger("dse.results.outputs").info("not shown")
    assert capsys.readouterr().err == "dse: warning: trial 3 was failed\n"


def test_library_code_never_prints():
    """Library code logs or warns; only the command line (and its progress display, which
    writes to the stream it is given) prints. The BER derivation scripts are commands."""
    import re
    root = Path(__file__).resolve().parents[1]
    printing = re.compile(r"^\s*(print\(|sys\.(stdout|stderr)\.write\(|click\.echo\()", re.M)
    allowed = {root / "dse" / "commands" / "progress.py"}
    offenders = [str(path.relative_to(root))
                 for package in ("dse", "hw_models", "networks")
                 for path in sorted((root / package).rglob("*.py"))
                 if path not in allowed and "derive" not in path.parts
                 and printing.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("command", [["search"], ["confirm"]])
@pytest.mark.parametrize("value", ["0", "5000"])
def test_probe_batch_out_of_range_is_one_line(command, value, tmp_path):
    result = run(*command, "--probe-batch", value, "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--probe-batch must be between 1 and 4096" in result.output
    assert "Traceback" not in result.output
