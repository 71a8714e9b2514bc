"""The Optuna engine: a sampler proposes, one trial at a time, on any Optuna storage.

With ``dse.storage``, this package is the only place that touches Optuna's internals (the
storage behind a study, trial ids, queued parameters, the RDB models).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dse.engines import EngineSpec, register, setting
from dse.engines.optuna_engine.engine import OptunaEngine
from dse.engines.optuna_engine.samplers import DEFAULT_SAMPLER, SAMPLERS, make_sampler

__all__ = ["OptunaEngine", "OptunaSettings"]


def _sampler_names() -> tuple[str, ...]:
    return tuple(SAMPLERS)


@dataclass(frozen=True)
class OptunaSettings:
    sampler: str = setting(DEFAULT_SAMPLER, choices=_sampler_names,
                           help="the Optuna sampler (gp needs scipy: pip install "
                                "'dse[gp]')")

    def __post_init__(self) -> None:
        make_sampler(self.sampler, 0)  # an unknown sampler fails before any work


def _factory(settings: OptunaSettings, problem: Any, study: Any) -> OptunaEngine:
    return OptunaEngine(sampler=settings.sampler)


SPEC = register(EngineSpec(
    name="optuna", summary="a sampler over the whole space, one trial at a time",
    settings=OptunaSettings, factory=_factory))
