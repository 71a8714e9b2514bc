"""Reading a study: status per worker with its threads, show from the stored table."""
from __future__ import annotations

import optuna
from toy import toy_prepared

from dse.commands.inspect import show_report, status_report
from dse.commands.search import run_search
from dse.threads import ThreadPolicy


def test_status_and_show_of_a_finished_study(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=5, sampler="random")
    run_search(prepared, threads=ThreadPolicy(1, None))
    status = status_report(str(prepared.out_dir), storage=None, study_name=None,
                           results_dir=str(tmp_path))
    assert status.trials == {"COMPLETE": 5} and sum(status.complete_by_worker.values()) == 5
    assert set(status.threads_by_worker.values()) == {1}
    assert status.confirmed >= 4 and status.confirm_settings == {"split": "test",
                                                                       "stub": True}
    shown = show_report(str(prepared.out_dir), 0, storage=None, results_dir=str(tmp_path))
    assert shown.baseline == "all-digital" and [r["n_analog"] for r in shown.layers] == [
        0] * 5
    assert shown.layers[3]["activations_partition"] == "whole-device"  # big spills
    assert shown.layers[3]["working_set"] == "DRAM"
    assert shown.layers[2]["activations_partition"] == "on chip"
    assert shown.layers[0]["weights_partition"] == "resident in L2"
    assert shown.partitions == [{"name": "whole-device", "capacity_bytes": 805306368,
                                    "vdd_v": 1.1, "trcd_ns": 18.125}]
    assert shown.test["test_accuracy_change_pp"] == 0.0  # all-digital against itself
    for key in ("accuracy_ci_low", "accuracy_ci_high", "accuracy_change_pp"):
        assert shown.metrics[key] is not None, key


def test_an_extra_plot_needs_both_axes(tmp_path):
    import pytest

    from dse.commands.inspect import pareto_report
    from hw_models import ConfigError
    for x, y, color in (("latency", None, None), (None, "energy", None),
                        (None, None, "accuracy")):
        with pytest.raises(ConfigError, match="--x and --y"):
            pareto_report("s", storage=None, study_name=None, x=x, y=y, color=color,
                          out=None, results_dir=str(tmp_path))


def test_a_partitioned_study_shows_each_partition_and_where_tensors_live(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=10, sampler="random", confirm=False,
                            partitions=2)
    run_search(prepared, threads=ThreadPolicy(1, None))
    shown = show_report(str(prepared.out_dir), 9, storage=None, results_dir=str(tmp_path))
    assert [p["name"] for p in shown.partitions] == ["p0", "p1"]
    assert {p["capacity_bytes"] for p in shown.partitions} == {805306368 // 2}
    study_params = optuna.load_study(study_name="toy", storage=prepared.storage_url
                                     ).trials[9].params
    chosen = study_params["partition:activations/big"]
    assert shown.layers[3]["activations_partition"] == f"p{chosen}"


def test_without_a_study_name_the_commands_read_the_only_study_of_the_results_folder(
        toy_table, tmp_path):
    import json

    from click.testing import CliRunner

    from cli import cli

    def invoke(*args):
        return CliRunner().invoke(cli, [*args, "--results-dir", str(tmp_path), "--json"])

    run_search(toy_prepared(toy_table, tmp_path, trials=3, sampler="random", confirm=False))
    (tmp_path / "checkpoints").mkdir()  # a folder of the results that is not a study
    for args in (["status"], ["show", "--trial", "1"], ["pareto"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["study"] == "toy"
    run_search(toy_prepared(toy_table, tmp_path, trials=3, sampler="random", confirm=False,
                            study="other"))
    for args in (["status"], ["show", "--trial", "1"], ["pareto"], ["confirm"]):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == (f"dse: error: 2 studies in {tmp_path} (other, toy): "
                                 "name one\n")
    empty = tmp_path / "empty"
    result = CliRunner().invoke(cli, ["status", "--results-dir", str(empty)])
    assert result.exit_code == 2 and result.stderr.startswith(f"dse: error: no study in {empty}")
    assert len(result.stderr.splitlines()) == 1 and not empty.exists()
