"""Atomic writes: the old file stays whole when writing fails."""
from __future__ import annotations

import pandas as pd
import pytest

from dse.results.files import atomic_path, write_csv, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("disk full")
    assert path.read_text() == '{\n  "old": true\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_csv_round_trip(tmp_path):
    write_csv(tmp_path / "t.csv", pd.DataFrame({"trial": [0, 1], "latency_s": [1e-3, 2e-3]}))
    assert pd.read_csv(tmp_path / "t.csv")["latency_s"].tolist() == [1e-3, 2e-3]
