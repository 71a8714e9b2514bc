"""Engines of installed packages: the entry point group ``dse.engines`` names a module that
registers them; a plug-in that fails to import is one warning, and dse goes on."""
from __future__ import annotations

import importlib.metadata
import logging

import dse.engines as engines


def installed(monkeypatch, *entries: importlib.metadata.EntryPoint) -> None:
    def entry_points(*, group: str):
        assert group == engines.ENTRY_POINT_GROUP
        return list(entries)
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(engines, "_loaded", False)


def test_an_installed_engine_is_registered(monkeypatch):
    installed(monkeypatch, importlib.metadata.EntryPoint(
        name="plugin", value="plugin_engine", group=engines.ENTRY_POINT_GROUP))
    try:
        names = engines.engine_names()
        assert names[:4] == ("optuna", "odimo", "eden", "odimo+eden") and "plugin" in names
    finally:
        engines.unregister("plugin")


def test_a_broken_plugin_is_one_warning(monkeypatch, caplog):
    installed(monkeypatch, importlib.metadata.EntryPoint(
        name="broken", value="no_such_module_here", group=engines.ENTRY_POINT_GROUP))
    with caplog.at_level(logging.WARNING, logger="dse.engines"):
        assert engines.engine_names()[:4] == ("optuna", "odimo", "eden", "odimo+eden")
    [record] = caplog.records
    assert "engine plug-in broken (no_such_module_here) not loaded: ModuleNotFoundError" \
        in record.getMessage()
