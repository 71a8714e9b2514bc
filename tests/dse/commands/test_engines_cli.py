"""--engine odimo and --engine eden from the shell, on digits, into one study."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import cli
from hw_models.soc import PRESET_DIR

QUICK = ("--epochs", "3", "--probe-steps", "2", "--finetune-seeds", "1", "--error-seeds", "1",
         "--no-confirm")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
@pytest.mark.plots
def test_odimo_then_eden_then_optuna_fill_one_study(tmp_path):
    streaming = tmp_path / "diana-streaming.toml"  # so that EDEN has data in DRAM
    streaming.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    common = ("--hw", str(streaming), "--study", "s", "--results-dir", str(tmp_path), *QUICK)
    odimo = run("search", "--engine", "odimo", "--lambdas", "0.1,10", "--dnas-epochs", "1",
                "--odimo-finetune-epochs", "1", "--trials", "10", *common, "--json")
    assert odimo.exit_code == 0, odimo.stderr
    eden = run("search", "--engine", "eden", "--mapping", "all-digital", "--trials", "11",
               "--eden-retrain-epochs", "1",
               *common)
    assert eden.exit_code == 0, eden.stderr
    optuna_run = run("search", "--trials", "13", *common)
    assert optuna_run.exit_code == 0, optuna_run.stderr
    folder = tmp_path / "s"
    frame = pd.read_csv(folder / "trials.csv")
    assert len(frame) == 13
    assert sorted(frame["odimo_lambda"].dropna()) == [0.1, 10.0]
    assert (frame["engine"] == "eden[1 ep]").sum() == 1  # a lighter EDEN, named so
    assert (frame["engine"] == "optuna").sum() == 2
    tolerance = run("tolerance", "s", "--results-dir", str(tmp_path), "--json")
    assert tolerance.exit_code == 0, tolerance.stderr
    [split] = json.loads(tolerance.stdout)["splits"]
    assert split["mapping"] == "all-digital" and len(split["fine_ber"]) == 10  # resnet8
    eden_trial = int(frame.loc[frame["engine"] == "eden[1 ep]", "trial"].iloc[0])
    partitions = folder / f"eden_partitions_trial{eden_trial}.json"
    cost = json.loads(run("cost", "--network", "resnet8", "--dataset", "digits", "--hw",
                          str(streaming), "--mapping", "all-digital", "--partition-layout",
                          str(partitions), "--json").stdout)
    energy = frame.loc[frame["trial"] == eden_trial, "energy_j"].iloc[0]
    assert cost["total"]["energy_j"] == pytest.approx(energy, rel=1e-12)
    assert (folder / "front_accuracy_latency_s.png").is_file()
    assert (folder / "tolerance.json").is_file()

    # ODiMO's trials are measured, and confirmed, from the weights it fine-tuned
    import optuna

    from dse.storage.storage import default_storage_url
    url = default_storage_url(str(tmp_path), "s")
    study = optuna.load_study(study_name="s", storage=url)
    odimo_trials = [t for t in study.trials if "odimo_lambda" in t.user_attrs]
    labels = {t.user_attrs.get("engine_label") for t in odimo_trials}
    assert labels == {"odimo[1 ep, ft 1 ep]"}
    records = [t.user_attrs["delivered_weights"] for t in odimo_trials]
    assert all((tmp_path / r["file"]).is_file() and r["samples"] > 0 for r in records)
    shown = run("show", "s", "--results-dir", str(tmp_path), "--trial",
                str(odimo_trials[0].number), "--json")
    assert shown.exit_code == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["engine"] == "odimo[1 ep, ft 1 ep]"
    assert document["delivered_weights"]["tensors_sha256"] == records[0]["tensors_sha256"]
    text = run("show", "s", "--results-dir", str(tmp_path), "--trial",
               str(odimo_trials[0].number)).stdout
    assert "proposed by odimo[1 ep, ft 1 ep]" in text
    assert "measured from the weights its engine trained" in text
    confirmed = run("confirm", "s", "--results-dir", str(tmp_path), "--confirm-steps", "1",
                    "--confirm-seeds", "1")
    assert confirmed.exit_code == 0, confirmed.stderr
    study = optuna.load_study(study_name="s", storage=url)
    for trial, record in zip(odimo_trials, records):
        confirmed = study.user_attrs.get(f"dse:confirmed:{trial.number}")
        if confirmed is not None:  # on the front: measured from its own weights
            assert confirmed["from_weights_sha256"] == record["tensors_sha256"]
