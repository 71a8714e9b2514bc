"""One meaning per option: the DRAM device is --dram and the torch device --device in every
command; a partition count (search) and a fixed layout or file (cost, probe) are two
options; engines, samplers and vendors are choices from their registries. A retired
spelling stops with one line naming the new one, exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli import cli, search_config
from dse.commands.search import engine_settings as prepared_settings
from dse.config import SearchConfig
from dse.engines import engine_names
from dse.engines.optuna_engine import OptunaSettings
from dse.engines.optuna_engine.samplers import SAMPLERS
from hw_models.dram import list_vendors

ROOT = Path(__file__).resolve().parents[1]
COST = ("cost", "--network", "resnet8", "--mapping", "all-analog")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_error(result: Result, *words: str) -> None:
    """Exit 2, nothing on stdout, one `dse: error:` line on stderr holding every word."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: error:"), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def layout_file(tmp_path: Path) -> str:
    """Two partitions of half of LPDDR4-3200 each, the second undervolted."""
    path = tmp_path / "layout.json"
    path.write_text(json.dumps({
        "partitions": [{"name": "safe", "capacity_bytes": 402653184},
                       {"name": "fast", "capacity_bytes": 402653184, "vdd_v": 0.95}],
        "default": "fast"}))
    return str(path)


def test_dram_takes_the_device_as_dram():
    point = json.loads(run("dram", "--dram", "lpddr4-3200", "--vdd", "1.0", "--json").stdout)
    assert point["device"] == "lpddr4-3200" and point["vdd_v"] == 1.0


def test_cost_takes_a_fixed_layout_or_a_file(layout_file):
    report = json.loads(run(*COST, "--partition-layout", "all-approximate", "--vdd", "1.0",
                            "--json").stdout)
    assert report["dram"]["layout"] == "all-approximate"
    assert len(report["dram"]["partitions"]) == 2
    from_file = json.loads(run(*COST, "--partition-layout", layout_file, "--json").stdout)
    assert from_file["dram"]["layout"] == layout_file
    default = json.loads(run(*COST, "--json").stdout)
    assert default["dram"]["layout"] == "whole-device"


def test_search_takes_a_partition_count(tmp_path):
    result = run("search", "--objectives", "latency,energy", "--trials", "2", "--partitions",
                 "2", "--engine", "optuna", "--sampler", "random", "--vendor", "A",
                 "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    (stored,) = tmp_path.glob("*/config.json")
    record = json.loads(stored.read_text())
    assert record["identity"]["partitions"] == 2 and record["identity"]["vendor"] == "A"
    assert (record["config"]["engine"], record["config"]["engine_settings"]) == (
        "optuna", {"sampler": "random"})


def test_default_search_options_are_the_default_config():
    """What the study identity is made of does not depend on the CLI's spellings."""
    options = dict(cli.commands["search"].make_context("search", []).params)
    assert options.pop("as_json") is False
    config = search_config(options)
    assert config == SearchConfig.from_options(engine_settings=OptunaSettings())
    assert prepared_settings(SearchConfig()) == config.search.engine_settings


@pytest.mark.parametrize("args, new", [
    (["dram", "--device", "lpddr4-3200"], "dse dram --device is now --dram"),
    (["dram", "--device"], "dse dram --device is now --dram"),
    (["dram", "--list", "--device", "lpddr4-3200"], "dse dram --device is now --dram"),
    ([*COST, "--partitions", "all-approximate"], "dse cost --partitions is now "
                                                 "--partition-layout"),
    ([*COST, "--partitions", "whole-device"], "dse cost --partitions is now "
                                              "--partition-layout"),
    (["probe", "--partitions", "weights-approximate"], "dse probe --partitions is now "
                                                       "--partition-layout"),
    ([*COST, "--partition-layout", "4"], "which dse search takes as --partitions"),
    (["probe", "--partition-layout", "2"], "which dse search takes as --partitions"),
    (["search", "--partitions", "all-approximate"], "dse cost and dse probe take as "
                                                    "--partition-layout"),
])
def test_retired_spelling_names_the_new_one(args, new):
    assert_one_error(run(*args), new)


def test_a_layout_file_given_as_a_count_names_the_layout_option(layout_file):
    assert_one_error(run("search", "--partitions", layout_file), "--partition-layout")
    assert_one_error(run(*COST, "--partitions", layout_file), "--partition-layout")


@pytest.mark.parametrize("command, option, names", [
    ("search", "--engine", engine_names()),
    ("search", "--sampler", tuple(SAMPLERS)),
    *((command, "--vendor", tuple(list_vendors()))
      for command in ("search", "cost", "probe", "dram")),
])
def test_help_lists_the_choices(command, option, names):
    assert f"{option} [{'|'.join(names)}]" in run(command, "--help").stdout


@pytest.mark.parametrize("option, names", [("engine", engine_names()),
                                           ("sampler", tuple(SAMPLERS))])
def test_every_registered_name_is_accepted(option, names):
    """odimo+eden included: the choice holds the registry's names as they are."""
    context = click.Context(cli.commands["search"])
    (param,) = (p for p in cli.commands["search"].get_params(context)
                if p.name in (option, "engine_option_" + option))
    assert [param.type.convert(name, param, None) for name in names] == list(names)


@pytest.mark.parametrize("args, option", [
    (["search", "--engine", "annealing"], "--engine"),
    (["search", "--engine", "Optuna"], "--engine"),
    (["search", "--sampler", "cmaes"], "--sampler"),
    (["search", "--vendor", "D"], "--vendor"),
    ([*COST, "--vendor", "b"], "--vendor"),
    (["probe", "--vendor", "Z"], "--vendor"),
    (["dram", "--dram", "lpddr4-3200", "--vendor", "Z"], "--vendor"),
])
def test_a_bad_choice_is_one_line_exit_2(args, option):
    assert_one_error(run(*args), f"Invalid value for '{option}'", "is not one of")


def test_catalogue_commands_do_not_import_the_engines():
    """The registries of engines and samplers are read when a command needs them."""
    code = ("import json, sys; from click.testing import CliRunner; from cli import cli; "
            "codes = [CliRunner().invoke(cli, args).exit_code for args in "
            "(['--help'], ['dram', '--list'], ['cost', '--help'], "
            "['cost', '--network', 'resnet8', '--mapping', 'all-digital'])]; "
            "print(json.dumps([codes, 'optuna' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert json.loads(done.stdout) == [[0, 0, 0, 0], False], done.stdout


@pytest.mark.parametrize("command", ["search", "pareto", "confirm"])
@pytest.mark.parametrize("margin", ["-1", "nan", "inf"])
def test_a_bad_equivalence_margin_is_one_line_exit_2(command, margin, tmp_path):
    # checked before any study is read or any network trained
    assert_one_error(run(command, "--equivalence-margin", margin, "--results-dir",
                         str(tmp_path)), "--equivalence-margin must be a finite number")


def test_the_equivalence_margin_is_reporting_only_not_the_studys_identity():
    config = SearchConfig().replace(equivalence_margin_pp=0.5)
    assert config.identity("lpddr4-3200") == SearchConfig().identity("lpddr4-3200")
    assert config.flat()["equivalence_margin_pp"] == 0.5  # recorded in config.json
