"""Bad input met inside networks/: classifiers of the wrong width, models that return no
tensor; and, as a user meets it, a damaged probe-cache entry (the entries themselves:
tests/dse/accuracy/test_probe_cache.py)."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from torch import nn

from cli import cli
from dse.accuracy import probe_cache
from hw_models import ConfigError
from networks.extract import extract_layer_table


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
    probe_cache.clear_memory_cache()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["accuracy"] == json.loads(first.stdout)["accuracy"]
    for entry in entries:
        assert isinstance(json.loads(entry.read_text())["accuracy_mean"], float)
