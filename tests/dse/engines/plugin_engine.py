"""An engine from another package: registered when its module is imported, as the entry
point group ``dse.engines`` makes dse import it (``test_plugins.py``)."""
from __future__ import annotations

from dataclasses import dataclass

from dse.engines import EngineSpec, register


@dataclass(frozen=True)
class PluginSettings:
    pass


@dataclass
class PluginEngine:
    name: str = "plugin"

    def run(self, job) -> None:  # pragma: no cover - only registered, never run here
        raise NotImplementedError


register(EngineSpec(name="plugin", summary="an installed package's engine",
                    settings=PluginSettings,
                    factory=lambda settings, problem, study: PluginEngine()))
