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

A paired difference (candidate vs baseline on the same images and seeds, ``paired_test``)
is the union of two intervals:

* the same bootstrap, both resampled with the same image weights, and with the same seed
  draws when both have the same seeds (images that both get right or both get wrong
  cancel). It sees the seeds' variation, but alone it undercovers when a few images differ,
  all one way: the drop is then a count of a few rare events, and the bootstrap of 0, 2 or 4
  discordant images is far too narrow (coverage 59-63 % with 1 expected discordant image,
  82-90 % with 2, 90-91 % with 4, in docs/benchmarks.md; 13.5 % of the draws with 2
  expected see none and got [0, 0]);
* a score interval for the difference of two paired proportions on the *seed-averaged
  discordant images*: b = the sum over images of the share of seed pairs in which the
  baseline is right and the candidate wrong, c the reverse, n the images (drop = (b - c) / n).
  The interval is the set of drops d whose score statistic, (b - c - n d) moved one image
  towards 0 (the continuity correction of McNemar's corrected test) over its standard
  deviation under H0 with the discordant probabilities at their restricted maximum
  likelihood (Tango, 1998), is within the normal quantile. At d = 0 it is McNemar's
  corrected test: 4 of 4 discordant images against the candidate give p = 0.134 (exact
  McNemar 0.125) and an interval that holds 0; 6 of 6 give 0.041 (exact 0.031). With one
  seed of each kind b and c are the discordant counts and the union is this paired-proportion
  interval (widened only where the bootstrap is wider).

Why this score interval: on the discordant counts of one seed (the trinomial summed
exactly, no simulation error), with 0.5-30 expected discordant images against the
candidate and 0-15 towards it (steps of 0.5) on 269 and on 1000 images, it covers at least
96.1 % two-sided, and the truth lies above its upper end in at most 2.28 % of draws (below
its lower end 2.41 %): its upper end is a one-sided 97.5 % bound (``python bench/coverage.py
--exact``). Without the correction it covers 93.2 % with 4 images against the candidate (and
says `significant` for 4 of 4); with half an image 95.1 % two-sided but up to 3.4 % in one
tail. In the simulation of ``bench/coverage.py`` (seeds, seed noise, the union; 154 regimes
of 0-30 expected discordant images and 1x1 to 5x5 seeds, 300 draws each, a Monte-Carlo
standard error of 1.3 pp) the union covers at least 94.3 +- 1.3 %, the truth lies above its
upper end in at most 2.7 +- 0.9 % of draws, and p_value(0) < 0.05 at a true drop of 0 in at
most 5.7 +- 1.3 % (docs/benchmarks.md). It overcovers (98-100 %) with several noisy fine-tune
seeds: the price is power.

A candidate identical to the baseline (no image differs in any seed) drops by exactly 0 and
its p-value at 0 is 1, but its interval is not [0, 0]: the images that agree are a sample,
and 269 of them cannot rule out a candidate that would differ on 2 % of the population
(the interval is +-2.08 pp on 269 images, +-0.56 pp on 1000). [0, 0] is what left a
regime with 2 expected discordant images at 82-90 % coverage. A caller comparing a trial
with itself knows the drop is 0 without a test.

``PairedDrop.p_value`` inverts the union: the two-sided p-value is the larger of the score
test's and the bootstrap's (the least alpha at which the percentile interval at 1 - alpha
leaves the null out, by bisection on kept, sorted replicates), so ``p_value(d) < alpha``
exactly when ``d`` is outside ``interval(1 - alpha)``; the one-sided p-values are dual to
the ends of ``interval(1 - 2 alpha)``.

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
    z = normal_quantile(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_quantile(level: float) -> float:
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
CONTINUITY = 1.0      # images: the score interval's continuity correction on b - c (that of
                      # McNemar's corrected test); 0.5 undercovers one-sidedly (3.4 % in one
                      # tail where 2.5 % is claimed) and none covers 93 % with 4 images (docs)
_BISECTIONS = 60      # halvings when an interval end or a p-value is found by bisection


@dataclass(frozen=True)
class PairedDrop:
    """The accuracy drop of a candidate below a baseline on the same images and seeds, in
    percentage points (``paired_test``), with intervals at any level and the p-values dual
    to them.

    ``drop_pp`` is the baseline's accuracy minus the candidate's. ``interval(level)`` is
    two-sided: the union of the seed+image bootstrap percentile interval and the
    continuity-corrected score interval of the seed-averaged discordant images (module
    docstring). ``p_value(null, alternative)`` is its inversion: for ``two-sided``,
    ``p_value(d) < alpha`` exactly when ``d`` lies outside ``interval(1 - alpha)``; for
    ``greater`` (H1: drop > null), ``p_value(m, "greater") < alpha`` exactly when
    ``interval(1 - 2 * alpha)[0] > m``; for ``less`` (H1: drop < null), exactly when
    ``interval(1 - 2 * alpha)[1] < m`` (up to the bisections' 1e-18). The bootstrap
    replicates are drawn once and kept (sorted), so any level costs no new resampling.
    """

    drop_pp: float
    against: float = 0.0     # seed-averaged images the baseline gets right, the candidate wrong
    towards: float = 0.0     # and the reverse
    images: int = 0          # 0: no score interval (only the bootstrap's)
    _sorted_pp: np.ndarray | None = field(default=None, repr=False, compare=False)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """(low, high) two-sided ``level`` interval of the drop, in percentage points."""
        if not 0 < level < 1:
            raise ValueError(f"an interval level must be in (0, 1) (got {level})")
        low, high = self._bootstrap_interval(1 - level)
        if self.images:
            score_low, score_high = score_interval(self.against, self.towards, self.images,
                                                   level)
            low, high = min(low, score_low * 100), max(high, score_high * 100)
        return low, high

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

    def bootstrap_interval(self, level: float = LEVEL) -> tuple[float, float]:
        """The union's bootstrap part alone (pp): the percentile interval, widened to hold
        the estimate; the point estimate when no answer differs."""
        return self._bootstrap_interval(1 - level)

    def _bootstrap_interval(self, alpha: float) -> tuple[float, float]:
        if self._sorted_pp is None:
            return self.drop_pp, self.drop_pp
        return (min(_quantile(self._sorted_pp, alpha / 2), self.drop_pp),
                max(_quantile(self._sorted_pp, 1 - alpha / 2), self.drop_pp))

    def _two_sided_p(self, null: float) -> float:
        """The least alpha with ``null`` outside ``interval(1 - alpha)``: outside the union
        means outside both, so the larger of the two intervals' p-values."""
        score = (score_p_value(self.against, self.towards, self.images, null / 100)
                 if self.images else 0.0)
        return max(score, self._bootstrap_p(null))

    def _bootstrap_p(self, null: float) -> float:
        """The least alpha with ``null`` outside the bootstrap interval at 1 - alpha, by
        bisection (the intervals are nested: a higher level never gives a narrower one)."""
        def inside(alpha: float) -> bool:
            low, high = self._bootstrap_interval(alpha)
            return low <= null <= high
        if inside(1.0):  # inside even the narrowest interval (the estimate's side)
            return 1.0
        return _boundary(0.0, 1.0, inside, inside_end=False)  # inside (or level 1) at 0


def _quantile(ordered: np.ndarray, share: float) -> float:
    """The ``share`` quantile of sorted values, interpolated as numpy's default (linear)."""
    position = share * (len(ordered) - 1)
    below = min(int(math.floor(position)), len(ordered) - 1)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (position - below) * (ordered[above] - ordered[below]))


def discordance(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(against, towards): the images the baseline gets right and the candidate wrong, and
    the reverse, each image counted by its share of seed pairs (seed by seed when both have
    the same seeds, else every seed of one with every seed of the other). Their difference
    over the images is the drop."""
    if baseline.shape == candidate.shape:
        against = (baseline & ~candidate).mean(axis=(0, 1)).sum()
        towards = (~baseline & candidate).mean(axis=(0, 1)).sum()
    else:
        base_right = baseline.mean(axis=(0, 1))
        cand_right = candidate.mean(axis=(0, 1))
        against = (base_right * (1 - cand_right)).sum()
        towards = ((1 - base_right) * cand_right).sum()
    return float(against), float(towards)


def _score_statistic(against: float, towards: float, images: int, drop: float) -> float:
    """The continuity-corrected score statistic of H0: drop (a fraction) for the difference
    of two paired proportions: (b - c - n drop, moved ``CONTINUITY`` towards 0) over its
    standard deviation under H0, the discordant probabilities at their maximum likelihood
    under H0 (Tango 1998). Decreasing in ``drop``; 0 near the estimate (b - c) / n."""
    if drop < 0:  # the same with the two kinds of discordance swapped
        return -_score_statistic(towards, against, images, -drop)
    n, b, c = float(images), against, towards
    # the restricted maximum likelihood of P(baseline wrong, candidate right): the
    # non-negative root of 2n q^2 + (-(b + c) + (2n - b + c) drop) q - c drop (1 - drop)
    linear = -(b + c) + (2 * n - b + c) * drop
    constant = -c * drop * (1 - drop)
    towards_p = (-linear + math.sqrt(max(linear * linear - 8 * n * constant, 0.0))) / (4 * n)
    variance = n * (2 * towards_p + drop * (1 - drop))
    excess = b - c - n * drop
    excess = math.copysign(max(abs(excess) - CONTINUITY, 0.0), excess)
    if excess == 0:
        return 0.0
    if variance <= 0:
        return math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


def score_interval(against: float, towards: float, images: int, level: float = LEVEL
                   ) -> tuple[float, float]:
    """The ``level`` continuity-corrected score interval (fractions) of the difference of
    two paired proportions, (against - towards) / images, from the (seed-averaged)
    discordant images: the drops whose score statistic is within the normal quantile. With
    no discordant image it is not [0, 0]: 269 images that agree still allow a drop of
    about 2 pp."""
    z = normal_quantile(level)
    estimate = (against - towards) / images

    def end(inside_at: float, outside_at: float, inside: Any) -> float:
        return outside_at if inside(outside_at) else _boundary(inside_at, outside_at, inside)

    high = end(estimate, 1.0,
               lambda d: _score_statistic(against, towards, images, d) >= -z)
    low = end(estimate, -1.0,
              lambda d: _score_statistic(against, towards, images, d) <= z)
    return low, high


def _boundary(inside_at: float, outside_at: float, inside: Any, *,
              inside_end: bool = True) -> float:
    """Where ``inside`` turns false between ``inside_at`` (true) and ``outside_at`` (false),
    by bisection: the last inside point found, or (``inside_end`` false) the first outside."""
    for _ in range(_BISECTIONS):
        middle = (inside_at + outside_at) / 2
        if inside(middle):
            inside_at = middle
        else:
            outside_at = middle
    return inside_at if inside_end else outside_at


def score_p_value(against: float, towards: float, images: int, drop: float) -> float:
    """The two-sided p-value of the score statistic at ``drop`` (a fraction): below alpha
    exactly when ``drop`` is outside ``score_interval`` at 1 - alpha."""
    return math.erfc(abs(_score_statistic(against, towards, images, drop)) / math.sqrt(2))


def paired_test(baseline: Any, candidate: Any, *, replicates: int = REPLICATES,
                seed: int = BOOTSTRAP_SEED) -> PairedDrop:
    """The paired drop of ``candidate`` below ``baseline`` (correctness arrays on the same
    images): bootstrapped with the same images, and with the same seeds when their seed
    counts agree, and scored on the seed-averaged discordant images."""
    base, cand = as_correct(baseline), as_correct(candidate)
    if base.shape[2] != cand.shape[2]:
        raise ValueError(f"a paired drop needs the same images ({base.shape[2]} vs "
                         f"{cand.shape[2]})")
    images = base.shape[2]
    against, towards = discordance(base, cand)
    if base.shape == cand.shape and np.array_equal(base, cand):
        # the same answers on every image and seed: the estimate is exactly 0 and the
        # bootstrap the point 0, but the score interval keeps the width the images allow
        return PairedDrop(0.0, 0.0, 0.0, images)
    drop = (float(base.mean()) - float(cand.mean())) * 100
    base_values, cand_values = _replicates([base, cand], shared_seeds=base.shape == cand.shape,
                                           replicates=replicates, seed=seed)
    return PairedDrop(drop, against, towards, images,
                      np.sort((base_values - cand_values) * 100))


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


def significance(low: float, high: float) -> str:
    """``significant`` when the interval of a difference excludes 0, else ``not significant``
    (one interval alone; the summaries' verdicts are ``dse.accuracy.verdicts``'s)."""
    return "significant" if low > 0 or high < 0 else "not significant"


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
