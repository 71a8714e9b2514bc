"""--engine eden from the shell on digits: the network retrained once for the device (kept
in the results folder, read back by another study), characterised on one half of the
validation images and validated on the other; the trial names the retrained weights."""
from __future__ import annotations

import optuna
import pytest
from click.testing import CliRunner

from cli import cli
from dse.results.ledger import DELIVERED_WEIGHTS_ATTR, EDEN_ATTR, ENGINE_LABEL_ATTR
from hw_models.soc import PRESET_DIR

QUICK = ("--epochs", "3", "--probe-steps", "2", "--finetune-seeds", "1", "--error-seeds", "1",
         "--no-confirm")


def eden_trial(folder, study: str) -> optuna.trial.FrozenTrial:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{folder / 'study.db'}")
    [trial] = [t for t in loaded.get_trials() if EDEN_ATTR in t.user_attrs]
    return trial


@pytest.mark.slow
def test_eden_retrains_once_characterises_and_names_its_weights(tmp_path):
    streaming = tmp_path / "diana-streaming.toml"  # so that EDEN has data in DRAM
    streaming.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    common = ("--hw", str(streaming), "--results-dir", str(tmp_path), "--engine", "eden",
              "--mapping", "all-digital", "--eden-retrain-epochs", "1", "--trials", "9",
              *QUICK)
    first = CliRunner().invoke(cli, ["search", "--study", "s", *common])
    assert first.exit_code == 0, first.stderr
    trial = eden_trial(tmp_path / "s", "s")
    record = trial.user_attrs[DELIVERED_WEIGHTS_ATTR]
    assert record["samples"] == 1258 and not record["cached"]  # one epoch of digits' train
    assert (tmp_path / record["file"]).is_file()
    assert trial.user_attrs[ENGINE_LABEL_ATTR] == "eden[1 ep]"
    eden = trial.user_attrs[EDEN_ATTR]
    assert (eden["characterised_on"], eden["validated_on"]) == ("val-a", "val-b")
    assert eden["tolerance_used"] == "coarse" and eden["retrain_target_ber"] == 1e-2
    assert trial.user_attrs["metrics"]["accuracy"] > 0.5
    second = CliRunner().invoke(cli, ["search", "--study", "s2", *common])
    assert second.exit_code == 0, second.stderr
    again = eden_trial(tmp_path / "s2", "s2").user_attrs[DELIVERED_WEIGHTS_ATTR]
    assert again["cached"] and again["tensors_sha256"] == record["tensors_sha256"]
