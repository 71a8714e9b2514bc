"""Verdicts on accuracy changes: three of them, with the family-wise error controlled.

Every claim of a summary is tested twice (``tests``):

* the two-sided test that the accuracy did not change (null: drop 0);
* the equivalence test (TOST, two one-sided tests) that the drop lies within
  ``(-margin, +margin)``: its p-value is the larger of the p-values of "drop > -margin" and
  "drop < +margin", each tested one-sided.

All of a summary's tests form one family, whose error is controlled by Holm's step-down
method (``holm``): the chance that any true null hypothesis of the family is rejected (a
change called significant where there is none, or equivalence claimed where the drop is
beyond the margin) is at most ``1 - level`` (5 % at the default 95 %). That bounds the
point nulls, not the sign of a significant change, and it counts two hypotheses per claim
although at most one of them can be true when the margin is positive (a restricted,
Shaffer-type adjustment would be less conservative). The verdict (``verdict``) is then

* ``significant decrease`` / ``significant increase``: the test of no change is rejected,
  and the sign of the change says which (a significant change may also lie within the
  margin: it is measurable, however small, and is reported as significant);
* ``equivalent``: not significant, and the equivalence test is rejected: the change is
  within the margin with confidence;
* ``inconclusive``: neither.

A drop is anything with ``p_value(null_drop_pp, alternative)`` (``dse.accuracy.stats``'s
paired drop, or ``IntervalDrop`` for results without per-image data). Drops are in
percentage points, positive when the candidate is worse; changes (what outputs show) are
their negatives. Pure functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from dse.accuracy.stats import normal_quantile
from hw_models.errors import ConfigError

DECREASE, INCREASE = "significant decrease", "significant increase"
EQUIVALENT, INCONCLUSIVE = "equivalent", "inconclusive"
NO_INTERVAL = "no interval"  # neither per-image data nor an interval: nothing to test
VERDICTS = (DECREASE, INCREASE, EQUIVALENT, INCONCLUSIVE, NO_INTERVAL)
# The only verdict that may be worded as costing no accuracy (outputs: NO_COST).
NO_COST = "no measurable accuracy cost"


class Drop(Protocol):
    """An accuracy drop (pp) that gives p-values (``dse.accuracy.stats.PairedDrop``)."""

    @property
    def drop_pp(self) -> float: ...

    def p_value(self, null_drop_pp: float = 0.0, alternative: str = "two-sided") -> float:
        ...


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: sorted ascending, the k-th
    smallest (k from 0) is multiplied by (m - k), capped at 1 and made non-decreasing. A
    hypothesis is rejected at level ``alpha`` when its adjusted p-value is below it."""
    m = len(p_values)
    for p in p_values:
        if not 0 <= p <= 1:  # also NaN
            raise ValueError(f"a p-value must be in [0, 1] (got {p})")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def p_value(drop: Drop, null_drop_pp: float, alternative: str) -> float:
    """``drop.p_value``, clipped to [0, 1]."""
    return _clip(drop.p_value(null_drop_pp, alternative))


def no_change_p(drop: Drop) -> float:
    """The two-sided p-value of "the accuracy did not change" (drop 0)."""
    return p_value(drop, 0.0, "two-sided")


def equivalence_p(drop: Drop, margin_pp: float) -> float:
    """TOST: the p-value of "the drop lies within (-margin, +margin)": the larger of the
    one-sided p-values of drop > -margin and drop < +margin."""
    check_margin(margin_pp)
    return max(p_value(drop, -margin_pp, "greater"), p_value(drop, margin_pp, "less"))


def verdict(drop_pp: float, p_adjusted: float, p_equivalence_adjusted: float,
            alpha: float) -> str:
    """The verdict of one drop from its (Holm-)adjusted p-values (see the module)."""
    if p_adjusted < alpha and drop_pp != 0:
        return DECREASE if drop_pp > 0 else INCREASE
    if p_equivalence_adjusted < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def check_margin(margin_pp: float, option: str = "--equivalence-margin") -> None:
    """A margin is a finite number of percentage points >= 0."""
    if not (isinstance(margin_pp, (int, float)) and math.isfinite(margin_pp)
            and margin_pp >= 0):
        raise ConfigError(f"{option} must be a finite number of percentage points >= 0, "
                          f"e.g. 1 (got {margin_pp})")


@dataclass(frozen=True)
class IntervalDrop:
    """A drop known only by its interval (results without per-image data, whose interval
    combines two unpaired intervals): p-values from the normal distribution the interval
    implies, its standard error the half-width over the normal quantile of ``level``. A
    zero-width interval is a drop known exactly."""

    drop_pp: float
    low_pp: float
    high_pp: float
    level: float

    def p_value(self, null_drop_pp: float = 0.0, alternative: str = "two-sided") -> float:
        error = (self.high_pp - self.low_pp) / 2 / normal_quantile(self.level)
        if error > 0:
            z = (self.drop_pp - null_drop_pp) / error
            upper = 0.5 * math.erfc(z / math.sqrt(2))   # P(Z >= z)
            lower = 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z)
        else:  # exact: the null is rejected with certainty unless it is the drop itself
            upper = 0.0 if self.drop_pp > null_drop_pp else 1.0
            lower = 0.0 if self.drop_pp < null_drop_pp else 1.0
        if alternative == "greater":
            return upper
        if alternative == "less":
            return lower
        if alternative == "two-sided":
            return min(1.0, 2 * min(upper, lower))
        raise ValueError(f"unknown alternative '{alternative}'")


def _clip(p: float) -> float:
    return min(1.0, max(0.0, float(p)))
