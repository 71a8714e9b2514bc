"""Every engine passes the engine contract; engines are picked by name."""
from __future__ import annotations

import pytest

from dse.engines import engine_names, make_engine
from dse.engines.optuna import OptunaEngine
from dse.engines.testing import EngineContract
from hw_models import ConfigError


class TestOptunaEngine(EngineContract):
    def make_engine(self, storage_url: str) -> OptunaEngine:
        return OptunaEngine(sampler="random", storage_url=storage_url)


@pytest.mark.slow
class TestOptunaEngineTpe(EngineContract):
    def make_engine(self, storage_url: str) -> OptunaEngine:
        return OptunaEngine(sampler="tpe", storage_url=storage_url)


def test_engines_by_name():
    assert "optuna" in engine_names()
    assert isinstance(make_engine("optuna", sampler="nsga2"), OptunaEngine)
    with pytest.raises(ConfigError, match="unknown engine 'annealing'"):
        make_engine("annealing")
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_engine("optuna", sampler="nope")
