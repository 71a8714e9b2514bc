"""Every command's --json prints the keys docs/json.md lists for it, and each report
dataclass declares them: the documentation, the schema and the output cannot drift apart."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint

from cli import cli
from dse.commands import reports

DOC = Path(__file__).resolve().parents[3] / "docs" / "json.md"
CHECKPOINT = ("--dataset", "synthetic", "--epochs", "1")  # where tiny_checkpoint caches it
QUICK = (*CHECKPOINT, "--finetune-seeds", "1", "--error-seeds", "1")


def documented_keys() -> dict[str, dict[str, bool]]:
    """Per command ('dse cost', 'dse dram --list'): its documented keys, each with whether
    it is always printed (a meaning starting with *Only* says when it is)."""
    sections: dict[str, dict[str, bool]] = {}
    keys: dict[str, bool] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            keys = {}
            for command in re.findall(r"`(dse [^`]+)`", line):
                sections[command] = keys
        row = re.match(r"\| `(\w+)` \|[^|]*\| (.*) \|$", line)
        if row:
            keys[row[1]] = not row[2].startswith("*Only*")
    return sections


DOCUMENTED = documented_keys()
REPORTS = {  # the dataclass behind each command's --json (a list's rows for the lists)
    "dse networks": [reports.NetworkRow], "dse layers": [reports.LayersReport],
    "dse cost": [reports.CostReport], "dse dram": [reports.DramPointReport],
    "dse dram --list": [reports.DramDeviceRow], "dse train": [reports.TrainReport],
    "dse probe": [reports.ProbeReport], "dse show": [reports.ShowReport],
    "dse status": [reports.StatusReport], "dse tolerance": [reports.ToleranceReport],
    "dse repair-journal": [reports.RepairReport], "dse pareto": [reports.StudyReport],
    "dse search": [reports.ConfirmationReport], "dse confirm": [reports.ConfirmationReport],
}


def assert_documented(command: str, record: dict) -> None:
    keys = DOCUMENTED[command]
    always = {key for key, printed in keys.items() if printed}
    assert not always - set(record), f"{command} does not print {always - set(record)}"
    assert not set(record) - set(keys), (f"{command} prints {set(record) - set(keys)}, "
                                         f"which {DOC.name} does not list")


def test_every_command_with_json_is_documented_and_has_a_report():
    with_json = {f"dse {name}" for name, command in cli.commands.items()
                 if any(param.name == "as_json" for param in command.params)}
    assert with_json | {"dse dram --list"} == set(DOCUMENTED) == set(REPORTS)


@pytest.mark.parametrize("command", sorted(REPORTS))
def test_each_report_declares_the_documented_keys(command):
    keys = DOCUMENTED[command]
    for report in REPORTS[command]:
        fields = {field.name for field in dataclasses.fields(report)}
        assert {key for key, printed in keys.items() if printed} <= fields <= set(keys)
    sharing = [report for other, classes in REPORTS.items() if DOCUMENTED[other] is keys
               for report in classes]  # the commands of the same table (pareto, search, ...)
    declared = {field.name for report in sharing for field in dataclasses.fields(report)}
    assert declared == set(keys)  # no documented key without a field


def run_json(*args: str):
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def eden_study(tmp_path_factory):
    """A study every reading command has something to say about: EDEN's characterisation
    (dse tolerance) in a journal (dse repair-journal), with accuracy (dse confirm); the
    search's own --json with it."""
    results = tmp_path_factory.mktemp("results")
    tiny_checkpoint(results_dir=results)
    with pytest.MonkeyPatch.context() as patch:  # the figures are not what is checked here
        patch.setattr("dse.results.outputs.write_plots", lambda *args, **kwargs: [])
        searched = run_json("search", *QUICK, "--engine", "eden", "--mapping", "all-digital",
                            "--trials", "9", "--probe-steps", "0", "--no-confirm",
                            "--study", "s", "--storage", f"journal:{results / 's.log'}",
                            "--results-dir", str(results))
    return results, searched


def test_search_prints_the_documented_keys(eden_study):
    _, searched = eden_study
    assert_documented("dse search", searched)
    assert {"method_metrics", "confirmed"} <= set(searched)  # accuracy is an objective


def test_search_without_accuracy_leaves_out_what_is_marked_only(tmp_path):
    searched = run_json("search", "--objectives", "latency,energy", "--trials", "2",
                        "--results-dir", str(tmp_path))
    assert_documented("dse search", searched)
    assert "method_metrics" not in searched


@pytest.mark.parametrize("command, args", [
    ("dse pareto", ("pareto", "s")),
    ("dse show", ("show", "s", "--trial", "0")),
    ("dse status", ("status", "s")),
    ("dse tolerance", ("tolerance", "s")),
    ("dse confirm", ("confirm", "s", "--confirm-steps", "1", "--confirm-seeds", "1")),
    ("dse train", ("train", *CHECKPOINT)),
    ("dse probe", ("probe", *QUICK, "--steps", "0")),
])
def test_study_and_probe_commands_print_the_documented_keys(eden_study, command, args):
    results, _ = eden_study
    assert_documented(command, run_json(*args, "--results-dir", str(results)))


def test_repair_journal_prints_the_documented_keys(eden_study):
    results, _ = eden_study
    assert_documented("dse repair-journal", run_json("repair-journal", str(results / "s.log")))


@pytest.mark.parametrize("command, args", [
    ("dse networks", ("networks",)),
    ("dse layers", ("layers", "resnet8")),
    ("dse cost", ("cost", "--network", "resnet8", "--mapping", "diana-heuristic")),
    ("dse dram", ("dram", "--dram", "lpddr4-3200", "--vdd", "1.0")),
    ("dse dram --list", ("dram", "--list")),
])
def test_catalogue_commands_print_the_documented_keys(command, args):
    document = run_json(*args)
    for record in document if isinstance(document, list) else [document]:
        assert_documented(command, record)
