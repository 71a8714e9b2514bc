"""What an accuracy estimator may do besides estimating (no torch).

Every estimator turns a ``ProbeCandidate`` into a ``ProbeResult`` (``AccuracyEstimator``);
the built-in probe (``probe_estimator.ProbeEstimator``) can do more, and the parts of the
search that need more ask for it by these protocols: an engine checks with ``isinstance``
and refuses an estimator without the ability in one line, before any work. The probe and the
engines' stub (``engines/testing.py``) name the method protocols they implement, so that
mypy checks their signatures; ``TrainsOnProbeData`` is an attribute, met structurally.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from dse.accuracy import AccuracyEstimator, ProbeCandidate, ProbeResult
from hw_models.errors import ConfigError

if TYPE_CHECKING:  # types only: importing this module loads no torch
    from pathlib import Path

    from networks.datasets import DataBundle
    from networks.train import Checkpoint


@runtime_checkable
class Characterising(Protocol):
    """Measures its weights as they are, without a fine-tune of each candidate, on a named
    split: EDEN characterises the network it retrained once for the device, on one half of
    the validation images, and validates its mapping on the other (``dse.engines.eden``)."""

    def characterising(self, split: str) -> AccuracyEstimator:
        """The same estimator with no fine-tune (0 steps, one fine-tune seed) on
        ``split``; its results are cached under those settings."""
        ...


class ProbeData(Protocol):
    """The probe's checkpoint and data, as ODiMO's supernet search trains on them."""

    @property
    def checkpoint(self) -> Checkpoint: ...
    @property
    def bundle(self) -> DataBundle: ...
    @property
    def device(self) -> str: ...


@runtime_checkable
class TrainsOnProbeData(Protocol):
    """Measures with a checkpoint on a dataset that another method may train on
    (``--engine odimo``)."""

    @property
    def setup(self) -> ProbeData: ...


@runtime_checkable
class StartsFrom(Protocol):
    """Measures candidates from weights a method trained from the study's checkpoint and
    delivered with its mapping (ODiMO's fine-tuned split, EDEN's retrained network), keeps
    such weights where every worker and ``dse confirm`` find them, and reads them back."""

    def starting_from(self, weights: Checkpoint) -> AccuracyEstimator:
        """The same estimator, fine-tuning and measuring from ``weights``."""
        ...

    def keep_weights(self, weights: Checkpoint) -> dict[str, object]:
        """Store ``weights``; the record a trial carries to name them."""
        ...

    def weights_of(self, record: dict[str, object]) -> Checkpoint:
        """The weights ``record`` names (a ``ConfigError`` when they are gone)."""
        ...

    def weights_dir(self) -> Path | None:
        """The folder kept weights live in (None: this process only), where a method may
        keep its own index of them (EDEN's retrained networks)."""
        ...


def delivered(estimator: AccuracyEstimator, record: object | None) -> AccuracyEstimator:
    """``estimator`` starting from the weights a trial's ``record`` names (None: the
    estimator itself)."""
    if record is None:
        return estimator
    if not isinstance(estimator, StartsFrom) or not isinstance(record, dict):
        raise ConfigError("this trial was measured from weights its engine delivered; this "
                          "accuracy estimator cannot start from other weights")
    return estimator.starting_from(estimator.weights_of(record))


@runtime_checkable
class Batched(Protocol):
    """Measures many candidates together, with the results it gives one at a time (the
    batched probe: ``probe_estimator.probe_many``)."""

    def many(self, candidates: Sequence[ProbeCandidate]) -> list[ProbeResult]:
        """The result of each candidate, in order."""
        ...

    def group_size(self) -> int:
        """How many candidates one batch holds: a caller that stores results as they
        come hands over this many at a time."""
        ...


def measure_many(estimator: AccuracyEstimator, candidates: Sequence[ProbeCandidate]
                 ) -> list[ProbeResult]:
    """The results of ``candidates``: together where ``estimator`` can (``Batched``), else
    one at a time."""
    if isinstance(estimator, Batched):
        return estimator.many(candidates)
    return [estimator(candidate) for candidate in candidates]


class Confirmable(AccuracyEstimator, Protocol):
    """An estimator whose results a confirmation stores: it names the settings they are
    bound to (a confirmation with other settings measures again)."""

    def settings(self) -> dict[str, object]:
        """The settings, as stored with each confirmed point."""
        ...


class Confirming(Protocol):
    """Gives the estimator a confirmation uses: the same one with a longer fine-tune and
    more fine-tune seeds, on ``split`` (the test split, which the search never sees)."""

    def confirming(self, *, steps: int, finetune_seeds: int, split: str = "test"
                   ) -> Confirmable:
        ...


__all__ = ["Batched", "Characterising", "Confirmable", "Confirming", "ProbeData", "StartsFrom",
           "TrainsOnProbeData", "delivered", "measure_many"]
