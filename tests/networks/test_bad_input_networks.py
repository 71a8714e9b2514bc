"""Bad input met inside networks/: damaged probe-cache entries, classifiers of the wrong
width, counts too large to run."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from torch import nn

from cli import cli
from dse.accuracy import ProbeResult
from hw_models import ConfigError
from networks import finetune as probe_module
from networks.extract import extract_layer_table
from networks.finetune import ProbeConfig, ProbeSetup

KEY = "0123456789abcdef01234567"
CORRECT = [[[1, 1, 1, 0]], [[1, 1, 0, 1]]]  # 2 fine-tune seeds x 1 error seed, 4 images
SHAPE = (2, 1, 4)
GOOD = probe_module.cache_document(ProbeResult.from_correct(CORRECT, seconds=1.5))


def write_entry(cache_dir: Path, document: object) -> Path:
    path = cache_dir / f"{KEY}.json"
    path.write_text(json.dumps(document))
    return path


def test_a_sound_cache_entry_is_read(tmp_path):
    write_entry(tmp_path, GOOD)
    read = probe_module._read_cache(tmp_path, KEY, shape=SHAPE)
    assert np.array_equal(read.correct, np.array(CORRECT, dtype=bool))
    assert read.cached and read.seconds == 1.5 and read.accuracy_per_seed == (0.75, 0.75)
    assert read.accuracy_mean == 0.75 and read.ci_low <= 0.75 <= read.ci_high


@pytest.mark.parametrize("document", [
    {**GOOD, "accuracy_mean": "x"},
    {**GOOD, "accuracy_std": None},
    {**GOOD, "accuracy_mean": True},
    {**GOOD, "accuracy_per_seed": "0.75"},
    {**GOOD, "accuracy_per_seed": [0.7, "x"]},
    {**GOOD, "seconds": [1]},
    [0.75, 0.01],
    "0.75",
    7,
])
def test_a_cache_entry_with_wrong_types_counts_as_absent(document, tmp_path):
    path = write_entry(tmp_path, document)
    # measured again, not an error
    assert probe_module._read_cache(tmp_path, KEY, shape=SHAPE) is None
    assert json.loads(path.read_text()) == document


def test_a_cache_entry_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / f"{KEY}.json").mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a file; remove it"):
        probe_module._read_cache(tmp_path, KEY, shape=SHAPE)


def test_an_unwritable_cache_entry_is_a_config_error(tmp_path):
    (tmp_path / "probe_cache").write_text("kept\n")
    result = ProbeResult.from_correct([[[1, 0]]], seconds=1.0)
    with pytest.raises(ConfigError, match="cannot write probe cache entry"):
        probe_module._write_cache(tmp_path / "probe_cache", KEY, result)
    assert (tmp_path / "probe_cache").read_text() == "kept\n"


@pytest.mark.parametrize("field, value", [("steps", 10**30), ("finetune_seeds", 10**30),
                                          ("error_seeds", 10**30)])
def test_probe_refuses_counts_too_large(field, value):
    setup = ProbeSetup(checkpoint=None, bundle=None, error_params=None, row_bytes=2048,
                       config=dataclasses.replace(ProbeConfig(), **{field: value}))
    with pytest.raises(ConfigError, match="must be <= 10,000,000 and seeds <= 10,000"):
        probe_module._check(probe_module.ProbeCandidate((), (), ()), _no_layers(setup))


def _no_layers(setup: ProbeSetup) -> ProbeSetup:
    """The setup with a checkpoint of no layers (the counts are what is checked)."""
    class NoLayers:
        layer_names = ()
    return dataclasses.replace(setup, checkpoint=NoLayers())


@pytest.mark.parametrize("outputs, shown", [(3, "(1, 3)"), (30, "(1, 30)")])
def test_classifier_width_must_match_the_classes(outputs, shown):
    model = nn.Sequential(nn.Flatten(), nn.Linear(1 * 8 * 8, outputs))
    with pytest.raises(ConfigError, match=re.escape(f"shape {shown}") + ".*10 classes"):
        extract_layer_table(model, (1, 8, 8), num_classes=10)
    assert extract_layer_table(model, (1, 8, 8)).n_layers == 1  # without classes: no check


def test_a_model_returning_no_tensor_is_refused():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)), None

    with pytest.raises(ConfigError, match="a tuple, not a tensor"):
        extract_layer_table(Pair(), (1, 8, 8), num_classes=10)


@pytest.mark.slow
def test_probe_measures_again_over_a_damaged_cache_entry(tmp_path):
    """As a user meets it: a cache entry with wrong types is measured again and rewritten."""
    args = ["probe", "--dataset", "synthetic", "--epochs", "1", "--steps", "0", "--error-seeds",
            "1", "--mapping", "all-digital", "--dram", "none", "--results-dir", str(tmp_path),
            "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.stderr
    entries = list((tmp_path / "probe_cache").glob("*.json"))
    assert entries
    for entry in entries:
        entry.write_text(json.dumps({**json.loads(entry.read_text()), "accuracy_mean": "x"}))
    probe_module._MEMORY_CACHE.clear()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["accuracy"] == json.loads(first.stdout)["accuracy"]
    for entry in entries:
        assert isinstance(json.loads(entry.read_text())["accuracy_mean"], float)
