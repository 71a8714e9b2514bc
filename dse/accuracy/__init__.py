"""How a candidate's accuracy is measured, without torch.

An accuracy estimator is any callable that takes a ``ProbeCandidate`` (per layer: analog
channels and the bit error rates of the tensors stored in DRAM) and returns a
``ProbeResult``. The default one is the fine-tune probe (``dse.accuracy.probe_estimator``, torch);
``--accuracy-estimator package.module:function`` plugs in another. These records are plain
data so that reading a study (``dse pareto``, ``show``, ``status``) never loads torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dse.accuracy import stats
from hw_models.errors import ConfigError


@dataclass(frozen=True)
class ProbeCandidate:
    """Per layer (layer-table order): analog channels and bit error rates of the stored
    tensors (dimensionless probabilities per bit). ``analog_channels``, when given, names
    each layer's analog channels (None for a layer: the least-ternarisation-error rule).
    ``shortcut_ber``: per layer, the BER of the stored shortcut its residual add reads
    (``SystemCost.shortcut_ber``); empty: every shortcut error-free."""

    n_analog: tuple[int, ...]
    weight_ber: tuple[float, ...]
    activation_ber: tuple[float, ...]
    analog_channels: tuple[tuple[int, ...] | None, ...] | None = None
    shortcut_ber: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """What an estimator measured for one candidate.

    ``correct`` is the per-image correctness, (finetune_seeds, error_seeds, images) booleans
    (see ``dse.accuracy.stats``): with it, intervals and paired comparisons are computed; an
    estimator without per-image data may give its own interval (``ci_low``, ``ci_high``) or
    none (NaN in the tables).
    """

    accuracy_mean: float          # fraction in [0, 1]
    accuracy_std: float           # fraction, over every fine-tune and error seed
    accuracy_per_seed: tuple[float, ...]  # fine-tune-major: (f0 e0, f0 e1, ..., f1 e0, ...)
    seconds: float                # time of the original evaluation (0 work when cached)
    cached: bool
    correct: np.ndarray | None = None
    ci_low: float | None = None   # fraction
    ci_high: float | None = None
    level: float = stats.LEVEL    # coverage of the interval (and of drops computed from it)

    @classmethod
    def from_correct(cls, correct: Any, *, seconds: float, cached: bool = False,
                     level: float = stats.LEVEL) -> "ProbeResult":
        """The result of a per-image correctness array, with its bootstrap interval."""
        array = stats.as_correct(correct)
        per_seed = array.mean(axis=2).reshape(-1)
        low, high = stats.accuracy_interval(array, level)
        return cls(accuracy_mean=float(array.mean()), accuracy_std=float(per_seed.std()),
                   accuracy_per_seed=tuple(float(v) for v in per_seed), seconds=seconds,
                   cached=cached, correct=array, ci_low=low, ci_high=high, level=level)

    def interval(self) -> tuple[float, float]:
        """(low, high) fractions: given, from ``correct``, or NaN when unknown."""
        if self.ci_low is not None and self.ci_high is not None:
            return float(self.ci_low), float(self.ci_high)
        if self.correct is not None:
            return stats.accuracy_interval(self.correct, self.level)
        return math.nan, math.nan


# A drop within this of a limit is at the limit, and meets it: a drop is a difference of
# floats ((0.95 - 0.94) x 100 = 1.0000000000000009), and a candidate exactly at the limit must
# not fail it on rounding (1e-9 pp is far below one image).
LIMIT_TOLERANCE_PP = 1e-9


def within_limit(drop_pp: float, limit_pp: float) -> bool:
    """Whether an accuracy drop (pp) meets a limit on it (pp), rounding forgiven."""
    return drop_pp <= limit_pp + LIMIT_TOLERANCE_PP


def accuracy_drop_pp(baseline: ProbeResult, result: ProbeResult
                     ) -> tuple[float, float, float]:
    """(drop, low, high) of ``result`` below ``baseline`` in percentage points: paired on
    the images and seeds when both have per-image data on the same images, else from the
    two intervals (NaN bounds when either has none); at ``result``'s interval level."""
    if (baseline.correct is not None and result.correct is not None
            and baseline.correct.shape[2] == result.correct.shape[2]):
        return stats.paired_drop_pp(baseline.correct, result.correct, result.level)
    return stats.unpaired_drop_pp((baseline.accuracy_mean, *baseline.interval()),
                                  (result.accuracy_mean, *result.interval()))


def accuracy_change_pp(baseline: ProbeResult, result: ProbeResult
                       ) -> tuple[float, float, float]:
    """(change, low, high) of ``result`` against ``baseline`` in percentage points, negative
    when ``result`` is worse: ``accuracy_drop_pp`` with the sign every output uses."""
    return stats.change_from_drop(accuracy_drop_pp(baseline, result))


class AccuracyEstimator(Protocol):
    """Accuracy of a candidate (an ``--accuracy-estimator`` or the probe)."""

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult: ...


@dataclass(frozen=True)
class AccuracyModel:
    """An estimator with its reference: the all-digital, nominal-DRAM candidate's accuracy
    (fraction), against which accuracy drops are measured; with the reference's full
    result, drops are paired on its images and seeds."""

    estimator: AccuracyEstimator
    baseline_accuracy: float
    baseline: ProbeResult | None = None

    def drop_pp(self, result: ProbeResult) -> tuple[float, float, float]:
        """(drop, low, high) of ``result`` below the reference, in percentage points."""
        reference = self.baseline or ProbeResult(self.baseline_accuracy, 0.0,
                                                 (self.baseline_accuracy,), 0.0, True,
                                                 ci_low=self.baseline_accuracy,
                                                 ci_high=self.baseline_accuracy)
        return accuracy_drop_pp(reference, result)


@dataclass(frozen=True)
class CheckedEstimator:
    """A user's estimator (``--accuracy-estimator``) whose every answer is checked: a
    wrong type is named here, not found deep in the search."""

    estimator: AccuracyEstimator
    name: str

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        try:
            result = self.estimator(candidate)
        except ConfigError:
            raise
        except Exception as exc:  # a user's estimator may fail in any way
            raise ConfigError(f"accuracy estimator '{self.name}' failed: "
                              f"{type(exc).__name__}: {exc}") from None
        if not isinstance(result, ProbeResult):
            raise ConfigError(f"accuracy estimator '{self.name}' returned "
                              f"{type(result).__name__}, not a dse.accuracy.ProbeResult")
        return result


def error_free(n_layers: int) -> ProbeCandidate:
    """The all-digital candidate at nominal DRAM (no bit errors)."""
    zeros = tuple(0.0 for _ in range(n_layers))
    return ProbeCandidate((0,) * n_layers, zeros, zeros)


__all__ = ["AccuracyEstimator", "AccuracyModel", "CheckedEstimator", "ProbeCandidate",
           "ProbeResult", "accuracy_change_pp", "accuracy_drop_pp", "error_free"]
