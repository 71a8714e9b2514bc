"""Intervals on accuracies and paired accuracy differences (numpy only, no torch).

An evaluation's raw data is its per-image correctness, a boolean array of shape
``(finetune_seeds, error_seeds, images)``: entry ``[f, e, i]`` says whether image ``i`` was
classified correctly by the model fine-tuned with seed ``f`` under the DRAM error masks of
seed ``e``. Its accuracy is the mean of that array.

Two things make the accuracy uncertain: the split is a finite sample of images (one image
of digits' 269 validation images is 0.37 pp), and the fine-tune and the error masks are
random. The interval comes from a bootstrap that resamples both at once: each replicate
draws the images with replacement (multinomial weights) and, independently, the fine-tune
seeds with replacement and, within each drawn fine-tune seed, the error seeds (seeds are
nested: error masks act on one fine-tuned model). The percentile interval of the replicates
is then widened, where it is narrower, to the Wilson score interval of the images alone, so
that a split on which every image is right still gets the width its size allows (the
bootstrap of an all-correct array is the single point 1).

A paired difference (candidate vs baseline on the same images and seeds) resamples both with
the same image weights, and with the same seed draws when both have the same seeds: images
that both get right or both get wrong then cancel, and a candidate identical to the baseline
differs by exactly 0.

With one fine-tune seed the interval cannot see the fine-tune's own variation (a standard
deviation of about 0.4 pp on digits for an error-free candidate); the default is two.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw_models.errors import ConfigError

LEVEL = 0.95          # two-sided coverage of every interval dse reports
REPLICATES = 2000     # bootstrap replicates: on 269 images the ends of a paired drop carry a
                      # Monte-Carlo error of about 0.08 pp (standard deviation over bootstrap
                      # seeds; 0.04 pp with 10,000 replicates, at 5x the time)
BOOTSTRAP_SEED = 20_241  # fixed: the same data always give the same interval
_CHUNK = 250          # replicates drawn at a time (bounds memory for large splits)


def check_level(level: float, option: str = "--interval-level") -> None:
    """A coverage strictly between 0 and 1 (0.95: 95 %)."""
    if not 0 < level < 1:
        raise ConfigError(f"{option} must be in (0, 1), e.g. 0.95 (got {level})")


def as_correct(correct: Any) -> np.ndarray:
    """``correct`` as a boolean (finetune_seeds, error_seeds, images) array; a 1-D array is
    one seed of each, a 2-D one error seeds of one fine-tune."""
    array = np.asarray(correct, dtype=bool)
    while array.ndim < 3:
        array = array[np.newaxis]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"per-image correctness must be a non-empty (finetune_seeds, "
                         f"error_seeds, images) array, got shape {array.shape}")
    return array


def wilson(successes: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (fractions)."""
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _z(level: float) -> float:
    """The standard normal quantile of (1 + level) / 2 (by bisection on erf: no scipy)."""
    target = (1 + level) / 2
    low, high = 0.0, 10.0
    for _ in range(80):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _replicates(arrays: list[np.ndarray], *, shared_seeds: bool, replicates: int,
                seed: int) -> list[np.ndarray]:
    """Bootstrap accuracies of each array, all with the same image draws (and seed draws
    when ``shared_seeds``)."""
    rng = np.random.default_rng(seed)
    images = arrays[0].shape[2]
    flat = [array.reshape(-1, images).astype(np.float64) for array in arrays]
    out: list[list[np.ndarray]] = [[] for _ in arrays]
    done = 0
    while done < replicates:
        count = min(_CHUNK, replicates - done)
        weights = _image_weights(rng, images, count)
        seed_weights = None
        for index, (array, values) in enumerate(zip(arrays, flat)):
            if seed_weights is None or not shared_seeds:
                seed_weights = _seed_weights(rng, array.shape[0], array.shape[1], count)
            per_seed = values @ weights.T.astype(np.float64)  # (seeds, count)
            total = (seed_weights * per_seed.T).sum(axis=1)
            out[index].append(total / (images * array.shape[0] * array.shape[1]))
        done += count
    return [np.concatenate(parts) for parts in out]


def _image_weights(rng: np.random.Generator, images: int, count: int) -> np.ndarray:
    """(count, images) multiplicities of ``count`` resamples of the images (multinomial,
    drawn as indices: numpy's multinomial is slow for thousands of categories)."""
    drawn = rng.integers(0, images, size=(count, images))
    drawn += np.arange(count)[:, None] * images
    return np.bincount(drawn.ravel(), minlength=count * images).reshape(count, images)


def _seed_weights(rng: np.random.Generator, finetune: int, errors: int, count: int
                  ) -> np.ndarray:
    """(count, finetune * errors) multiplicities of a nested resample of the seeds."""
    weights = np.zeros((count, finetune, errors))
    rows = np.arange(count)[:, None, None]
    chosen_f = rng.integers(0, finetune, size=(count, finetune))
    chosen_e = rng.integers(0, errors, size=(count, finetune, errors))
    np.add.at(weights, (rows, chosen_f[:, :, None], chosen_e), 1.0)
    return weights.reshape(count, finetune * errors)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def accuracy_interval(correct: Any, level: float = LEVEL, *, replicates: int = REPLICATES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The ``level`` interval of the accuracy behind ``correct`` (fractions)."""
    array = as_correct(correct)
    mean = float(array.mean())
    low, high = _percentiles(_replicates([array], shared_seeds=True, replicates=replicates,
                                         seed=seed)[0], level)
    floor_low, floor_high = wilson(mean * array.shape[2], array.shape[2], level)
    return min(low, floor_low, mean), max(high, floor_high, mean)


ALTERNATIVES = ("two-sided", "greater", "less")
_BISECTIONS = 60      # halvings of the level when a p-value inverts the interval


@dataclass(frozen=True)
class PairedDrop:
    """The accuracy drop of a candidate below a baseline on the same images and seeds, in
    percentage points (``paired_test``), with intervals at any level and the p-values dual
    to them.

    ``drop_pp`` is the baseline's accuracy minus the candidate's. ``interval(level)`` is
    two-sided; ``p_value(null, alternative)`` is its inversion: for ``two-sided``,
    ``p_value(d) < alpha`` exactly when ``d`` lies outside ``interval(1 - alpha)``; for
    ``greater`` (H1: drop > null), ``p_value(m, "greater") < alpha`` exactly when
    ``interval(1 - 2 * alpha)[0] > m``; for ``less`` (H1: drop < null), exactly when
    ``interval(1 - 2 * alpha)[1] < m`` (up to the bisection's 1e-18 on the level). The
    bootstrap replicates are drawn once and kept, so any level costs no new resampling.
    """

    drop_pp: float
    _replicates_pp: np.ndarray | None = field(default=None, repr=False, compare=False)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """(low, high) two-sided ``level`` interval of the drop, in percentage points."""
        if not 0 < level < 1:
            raise ValueError(f"an interval level must be in (0, 1) (got {level})")
        if self._replicates_pp is None:
            return self.drop_pp, self.drop_pp
        low, high = _percentiles(self._replicates_pp, level)
        return min(low, self.drop_pp), max(high, self.drop_pp)

    def p_value(self, null_drop_pp: float = 0.0, alternative: str = "two-sided") -> float:
        """The p-value of H0: drop = ``null_drop_pp`` against ``alternative`` (see the
        class): the least alpha at which the interval at 1 - alpha (two-sided) or
        1 - 2 alpha (one-sided) leaves the null out."""
        if alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)} "
                             f"(got {alternative!r})")
        two_sided = self._two_sided_p(null_drop_pp)
        if alternative == "two-sided":
            return two_sided
        above = null_drop_pp > self.drop_pp  # the null above the estimate: "less" is its side
        if (alternative == "less") == above:
            return two_sided / 2
        return 1 - two_sided / 2

    def _two_sided_p(self, null: float) -> float:
        """The least alpha with ``null`` outside ``interval(1 - alpha)``, by bisection (the
        intervals are nested: a higher level never gives a narrower one)."""
        def outside(alpha: float) -> bool:
            low, high = self.interval(1 - alpha)
            return null < low or null > high
        if not outside(1 - 1e-12):  # inside even the narrowest interval
            return 1.0
        low, high = 0.0, 1 - 1e-12  # outside at high, inside (or level 1) at low
        for _ in range(_BISECTIONS):
            middle = (low + high) / 2
            if outside(middle):
                high = middle
            else:
                low = middle
        return high


def paired_test(baseline: Any, candidate: Any, *, replicates: int = REPLICATES,
                seed: int = BOOTSTRAP_SEED) -> PairedDrop:
    """The paired drop of ``candidate`` below ``baseline`` (correctness arrays on the same
    images): resampled with the same images, and with the same seeds when their seed counts
    agree."""
    base, cand = as_correct(baseline), as_correct(candidate)
    if base.shape[2] != cand.shape[2]:
        raise ValueError(f"a paired drop needs the same images ({base.shape[2]} vs "
                         f"{cand.shape[2]})")
    drop = (float(base.mean()) - float(cand.mean())) * 100
    if base.shape == cand.shape and np.array_equal(base, cand):
        return PairedDrop(0.0)  # the same answers on every image and seed
    base_values, cand_values = _replicates([base, cand], shared_seeds=base.shape == cand.shape,
                                           replicates=replicates, seed=seed)
    return PairedDrop(drop, (base_values - cand_values) * 100)


def paired_drop_pp(baseline: Any, candidate: Any, level: float = LEVEL, *,
                   replicates: int = REPLICATES, seed: int = BOOTSTRAP_SEED
                   ) -> tuple[float, float, float]:
    """Accuracy drop of ``candidate`` below ``baseline`` on the same images, in percentage
    points, with its ``level`` interval: (drop, low, high) of ``paired_test``."""
    test = paired_test(baseline, candidate, replicates=replicates, seed=seed)
    return (test.drop_pp, *test.interval(level))


def unpaired_drop_pp(baseline: tuple[float, float, float], candidate: tuple[float, float, float]
                     ) -> tuple[float, float, float]:
    """The drop from two (mean, low, high) accuracies measured independently (no per-image
    data): half-widths added in quadrature, in percentage points."""
    drop = (baseline[0] - candidate[0]) * 100
    spread = math.hypot((baseline[2] - baseline[1]) / 2, (candidate[2] - candidate[1]) / 2)
    return drop, drop - spread * 100, drop + spread * 100


def change_from_drop(drop: tuple[float, float, float]) -> tuple[float, float, float]:
    """(change, low, high) in percentage points from (drop, low, high): the one sign every
    output uses, negative when the candidate is worse than the baseline (0.0, never -0.0)."""
    return 0.0 - drop[0], 0.0 - drop[2], 0.0 - drop[1]


def verdict(low: float, high: float) -> str:
    """``significant`` when the interval of a difference excludes 0, else ``within noise``."""
    return "significant" if low > 0 or high < 0 else "within noise"


# ---- storage: bit-packed correctness ------------------------------------------------------

def pack(correct: np.ndarray) -> dict[str, Any]:
    """A JSON-safe record of a correctness array: its shape and its bits (base64)."""
    array = as_correct(correct)
    bits = np.packbits(array.reshape(-1))
    return {"shape": list(array.shape), "bits": base64.b64encode(bits.tobytes()).decode()}


def unpack(record: Any) -> np.ndarray | None:
    """The array of ``pack``; None when ``record`` is not one."""
    if not isinstance(record, dict):
        return None
    shape, bits = record.get("shape"), record.get("bits")
    if (not isinstance(shape, list) or len(shape) != 3 or not isinstance(bits, str)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                       for n in shape)):
        return None
    try:
        raw = np.frombuffer(base64.b64decode(bits, validate=True), dtype=np.uint8)
    except (ValueError, TypeError):
        return None
    count = int(np.prod(shape))
    if len(raw) != (count + 7) // 8:
        return None
    return np.unpackbits(raw)[:count].astype(bool).reshape(shape)
