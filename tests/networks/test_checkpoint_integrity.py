"""Checkpoints carry the SHA-256 of their tensors: damage is an error, not a quiet model."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner
from helpers import flip_tensor_bytes, tiny_checkpoint

from cli import cli
from hw_models import ConfigError
from networks.train import load_checkpoint, save_checkpoint

DAMAGED = "is damaged (its tensors do not match their digest)"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ck.pt")


def legacy_copy(source, target) -> None:
    """``source`` as a checkpoint written before tensor digests (format 1)."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload.pop("tensors_sha256", None)
    torch.save({**payload, "format": 1}, target)


def test_flipped_tensor_bytes_are_refused(saved, tmp_path):
    damaged = tmp_path / "damaged.pt"
    flip_tensor_bytes(saved, damaged)
    torch.load(damaged, weights_only=True)  # torch itself notices nothing
    with pytest.raises(ConfigError) as caught:
        load_checkpoint(damaged)
    assert str(caught.value).startswith(f"checkpoint {damaged} {DAMAGED}; ")


def test_the_digest_is_stored_and_checked(saved, tmp_path):
    checkpoint = load_checkpoint(saved)
    stored = torch.load(saved, weights_only=True)["tensors_sha256"]
    assert checkpoint.tensors_verified and checkpoint.tensors_sha256 == stored
    assert len(stored) == 64
    copy = tmp_path / "elsewhere.pt"
    copy.write_bytes(saved.read_bytes())
    assert load_checkpoint(copy).tensors_sha256 == stored
    again = save_checkpoint(checkpoint, tmp_path / "resaved.pt")  # same tensors, same digest
    assert again.tensors_sha256 == stored
    state = dict(checkpoint.state_dict)
    name = sorted(state)[0]
    state[name] = state[name].clone() + 1
    other = save_checkpoint(dataclasses.replace(checkpoint, state_dict=state),
                            tmp_path / "other.pt")
    assert other.tensors_sha256 != stored


def test_a_format_2_file_without_its_digest_is_refused(saved, tmp_path):
    stripped = tmp_path / "stripped.pt"
    payload = torch.load(saved, weights_only=True)
    payload.pop("tensors_sha256")
    torch.save(payload, stripped)
    with pytest.raises(ConfigError, match="corrupt or not a dse checkpoint"):
        load_checkpoint(stripped)


def test_a_checkpoint_from_before_digests_loads_unverified(saved, tmp_path):
    old = tmp_path / "old.pt"
    legacy_copy(saved, old)
    checkpoint = load_checkpoint(old)
    assert not checkpoint.tensors_verified
    assert checkpoint.tensors_sha256 == load_checkpoint(saved).tensors_sha256
    report = run("train", "--dataset", "synthetic", "--checkpoint", str(old), "--results-dir",
                 str(tmp_path))
    assert report.exit_code == 0, report.stderr
    assert report.stderr == "" and "not checked for damage" in report.stdout
    as_json = json.loads(run("train", "--dataset", "synthetic", "--checkpoint", str(old),
                             "--results-dir", str(tmp_path), "--json").stdout)
    assert as_json["tensors_verified"] is False


def test_probe_of_a_damaged_checkpoint_is_one_error(saved, tmp_path):
    damaged = tmp_path / "damaged.pt"
    flip_tensor_bytes(saved, damaged)
    result = run("probe", "--dataset", "synthetic", "--checkpoint", str(damaged), "--dram",
                 "none", "--steps", "0", "--finetune-seeds", "1", "--error-seeds", "1",
                 "--results-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dse: error: checkpoint {damaged} {DAMAGED}")
    assert "restore an intact copy" in lines[0]


@pytest.mark.slow
def test_a_damaged_cached_checkpoint_names_the_retrain_command(tmp_path):
    results = tmp_path / "results"
    cached = tiny_checkpoint(results_dir=results)
    flip_tensor_bytes(cached, cached)
    common = ["--dataset", "synthetic", "--epochs", "1", "--results-dir", str(results)]
    retrain = (f"train it again with dse train --network resnet8 --dataset synthetic --epochs 1 "
               f"--results-dir {results} --retrain")
    for command in (["train"],
                    ["probe", "--dram", "none", "--steps", "0", "--finetune-seeds", "1",
                     "--error-seeds", "1"],
                    ["search", "--trials", "1", "--probe-steps", "0", "--error-seeds", "1",
                     "--no-confirm"]):
        result = run(*command, *common)
        assert result.exit_code == 2, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"dse: error: checkpoint {cached} {DAMAGED}"), lines[0]
        assert lines[0].endswith(retrain), lines[0]
    repaired = run("train", *common, "--retrain", "--json")
    assert repaired.exit_code == 0, repaired.stderr
    assert json.loads(repaired.stdout)["tensors_verified"] is True
    assert run("train", *common).exit_code == 0
