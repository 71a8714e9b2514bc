"""One ``dse search`` does each piece of set-up once: it validates the config once, reads
the SoC preset once, opens the storage once and builds the engine once (the thread set-up,
the preparation and the run share one resolved search)."""
from __future__ import annotations

import collections

from click.testing import CliRunner

import dse.commands.search as search
import hw_models.soc as soc
from cli import cli
from dse.config import SearchConfig


def counting(monkeypatch, module, name, calls):
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] += 1
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)


def test_each_step_of_a_search_runs_once(monkeypatch, tmp_path):
    calls: collections.Counter = collections.Counter()
    counting(monkeypatch, soc, "read_toml", calls)  # every file a preset load reads
    counting(monkeypatch, SearchConfig, "validate", calls)
    counting(monkeypatch, search, "open_storage", calls)
    counting(monkeypatch, search, "make_engine", calls)
    counting(monkeypatch, search, "engine_spec", calls)
    result = CliRunner().invoke(cli, ["search", "--objectives", "latency,energy", "--trials",
                                      "3", "--results-dir", str(tmp_path), "--partitions",
                                      "2", "--dram", "lpddr4-3200"])
    assert result.exit_code == 0, result.stderr
    assert calls == {"read_toml": 1, "validate": 1, "open_storage": 1,
                     "make_engine": 1, "engine_spec": 1}
