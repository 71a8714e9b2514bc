"""Optuna samplers by name (``--sampler``)."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import optuna

from dse.results.ledger import HAS_SET_CONSTRAINT, constraint_values, constraints_of
from hw_models.errors import ConfigError


def _legacy_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna 4.x samplers handle constraints only when given ``constraints_func`` (and
    write its list over the one the objective stored: the same values, in the same order)."""
    return constraint_values(constraints_of(trial))


def _constraints_kw() -> dict[str, Any]:
    """Optuna 5 reads each trial's stored constraints itself (and deprecates
    ``constraints_func`` with a FutureWarning)."""
    return {} if HAS_SET_CONSTRAINT else {"constraints_func": _legacy_constraints}


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise ConfigError("sampler 'gp' needs scipy: pip install 'dse[gp]'") from None
    return optuna.samplers.GPSampler(seed=seed, **_constraints_kw())


DEFAULT_SAMPLER = "tpe"
# Samplers whose proposals stay useful when several are asked before any is told: TPE with
# the constant liar (a running trial counts as a bad one, so the next proposal looks
# elsewhere), a generation of NSGA-II or NSGA-III (its parents are fixed), random and
# quasi-random draws. The GP sampler proposes one point at a time.
BATCH_SAMPLERS = frozenset({"tpe", "nsga2", "nsga3", "random", "qmc"})

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                   constant_liar=True, **_constraints_kw()),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, **_constraints_kw()),
    "nsga3": lambda seed: optuna.samplers.NSGAIIISampler(seed=seed, **_constraints_kw()),
    "gp": _gp,
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")
    with warnings.catch_warnings():  # nsga3, qmc: "experimental" in Optuna, said once per
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # sampler
        return SAMPLERS[name](seed)
