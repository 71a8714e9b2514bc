"""Provenance: versions without importing torch, one line per run."""
from __future__ import annotations

import json
import subprocess
import sys

from dse.config import SearchConfig
from dse.results.provenance import append_run, resolved_config, versions


def test_versions_are_read_without_importing_the_libraries():
    code = ("import sys; from dse.results.provenance import versions; v = versions(); "
            "print(v['torch'] is not None, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "False"]
    assert versions()["dse"]


def test_resolved_config_and_runs(tmp_path):
    record = resolved_config(study="s", storage_shown="sqlite:///x", config=SearchConfig(),
                             identity={"a": 1}, objectives=("accuracy", "latency"),
                             baseline_accuracy=0.9, extra={"storage": "sqlite:///x"})
    assert record["config"]["max_accuracy_drop_pp"] == 1.0
    assert record["objectives"] == {"accuracy": ["maximize", "accuracy"],
                                    "latency": ["minimize", "latency_s"]}
    append_run(tmp_path / "runs.jsonl", {"seed": 1})
    append_run(tmp_path / "runs.jsonl", {"seed": 2})
    lines = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [line["seed"] for line in lines] == [1, 2] and lines[0]["worker"]["pid"] > 0
