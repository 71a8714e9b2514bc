"""The fine-tune probe's cache (no torch): results kept in memory and on disk, keyed by
everything that determines them.

A cache entry is a JSON file ``<key>.json``: the accuracies (for people reading it), the
seconds of the original measurement and the bit-packed correctness (``stats.pack``), which is
what is read back. An entry that is not a valid result counts as absent: the probe measures
again and replaces it. Workers may share the folder (entries are written atomically).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from dse.accuracy import ProbeCandidate, ProbeResult, stats
from dse.accuracy.defaults import ProbeConfig
from dse.accuracy.stats import LEVEL
from hw_models.error_models import ErrorModelParams
from hw_models.errors import ConfigError

CACHE_TOLERANCE = 1e-9  # stored accuracies against the bits (JSON keeps 17 digits)

_MEMORY_CACHE: dict[str, ProbeResult] = {}


def cache_key(candidate: ProbeCandidate, config: ProbeConfig, *,
              error_params: ErrorModelParams, row_bytes: int, checkpoint_digest: str,
              version: str, data_key: str | None = None,
              quantizer: str | None = None) -> str:
    """Hash of the split counts, per-tensor BERs, error model, settings, checkpoint (the
    digest of its file), data, quantisers and the dse ``version`` (a cache written by another
    version is recomputed, not misread). ``data_key`` is the data's digest
    (``networks.data_identity.data_key``); None for a built-in dataset's fixed data, whose
    keys stay those of dse 0.3.0. ``quantizer`` names the probe's quantisers
    (``networks.quantize.QUANTIZER_VERSION``); None: the quantisers of dse 0.3.0, whose keys
    stay as they were."""
    document = {
        "version": version,
        "n_analog": list(candidate.n_analog),
        "weight_ber": [float(f"{b:.6g}") for b in candidate.weight_ber],
        "activation_ber": [float(f"{b:.6g}") for b in candidate.activation_ber],
        **({} if not any(candidate.shortcut_ber) else
           {"shortcut_ber": [float(f"{b:.6g}") for b in candidate.shortcut_ber]}),
        **({} if candidate.analog_channels is None else
           {"analog_channels": [None if c is None else list(c)
                                for c in candidate.analog_channels]}),
        "config": {key: value for key, value in asdict(config).items()
                   if key != "interval_level"},  # intervals are recomputed from the bits
        "error_params": asdict(error_params),
        "row_bytes": row_bytes,
        "checkpoint": checkpoint_digest,
        **({} if data_key is None else {"data": data_key}),
        **({} if quantizer is None else {"quantizer": quantizer}),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:24]


def remembered(key: str, *, level: float) -> ProbeResult | None:
    """The result this process measured or read for ``key`` (its interval at ``level``),
    or None."""
    known = _MEMORY_CACHE.get(key)
    if known is None or known.level == level or known.correct is None:
        return known
    return ProbeResult.from_correct(known.correct, seconds=known.seconds, cached=True,
                                    level=level)


def remember(key: str, result: ProbeResult) -> None:
    """Keep ``result`` for ``key`` in this process (as a cached result)."""
    _MEMORY_CACHE[key] = result if result.cached else dataclasses.replace(result, cached=True)


def clear_memory_cache() -> None:
    """Forget every result this process kept (the files stay)."""
    _MEMORY_CACHE.clear()


def read_cache(cache_dir: Path | None, key: str, *, shape: tuple[int, int, int],
               level: float = LEVEL) -> ProbeResult | None:
    """The cached result, or None when absent, unreadable or not a valid result (it is then
    measured again and the file replaced); a folder in the entry's place is refused before
    the probe's work, not after it."""
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{key}.json"
    if path.is_dir():
        raise ConfigError(f"probe cache entry {path} is a folder, not a file; remove it")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return valid_result(document, shape=shape, level=level)


def valid_result(document: object, *, shape: tuple[int, int, int], level: float = LEVEL
                 ) -> ProbeResult | None:
    """``document`` as a cached ``ProbeResult`` if it is one: a correctness array of
    ``shape`` (fine-tune seeds, error seeds, images), the stored accuracies (finite
    fractions) equal to what its bits say, seconds finite and >= 0; None otherwise."""
    if not isinstance(document, dict):
        return None
    correct = stats.unpack(document.get("correct"))
    seconds = _number(document.get("seconds"), 0, math.inf)
    if correct is None or correct.shape != tuple(shape) or seconds is None:
        return None
    result = ProbeResult.from_correct(correct, seconds=seconds, cached=True, level=level)
    per_seed = document.get("accuracy_per_seed")
    if not isinstance(per_seed, list) or len(per_seed) != len(result.accuracy_per_seed):
        return None
    stored = [_number(value, 0, 1) for value in per_seed]
    mean = _number(document.get("accuracy_mean"), 0, 1)
    std = _number(document.get("accuracy_std"), 0, 1)
    if (mean is None or std is None or None in stored
            or abs(mean - result.accuracy_mean) > CACHE_TOLERANCE
            or abs(std - result.accuracy_std) > CACHE_TOLERANCE):
        return None
    if any(abs(value - expected) > CACHE_TOLERANCE  # type: ignore[operator]
           for value, expected in zip(stored, result.accuracy_per_seed)):
        return None
    return result


def _number(value: object, low: float, high: float) -> float | None:
    """``value`` if it is a finite JSON number in [low, high] (``true`` is not one)."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high):
        return float(value)
    return None


def cache_document(result: ProbeResult) -> dict[str, object]:
    """What a cache entry holds: the accuracies (for people reading it), the seconds and
    the bit-packed correctness (what is read back)."""
    assert result.correct is not None
    return {"accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
            "accuracy_per_seed": list(result.accuracy_per_seed), "seconds": result.seconds,
            "correct": stats.pack(result.correct)}


def write_cache(cache_dir: Path | None, key: str, result: ProbeResult) -> None:
    """Store ``result`` as the entry of ``key`` (nothing without a folder); a folder the
    file system refuses is a ``ConfigError`` naming the entry."""
    if cache_dir is None:
        return
    path = Path(cache_dir) / f"{key}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # workers may share the cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(cache_document(result)))
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigError(f"cannot write probe cache entry {path}: {exc.strerror}") from None
