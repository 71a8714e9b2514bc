"""The Optuna engine: a sampler proposes, one trial at a time, on any Optuna storage.

With ``dse.storage``, this package is the only place that touches Optuna's internals (the
storage behind a study, trial ids, queued parameters, the RDB models).
"""
from dse.engines.optuna_engine.engine import OptunaEngine

__all__ = ["OptunaEngine"]
