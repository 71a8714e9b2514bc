"""dse search / pareto / show as a user runs them."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint

from cli import cli

ROOT = Path(__file__).resolve().parents[3]
STUDY = "resnet8-digits-diana-lpddr4-3200"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


QUICK_SEEDS = ("--finetune-seeds", "2", "--error-seeds", "1", "--confirm-steps", "4",
               "--confirm-seeds", "2")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A real search on digits: train (briefly), probe, three trials."""
    results = tmp_path_factory.mktemp("results")
    result = run("search", "--trials", "3", "--epochs", "3", "--probe-steps", "2",
                 *QUICK_SEEDS, "--results-dir", str(results), "--json")
    assert result.exit_code == 0, result.stderr
    return results, json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.plots
def test_end_to_end_search_on_digits(searched):
    results, summary = searched
    folder = results / STUDY
    assert summary["results_dir"] == str(folder)
    assert summary["trials"] == {"COMPLETE": 3}
    frame = pd.read_csv(folder / "trials.csv")
    assert len(frame) == 3 and frame["is_baseline"].all()  # the first trials are baselines
    assert frame["accuracy"].between(0, 1).all() and frame["probed"].all()
    config = json.loads((folder / "config.json").read_text())
    assert config["identity"]["dram"] == "lpddr4-3200" and config["versions"]["dse"]
    assert (folder / "front_accuracy_latency_s.png").is_file()
    front = summary["front"]
    assert front and all(row["test_accuracy"] is not None for row in front)
    for row in [*front, *summary["baselines"]]:  # intervals everywhere, test ones too
        assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
        assert (row["test_accuracy_ci_low"] <= row["test_accuracy"]
                <= row["test_accuracy_ci_high"])
    assert summary["confirmation"]["measured"] == 3  # the three baselines run so far
    assert summary["confirm_settings"]["steps"] == 4


@pytest.mark.slow
@pytest.mark.plots
def test_rerun_resumes_and_pareto_and_show_read_it(searched):
    results, _ = searched
    result = run("search", "--trials", "4", "--epochs", "3", "--probe-steps", "2",
                 *QUICK_SEEDS, "--results-dir", str(results))
    assert result.exit_code == 0, result.stderr
    assert "Pareto front" in result.stdout and "4 complete" in result.stdout
    out = results / "plots"
    pareto = run("pareto", STUDY, "--results-dir", str(results), "--x", "energy", "--y",
                 "accuracy", "--color", "latency", "--out", str(out))
    assert pareto.exit_code == 0, pareto.stderr
    assert (out / "front_energy_j_accuracy.png").is_file() and (out / "pareto.csv").is_file()
    shown = run("show", str(results / STUDY), "--trial", "1", "--json")
    assert shown.exit_code == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["baseline"] == "all-analog" and len(report["layers"]) == 10
    assert report["layers"][1]["n_analog"] == 16
    assert report["partitions"][0]["vdd_v"] == 1.1
    text = run("show", STUDY, "--trial", "0", "--results-dir", str(results)).stdout
    assert "baseline all-digital" in text and "weights in" in text


@pytest.mark.parametrize("args, message", [
    (["search", "--objectives", "accuracy,speed"], "unknown objective 'speed'"),
    (["search", "--sampler", "annealing"],
     "Invalid value for '--sampler': 'annealing' is not one of 'tpe', 'nsga2'"),
    (["search", "--storage", "redis://localhost/0"], "unknown storage"),
    (["search", "--trials", "0"], "--trials must be >= 1"),
    (["search", "--dataset", "vww", "--objectives", "accuracy,latency"],
     "vww needs --data-dir"),
    (["search", "--dataset", "cifar10"], "cifar10 needs --data-dir"),
    (["search", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--objectives",
      "latency,energy"], "cannot open storage"),
    (["search", "--seed", "-1"], "--seed and --worker must be >= 0"),
    (["search", "--worker", "-1"], "--seed and --worker must be >= 0"),
    (["search", "--study", "../elsewhere"], "study name '../elsewhere'"),
    (["search", "--partitions", "3", "--objectives", "latency,energy"],
     "DRAM 'lpddr4-3200' cannot hold 3 equal partitions: it has 8 banks"),
    (["search", "--partitions", "halves"], "neither whole-device nor a positive partition"),
    (["search", "--engine", "annealing"],
     "Invalid value for '--engine': 'annealing' is not one of 'optuna', 'odimo'"),
    (["search", "--engine", "odimo", "--objectives", "latency,energy"],
     "--engine odimo needs accuracy among the objectives and the built-in probe"),
    (["search", "--engine", "eden", "--objectives", "latency,energy"],
     "--engine eden needs accuracy among the objectives, the built-in probe and a DRAM "
     "device"),
    (["search", "--engine", "odimo", "--accuracy-estimator", "mine:estimate"],
     "not with --accuracy-estimator"),
    (["search", "--engine", "odimo", "--lambdas", ""], "--lambdas is empty"),
    (["search", "--engine", "odimo", "--lambdas", "0.1,big"], "comma-separated numbers"),
    (["search", "--engine", "odimo", "--lambdas", "0.1,,1"], "--lambdas has an empty entry"),
    (["search", "--engine", "odimo", "--lambdas", "1,0.1,1"], "--lambdas gives 1 more than"),
    (["search", "--engine", "odimo", "--lambdas", "1,1,inf"], "must be finite numbers >= 0"),
    (["search", "--engine", "odimo", "--lambdas", "nan"], "must be finite numbers >= 0"),
    (["search", "--lambdas", "1", "--dnas-epochs", "5"],
     "is an option of --engine odimo, odimo+eden, not of --engine optuna"),
    (["search", "--engine", "eden", "--sampler", "random"],
     "--sampler is an option of --engine optuna, not of --engine eden"),
    (["search", "--partitions", "2", "--dram", "none"], "not with --dram none"),
    (["search", "--engine", "eden", "--dram", "none"], "not with --dram none"),
    (["search", "--mapping", "all-analog"],
     "--mapping is an option of --engine eden, not of --engine optuna"),
    (["search", "--engine", "eden", "--mapping", "fastest"], "neither a heuristic"),
    (["search", "--engine", "eden", "--eden-retrain-epochs", "0"],
     "--eden-retrain-epochs must be an integer in [1, 10,000] (got 0)"),
    (["search", "--engine", "odimo+eden", "--eden-retrain-epochs", "-3"],
     "--eden-retrain-epochs must be an integer in [1, 10,000] (got -3)"),
    (["search", "--engine", "eden", "--eden-retrain-epochs", "two"], "'two' is not a valid"),
    (["search", "--eden-retrain-epochs", "4"],
     "--eden-retrain-epochs is an option of --engine eden, odimo+eden"),
    (["search", "--engine", "eden", "--accuracy-estimator", "mine:estimate"],
     "the built-in probe and a DRAM device; not with --accuracy-estimator"),
    (["search", "--engine", "frontier", "--accuracy-estimator", "mine:estimate"],
     "needs the built-in probe; not with --accuracy-estimator (its retraining, "
     "--frontier-retrain, trains on the probe's data: pass --frontier-retrain 0)"),
    (["search", "--engine", "frontier", "--frontier-retrain", "-1"],
     "--frontier-retrain must be an integer in [0, 100] (got -1)"),
    (["search", "--engine", "frontier", "--frontier-retrain-epochs", "0"],
     "--frontier-retrain-epochs must be an integer in [1, 10,000] (got 0)"),
    (["pareto", "nothing-here"], "no study found"),
    (["show", "nothing-here", "--trial", "0"], "no study found"),
])
def test_bad_search_input_is_one_line_exit_2(args, message, tmp_path):
    result = run(*args, "--results-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_reusing_a_study_name_with_other_settings(tmp_path):
    first = run("search", "--objectives", "latency,energy", "--trials", "5", "--study", "s",
                "--results-dir", str(tmp_path))
    assert first.exit_code == 0, first.stderr
    before = (tmp_path / "s" / "trials.csv").read_bytes()
    second = run("search", "--objectives", "latency,dram_energy", "--trials", "5", "--study",
                 "s", "--results-dir", str(tmp_path))
    assert second.exit_code == 2
    assert "exists with other settings (objectives)" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1  # the error line only
    assert (tmp_path / "s" / "trials.csv").read_bytes() == before


def test_show_rejects_unknown_trials(tmp_path):
    assert run("search", "--objectives", "latency,energy", "--trials", "4", "--study", "s",
               "--results-dir", str(tmp_path)).exit_code == 0
    result = run("show", "s", "--trial", "99", "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "has trials 0..3, not 99" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_a_consistent_study(tmp_path, signum, exit_code):
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cli; cli.main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "search", "--objectives", "latency,energy", "--dram",
         "ddr4-2400", "--trials", "100000", "--study", "long", "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    database = tmp_path / "long" / "study.db"
    # wait for progress, not for a time: on a loaded machine the search may need minutes to
    # start; the bound only stops a search that never progresses from hanging the suite
    deadline = time.time() + 900
    while not _completed(database, at_least=20):
        assert process.poll() is None, process.communicate()[1]
        assert time.time() < deadline, "the search made no progress in 15 minutes"
        time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert stderr.strip().splitlines()[-1].startswith("dse: ")
    study = optuna.load_study(study_name="long", storage=f"sqlite:///{database}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    assert complete >= 20
    frame = pd.read_csv(tmp_path / "long" / "trials.csv")
    assert (frame["state"] == "COMPLETE").sum() == complete


def _completed(database: Path, *, at_least: int) -> bool:
    if not database.is_file():
        return False
    try:
        study = optuna.load_study(study_name="long", storage=f"sqlite:///{database}")
    except Exception:  # the study is still being created
        return False
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) >= at_least


def test_status_counts_states_workers_and_running_trials(tmp_path):
    assert run("search", "--objectives", "latency,energy", "--trials", "7", "--study", "s",
               "--results-dir", str(tmp_path)).exit_code == 0
    storage = f"sqlite:///{tmp_path / 's' / 'study.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    stuck = study.ask()
    stuck.set_user_attr("worker", {"host": "node7", "pid": 42})
    result = run("status", "s", "--results-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    front = pd.read_csv(tmp_path / "s" / "pareto.csv")
    assert report["trials"] == {"COMPLETE": 7, "RUNNING": 1}
    assert sum(report["complete_by_worker"].values()) == 7
    assert [(r["trial"], r["worker"]) for r in report["running"]] == [(7, "node7:42")]
    assert report["running"][0]["running_s"] >= 0 and report["front_size"] == len(front)
    text = run("status", "--storage", storage, "--study", "s", "--results-dir", str(tmp_path))
    assert text.exit_code == 0
    assert "trials: 7 complete, 1 running" in text.stdout
    assert "trial 7 on node7:42 for 0 min" in text.stdout
    missing = run("status", "--storage", storage, "--study", "nope")
    assert missing.exit_code == 2 and missing.stderr.startswith("dse: error: study 'nope'")


def test_a_study_is_bound_to_preset_contents_not_names(tmp_path):
    from hw_models.soc import PRESET_DIR
    base = ["search", "--objectives", "latency,energy", "--study", "s", "--results-dir",
            str(tmp_path)]
    assert run(*base, "--trials", "4").exit_code == 0
    same_file = run(*base, "--trials", "5", "--hw", str(PRESET_DIR / "diana.toml"),
                    "--epochs", "30", "--dram", "lpddr4-3200")  # the defaults, spelled out
    assert same_file.exit_code == 0, same_file.stderr
    edited = tmp_path / "diana_fast.toml"
    edited.write_text((PRESET_DIR / "diana.toml").read_text().replace("260e6", "520e6", 1)
                      if "260e6" in (PRESET_DIR / "diana.toml").read_text() else "")
    assert edited.read_text(), "the preset's clock is no longer written 260e6"
    before = (tmp_path / "s" / "trials.csv").read_bytes()
    refused = run(*base, "--trials", "6", "--hw", str(edited))
    assert refused.exit_code == 2 and "exists with other settings (hw)" in refused.stderr
    assert (tmp_path / "s" / "trials.csv").read_bytes() == before


def test_storage_passwords_are_never_written_or_shown(tmp_path, toy_table):
    import dataclasses

    from toy import toy_prepared
    url = "postgresql://dse:s3cret@127.0.0.1:1/none"  # nothing listens on port 1
    result = run("search", "--storage", url, "--objectives", "latency,energy",
                 "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "s3cret" not in result.stderr
    assert "cannot open storage postgresql://dse:***@127.0.0.1:1/none" in result.stderr
    from dse.commands.search import run_provenance
    from dse.storage.storage import shown_url
    prepared = toy_prepared(toy_table, tmp_path)
    prepared = dataclasses.replace(prepared, storage_url=url,
                                   config=prepared.config.replace(storage=url))
    written = json.dumps(run_provenance(prepared))
    assert "s3cret" not in written and "dse:***@" in written
    assert shown_url(url) == "postgresql://dse:***@127.0.0.1:1/none"
    assert shown_url("sqlite:///a.db") == "sqlite:///a.db"
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"storage": shown_url(url), "study": "s"}))
    refused = run("pareto", str(folder))
    assert refused.exit_code == 2 and "password is not stored: pass --storage" in refused.stderr


def test_config_json_keeps_the_creating_run_and_runs_jsonl_every_run(tmp_path):
    base = ["search", "--objectives", "latency,energy", "--study", "s", "--results-dir",
            str(tmp_path)]
    assert run(*base, "--trials", "4", "--seed", "1").exit_code == 0
    created = (tmp_path / "s" / "config.json").read_bytes()
    assert run(*base, "--trials", "6", "--seed", "9", "--sampler", "random").exit_code == 0
    assert (tmp_path / "s" / "config.json").read_bytes() == created
    runs = [json.loads(line) for line in
            (tmp_path / "s" / "runs.jsonl").read_text().splitlines()]
    assert [(r["config"]["seed"], r["config"]["engine_settings"]["sampler"],
             r["config"]["trials"])
            for r in runs] == [(1, "tpe", 4), (9, "random", 6)]
    assert all(r["worker"]["pid"] > 0 and r["started"] for r in runs)


def test_failed_commands_leave_no_files(tmp_path):
    missing = run("pareto", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--study", "x")
    assert missing.exit_code == 2 and "no study database at" in missing.stderr
    bad = run("search", "--accuracy-estimator", "nosuch:fn", "--results-dir", str(tmp_path))
    assert bad.exit_code == 2 and "cannot import 'nosuch'" in bad.stderr
    assert list(tmp_path.iterdir()) == []


def test_finetune_epochs_set_the_probe_steps_from_the_training_split(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    made = run("search", "--dataset", "synthetic", "--epochs", "1", "--trials", "1",
               "--finetune-epochs", "0.25", "--error-seeds", "1", "--finetune-seeds", "1",
               "--no-confirm", "--results-dir", str(tmp_path), "--json")
    assert made.exit_code == 0, made.output
    folder = tmp_path / json.loads(made.stdout)["study"]
    config = json.loads((folder / "config.json").read_text())
    assert config["identity"]["probe_steps"] == 2  # ceil(0.25 x 512 images / 64)


@pytest.mark.parametrize("args, words", [
    (("--finetune-epochs", "1", "--probe-steps", "20"), "not both"),
    (("--finetune-epochs", "0"), "--finetune-epochs must be > 0"),
    (("--finetune-epochs", "-1"), "--finetune-epochs must be > 0"),
    (("--finetune-epochs", "nan"), "--finetune-epochs must be > 0"),
    (("--finetune-epochs", "1e9"),  # refused before the baseline is trained
     "--finetune-epochs must give <= 10,000,000 fine-tune steps (got 1e+09: "),
])
def test_bad_finetune_epochs_are_one_line(tmp_path, args, words):
    result = run("search", "--dataset", "synthetic", *args, "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("dse: error: ") and words in result.stderr
    assert not any(tmp_path.iterdir())
