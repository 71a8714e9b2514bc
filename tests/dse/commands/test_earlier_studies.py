"""Studies written by dse 0.3.0 (``tests/data/studies-0.3.0``, made by ``dse search`` at the
commit that set the version) resume with today's settings: the study identity and the probe
settings are derived from the config's parts, and must keep their stored meaning."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from cli import cli

STUDIES = Path(__file__).resolve().parents[2] / "data" / "studies-0.3.0"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def earlier(tmp_path):
    shutil.copytree(STUDIES, tmp_path, dirs_exist_ok=True)
    return tmp_path


def complete(folder: Path, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def on_todays_error_model(folder: Path, name: str) -> None:
    """Bind the study to today's DRAM error model, as if its trials had been costed under
    it: what the tests below check is that the settings a 0.3.0 study stored still derive
    the same identity."""
    from dse.results.ledger import CONFIG_ATTR
    from hw_models.dram import ber_model_sha256
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    study.set_user_attr(CONFIG_ATTR, {**study.user_attrs[CONFIG_ATTR],
                                      "ber_model_sha256": ber_model_sha256()})


def test_a_study_costed_under_the_earlier_error_model_is_refused_but_still_read(earlier):
    """dse 0.3.0 counted BERs over surviving DIMMs and tRCD errors twice: resuming would
    put trials of two error models on one front."""
    result = run("search", "--objectives", "latency,energy", "--trials", "6", "--study",
                 "legacy", "--results-dir", str(earlier))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "earlier DRAM error model" in result.stderr
    assert complete(earlier / "legacy", "legacy") == 4
    assert run("pareto", "legacy", "--results-dir", str(earlier)).exit_code == 0


def test_a_cost_study_resumes(earlier):
    assert complete(earlier / "legacy", "legacy") == 4
    on_todays_error_model(earlier / "legacy", "legacy")
    result = run("search", "--objectives", "latency,energy", "--trials", "6", "--study",
                 "legacy", "--results-dir", str(earlier))
    assert result.exit_code == 0, result.stderr
    assert complete(earlier / "legacy", "legacy") == 6


def test_an_accuracy_study_resumes_with_its_probe_settings(earlier):
    common = ("--objectives", "accuracy,latency,energy", "--accuracy-estimator",
              "dropping_estimator:estimate", "--study", "legacy-accuracy", "--results-dir",
              str(earlier))
    assert complete(earlier / "legacy-accuracy", "legacy-accuracy") == 10
    on_todays_error_model(earlier / "legacy-accuracy", "legacy-accuracy")
    result = run("search", *common, "--trials", "12")
    assert result.exit_code == 0, result.stderr
    assert complete(earlier / "legacy-accuracy", "legacy-accuracy") == 12
    record = json.loads((earlier / "legacy-accuracy" / "runs.jsonl").read_text()
                        .splitlines()[-1])
    assert record["config"]["probe_steps"] == 20  # the flat record of every run
    other = run("search", *common, "--trials", "12", "--probe-steps", "21")
    assert other.exit_code == 2 and "other settings (probe_steps)" in other.stderr


@pytest.mark.slow
def test_a_probe_study_resumes_and_confirms_with_its_checkpoint_and_probe_cache(earlier):
    """The 0.3.0 checkpoint loads (its layers get ODiMO's initial weight scales), its probe
    cache, measured with 0.3.0's quantisers, is not read back but measured again; the
    study, whose accuracies were measured with those quantisers, is not resumed (one line)
    but still confirmed on the test split, where every point is measured afresh."""
    quick = ("--epochs", "1", "--finetune-seeds", "1", "--error-seeds", "1",
             "--results-dir", str(earlier))
    probe_args = ("probe", "--network", "resnet8", "--dataset", "digits", "--mapping",
                  "all-digital", "--steps", "1", *quick, "--json")
    cached_before = len(list((earlier / "probe_cache").glob("*.json")))
    probed = run(*probe_args)
    assert probed.exit_code == 0, probed.stderr
    assert json.loads(probed.stdout)["cached"] is False
    assert len(list((earlier / "probe_cache").glob("*.json"))) == cached_before + 1
    again = run(*probe_args)
    assert again.exit_code == 0 and json.loads(again.stdout)["cached"] is True
    on_todays_error_model(earlier / "legacy-probe", "legacy-probe")
    resumed = run("search", "--probe-steps", "1", "--trials", "10", "--no-confirm",
                  "--study", "legacy-probe", *quick)
    assert resumed.exit_code == 2
    assert "before studies were bound to the probe's quantisers" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    confirmed = run("confirm", "legacy-probe", "--results-dir", str(earlier),
                    "--confirm-steps", "1", "--confirm-seeds", "1", "--json")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert json.loads(confirmed.stdout)["confirmation"]["measured"] > 0


def test_trials_below_the_usable_floor_are_left_out_and_said_so(earlier):
    """dse 0.3.0 searched down to 0.85 V on LPDDR4-3200; vendor B's worst DIMM is usable
    down to 0.8759 V only (below it most of the vendor's DIMMs stopped working): those
    trials are off the front and out of the claims, the summary names them, and `dse show`
    refuses one in a line instead of costing it."""
    from dse.results.tables import trials_frame
    study = optuna.load_study(study_name="legacy-accuracy",
                              storage=f"sqlite:///{earlier / 'legacy-accuracy' / 'study.db'}")
    frame = trials_frame(study)
    below = frame[frame["vdd_v"] < 0.8759]
    assert sorted(below["trial"]) == [4, 5, 6, 7]
    assert not below["dram_usable"].any() and not below["is_pareto"].any()
    assert frame[frame["vdd_v"] >= 0.8759]["dram_usable"].all()
    result = run("pareto", "legacy-accuracy", "--results-dir", str(earlier))
    assert result.exit_code == 0, result.stderr
    assert "note: 4 complete trials (trials 4, 5, 6, 7) are at a VDD below 0.8759 V" in (
        result.stdout)
    summary = json.loads((earlier / "legacy-accuracy" / "summary.json").read_text())
    assert "left out of the front and the claims" in summary["unusable_note"]
    assert all(point["trial"] not in (4, 5, 6, 7) for point in summary["front"])
    shown = run("show", "legacy-accuracy", "--results-dir", str(earlier), "--trial", "4")
    assert shown.exit_code == 2 and len(shown.stderr.strip().splitlines()) == 1
    assert "below the usable floor 0.8759 V" in shown.stderr
    assert run("show", "legacy-accuracy", "--results-dir", str(earlier),
               "--trial", "0").exit_code == 0
