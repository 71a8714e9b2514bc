"""How a candidate's accuracy is measured, without torch.

An accuracy estimator is any callable that takes a ``ProbeCandidate`` (per layer: analog
channels and the bit error rates of the tensors stored in DRAM) and returns a
``ProbeResult``. The default one is the fine-tune probe (``dse.accuracy.probe``, torch);
``--accuracy-estimator package.module:function`` plugs in another. These records are plain
data so that reading a study (``dse pareto``, ``show``, ``status``) never loads torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hw_models.errors import ConfigError


@dataclass(frozen=True)
class ProbeCandidate:
    """Per layer (layer-table order): analog channels and bit error rates of the stored
    tensors (dimensionless probabilities per bit)."""

    n_analog: tuple[int, ...]
    weight_ber: tuple[float, ...]
    activation_ber: tuple[float, ...]


@dataclass(frozen=True)
class ProbeResult:
    """What an estimator measured for one candidate."""

    accuracy_mean: float          # fraction in [0, 1]
    accuracy_std: float           # fraction, over the error seeds
    accuracy_per_seed: tuple[float, ...]
    seconds: float                # time of the original evaluation (0 work when cached)
    cached: bool


class AccuracyEstimator(Protocol):
    """Accuracy of a candidate (an ``--accuracy-estimator`` or the probe)."""

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult: ...


@dataclass(frozen=True)
class AccuracyModel:
    """An estimator with its reference: the all-digital, nominal-DRAM candidate's accuracy,
    against which accuracy drops are measured (fraction)."""

    estimator: AccuracyEstimator
    baseline_accuracy: float


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
           "ProbeResult", "error_free"]
