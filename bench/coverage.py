"""Coverage of dse's accuracy intervals, by simulation with a known truth (numpy only).

dse's intervals (``dse/accuracy/stats.py``) claim 95 % coverage of the accuracy, and of the
paired accuracy drop, that a model would have on the images the split is drawn from and over
the randomness of fine-tuning and of the DRAM error masks. This script draws synthetic
per-image correctness whose expectation is known exactly and counts how often the intervals
contain it.

The generative process of one replication (``simulate``):

* **images**: each of ``images`` images is, for the pair (baseline, candidate), one of
  right/right, right/wrong (a discordant image against the candidate, probability
  ``d_minus``), wrong/right (``d_plus``) or wrong/wrong; the baseline is right with
  probability ``baseline_accuracy``. The expected number of discordant images is
  ``images * (d_minus + d_plus)``.
* **fine-tune seeds**: for each seed, each model re-draws the answer on a share
  ``finetune_redraw`` of the images (chosen at random) from its own accuracy: answers change
  from seed to seed, the expected accuracy does not.
* **error seeds**: for each, the candidate re-draws a share ``error_redraw`` of its answers
  the same way (the baseline runs at nominal DRAM: the same answers under every error seed).

A re-draw keeps each model's expected accuracy, so the true drop is exactly
``(d_minus - d_plus) * 100`` pp and the candidate's true accuracy ``baseline_accuracy -
d_minus + d_plus``: the truth is the expectation over images *and* seeds, which is what the
intervals are meant to cover (``stats.py``: "the split is a finite sample of images").

For each regime, ``replications`` draws each give dse's paired test (``paired_test``: the
union of the seed+image bootstrap and the corrected score interval on the discordant images)
and the candidate's accuracy interval (``accuracy_interval``); the table reports the union's
coverage with its Monte-Carlo standard error, the share of draws whose truth lies above its
upper end (a one-sided 97.5 % bound allows 2.5 %), the coverage of each of its two parts
alone, the share of ``significant`` verdicts, the share with ``p_value(0) < 0.05`` (the
type-I error where the true drop is 0; by duality the same draws as ``significant``), and,
for comparison, the share of draws in which an exact McNemar test rejects at 5 %: the test on
the discordant images of one seed pair, their counts each way the mean over the seed pairs
(for 4 images wrong in every seed: p = 0.125). It ignores the seeds' own
variation, so it is a reference for the no-noise rows, not a method. A summary line names the
worst rows. A second table gives how often ``--drop-rule mean`` and ``--drop-rule upper`` (a
one-sided 97.5 % bound) admit a candidate whose true drop is at, below or just above a 1 pp
limit.

Run: python bench/coverage.py [--quick] [--replications N] [--bootstrap 400] [--seed 1]
     [--exact]: the full grid (154 coverage and 30 admission regimes, 300 replications each)
     took 35 minutes (2086 s) on the 2-core development machine shared with other jobs (load
     6-7), --quick (8 regimes, 100 replications) 3 s, --exact (the score interval's exact
     one-seed coverage) 38 s
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dse.accuracy.stats import (  # noqa: E402
    accuracy_interval,
    paired_test,
    score_interval,
    significance,
    wilson,
)

LIMIT_PP = 1.0                      # the accuracy-drop limit of the admission table
LIMIT_TOLERANCE_PP = 1e-9           # as dse.accuracy.LIMIT_TOLERANCE_PP
NEAR_LIMIT_PP = (1.1, 1.25, 1.5)    # true drops just above the limit
BELOW_LIMIT_PP = (0.5, 1.0)         # and, for the price of each rule, at and below it
DIGITS_IMAGES, DIGITS_ACCURACY = 269, 0.93   # digits' validation split; 19 images wrong,
                                             # room for 15 the candidate gets right
CIFAR_IMAGES, CIFAR_ACCURACY = 1000, 0.90
SEED_NOISE = (0.075, 0.05)          # re-draw shares: 0.075 gives a fine-tune standard
                                    # deviation of about 0.4 pp on digits (stats.py)


@dataclass(frozen=True)
class Regime:
    """One row of the grid: the generative process of ``simulate``."""
    images: int
    baseline_accuracy: float
    d_minus: float           # P(baseline right, candidate wrong) per image
    d_plus: float            # P(baseline wrong, candidate right) per image
    finetune_seeds: int
    error_seeds: int
    finetune_redraw: float   # share of answers each fine-tune seed re-draws
    error_redraw: float      # share of the candidate's answers each error seed re-draws

    @property
    def true_drop_pp(self) -> float:
        return (self.d_minus - self.d_plus) * 100

    @property
    def candidate_accuracy(self) -> float:
        return self.baseline_accuracy - self.d_minus + self.d_plus

    @property
    def discordant_images(self) -> float:
        """The expected number of discordant images."""
        return self.images * (self.d_minus + self.d_plus)


def regime(images: int, accuracy: float, *, against: float, towards: float = 0.0,
           seeds: tuple[int, int] = (1, 1), noise: tuple[float, float] = (0.0, 0.0)
           ) -> Regime:
    """A regime by its expected discordant images: ``against`` the candidate and
    ``towards`` it."""
    if against > accuracy * images or towards > (1 - accuracy) * images:
        raise ValueError(f"{against} / {towards} discordant images do not fit {images} "
                         f"images at accuracy {accuracy}")
    return Regime(images, accuracy, against / images, towards / images, seeds[0], seeds[1],
                  noise[0], noise[1])


def simulate(spec: Regime, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, candidate) correctness, each of shape (finetune_seeds, error_seeds,
    images)."""
    n, f, e = spec.images, spec.finetune_seeds, spec.error_seeds
    p_right_right = spec.baseline_accuracy - spec.d_minus
    cells = rng.choice(4, size=n, p=[p_right_right, spec.d_minus, spec.d_plus,
                                      1 - p_right_right - spec.d_minus - spec.d_plus])
    base_latent = (cells == 0) | (cells == 1)
    cand_latent = (cells == 0) | (cells == 2)
    base = _redraw(rng, np.broadcast_to(base_latent, (f, 1, n)), spec.finetune_redraw,
                   spec.baseline_accuracy)
    cand = _redraw(rng, np.broadcast_to(cand_latent, (f, 1, n)), spec.finetune_redraw,
                   spec.candidate_accuracy)
    cand = _redraw(rng, np.broadcast_to(cand, (f, e, n)), spec.error_redraw,
                   spec.candidate_accuracy)
    return np.broadcast_to(base, (f, e, n)).copy(), cand


def _redraw(rng: np.random.Generator, answers: np.ndarray, share: float, accuracy: float
            ) -> np.ndarray:
    """``answers`` with a share of entries re-drawn from Bernoulli(accuracy)."""
    if share == 0:
        return answers.copy()
    chosen = rng.random(answers.shape) < share
    fresh = rng.random(answers.shape) < accuracy
    return np.where(chosen, fresh, answers)


def mcnemar_p(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """Exact two-sided McNemar p-value on the discordant images pooled per seed pair: the
    mean over seed pairs of the images each model gets right and the other wrong, rounded
    (4 images against the candidate in every seed: p = 0.125)."""
    against = int(round(float((baseline & ~candidate).sum(axis=2).mean())))
    towards = int(round(float((~baseline & candidate).sum(axis=2).mean())))
    total = against + towards
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(against, towards) + 1)) / 2 ** total
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Outcome:
    """Shares over the replications of one regime (fractions)."""
    replications: int
    drop_covered: float
    significant: float
    above_upper: float        # the truth above the interval's upper end (one tail)
    p_rejects: float          # paired_test's p_value(0) < 0.05
    bootstrap_covered: float  # the union's two parts alone
    score_covered: float
    mcnemar_rejects: float
    accuracy_covered: float
    admitted_mean: float
    admitted_upper: float
    mean_drop_pp: float       # the mean of the drawn drops (checks the truth)
    drop_sd_pp: float

    def standard_error(self, share: float) -> float:
        return math.sqrt(share * (1 - share) / self.replications)


def measure(spec: Regime, replications: int, *, bootstrap: int, seed: int) -> Outcome:
    """Run ``replications`` draws of ``spec`` through dse's intervals."""
    rng = np.random.default_rng(seed)
    truth, truth_accuracy = spec.true_drop_pp, spec.candidate_accuracy
    rows = []
    for _ in range(replications):
        base, cand = simulate(spec, rng)
        test = paired_test(base, cand, replicates=bootstrap)
        drop, (low, high) = test.drop_pp, test.interval()
        boot_low, boot_high = test.bootstrap_interval()
        score_low, score_high = (end * 100 for end in score_interval(
            test.against, test.towards, test.images))
        acc_low, acc_high = accuracy_interval(cand, replicates=bootstrap)
        rows.append((drop, low <= truth <= high, significance(low, high) == "significant",
                     truth > high, test.p_value(0.0) < 0.05,
                     boot_low <= truth <= boot_high, score_low <= truth <= score_high,
                     mcnemar_p(base, cand) < 0.05, acc_low <= truth_accuracy <= acc_high,
                     drop - LIMIT_PP <= LIMIT_TOLERANCE_PP,
                     high - LIMIT_PP <= LIMIT_TOLERANCE_PP))
    table = np.array(rows, dtype=float)
    (covered, significant, above, p_rejects, boot_covered, score_covered, rejects,
     accuracy_covered, by_mean, by_upper) = (float(share) for share in table[:, 1:].mean(axis=0))
    return Outcome(replications, covered, significant, above, p_rejects, boot_covered,
                   score_covered, rejects, accuracy_covered, by_mean, by_upper,
                   float(table[:, 0].mean()), float(table[:, 0].std(ddof=1)))


def exact_score_coverage(images: int, against: float, towards: float,
                         intervals: np.ndarray) -> tuple[float, float, float]:
    """(coverage, truth above the upper end, truth below the lower end) of the score interval
    on one seed's discordant counts, summed exactly over the trinomial (no simulation
    error): P(against) = ``against`` / images, P(towards) likewise; ``intervals[b, c]`` is
    the interval of b images against and c towards (counts beyond its size are dropped:
    below 1e-12 for at most 30 expected)."""
    size = intervals.shape[0]
    b, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    pa, pt = against / images, towards / images
    log = (math.lgamma(images + 1) - _lgamma(b + 1) - _lgamma(c + 1)
           - _lgamma(np.maximum(images - b - c, 0) + 1)
           + (images - b - c) * math.log(1 - pa - pt))
    log = log + (b * math.log(pa) if pa > 0 else np.where(b > 0, -np.inf, 0.0))
    log = log + (c * math.log(pt) if pt > 0 else np.where(c > 0, -np.inf, 0.0))
    weight = np.where(b + c <= images, np.exp(log), 0.0)
    truth = pa - pt
    above = float((weight * (truth > intervals[..., 1] + 1e-12)).sum())
    below = float((weight * (truth < intervals[..., 0] - 1e-12)).sum())
    return 1 - above - below, above, below


def _lgamma(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.lgamma)(values.astype(float))


def score_intervals(images: int, size: int = 90) -> np.ndarray:
    """(size, size, 2): the 95 % score interval (fractions) of b against and c towards."""
    return np.array([[score_interval(b, c, images) for c in range(size)]
                     for b in range(size)])


def exact_table() -> str:
    """The score interval's exact coverage on one seed, over a fine grid of expected
    discordant images (0.5-30 against, 0-15 towards, steps of 0.5), and a few rows."""
    lines = ["| images | expected discordant (against / towards) | coverage % "
             "| truth above upper end % | truth below lower end % |", "|" + "---|" * 5]
    notes = []
    for images in (DIGITS_IMAGES, CIFAR_IMAGES):
        intervals = score_intervals(images)
        grid = [(a / 2, t / 2) for a in range(0, 61) for t in range(0, 31)
                if 0 < a + t and a / 2 + t / 2 <= 45]
        rows = {key: exact_score_coverage(images, *key, intervals) for key in grid}
        for key in [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (30, 0), (1, 1), (4, 4), (15, 15)]:
            cover, above, below = rows[key]
            lines.append(f"| {images} | {key[0]:g} / {key[1]:g} | {cover * 100:.2f} | "
                         f"{above * 100:.2f} | {below * 100:.2f} |")
        least = min(rows, key=lambda key: rows[key][0])
        high = max(rows, key=lambda key: rows[key][1])
        low = max(rows, key=lambda key: rows[key][2])
        notes.append(f"{images} images, {len(grid)} truths: least coverage "
                     f"{rows[least][0] * 100:.2f} % at {least[0]:g} / {least[1]:g}; most above "
                     f"the upper end {rows[high][1] * 100:.2f} % at {high[0]:g} / {high[1]:g};"
                     f" most below the lower end {rows[low][2] * 100:.2f} % at "
                     f"{low[0]:g} / {low[1]:g}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def wilson_coverage(images: int, accuracy: float, replications: int, seed: int) -> float:
    """The share of Wilson intervals (images alone, one seed) that contain ``accuracy``."""
    rng = np.random.default_rng(seed)
    right = rng.binomial(images, accuracy, size=replications)
    return float(np.mean([low <= accuracy <= high
                          for low, high in (wilson(k, images) for k in right)]))


# ---- grids --------------------------------------------------------------------------------

def coverage_grid(quick: bool) -> list[Regime]:
    """Regimes of the coverage table: no effect (discordant images split evenly) and an
    effect (all of them against the candidate), without and with seed noise."""
    splits = [(DIGITS_IMAGES, DIGITS_ACCURACY)] if quick else [
        (DIGITS_IMAGES, DIGITS_ACCURACY), (CIFAR_IMAGES, CIFAR_ACCURACY)]
    discordant = (4,) if quick else (1, 2, 4, 8, 16, 30)
    seed_counts = [(2, 3)] if quick else [(1, 1), (2, 3), (1, 5), (5, 1), (5, 5)]
    grid = []
    for images, accuracy in splits:
        # without seed noise every seed gives the same answers: one seed count says it all
        settings = [((2, 3), (0.0, 0.0))] + [(seeds, SEED_NOISE) for seeds in seed_counts]
        for seeds, noise in settings:
            if noise != (0.0, 0.0):
                grid.append(regime(images, accuracy, against=0, seeds=seeds, noise=noise))
            for k in discordant:
                grid.append(regime(images, accuracy, against=k / 2, towards=k / 2,
                                   seeds=seeds, noise=noise))
                grid.append(regime(images, accuracy, against=k, seeds=seeds, noise=noise))
    return grid


def admission_grid(quick: bool) -> list[Regime]:
    """True drops at, below and just above ``LIMIT_PP``, all discordance against the
    candidate."""
    seed_counts = [(2, 3)] if quick else [(1, 1), (2, 3), (5, 5)]
    splits = [(DIGITS_IMAGES, DIGITS_ACCURACY)] if quick else [
        (DIGITS_IMAGES, DIGITS_ACCURACY), (CIFAR_IMAGES, CIFAR_ACCURACY)]
    drops = NEAR_LIMIT_PP if quick else BELOW_LIMIT_PP + NEAR_LIMIT_PP
    return [regime(images, accuracy, against=drop / 100 * images, seeds=seeds,
                   noise=SEED_NOISE)
            for images, accuracy in splits for seeds in seed_counts for drop in drops]


# ---- tables -------------------------------------------------------------------------------

def _share(outcome: Outcome, share: float) -> str:
    return f"{share * 100:.1f} ± {outcome.standard_error(share) * 100:.1f}"


def _describe(spec: Regime) -> list[str]:
    noise = "yes" if spec.finetune_redraw or spec.error_redraw else "no"
    return [str(spec.images), f"{spec.d_minus * spec.images:g} / {spec.d_plus * spec.images:g}",
            f"{spec.true_drop_pp:.2f}", f"{spec.finetune_seeds}x{spec.error_seeds}", noise]


def coverage_table(results: list[tuple[Regime, Outcome]]) -> str:
    lines = ["| images | discordant (against / towards) | true drop pp | seeds | seed noise "
             "| coverage % | truth above upper end % | bootstrap alone % | score alone % "
             "| `significant` % | p(0) < 0.05 % | McNemar p < 0.05 % "
             "| accuracy coverage % |", "|" + "---|" * 13]
    for spec, out in results:
        cells = _describe(spec) + [_share(out, out.drop_covered),
                                   f"{out.above_upper * 100:.1f}",
                                   f"{out.bootstrap_covered * 100:.1f}",
                                   f"{out.score_covered * 100:.1f}",
                                   f"{out.significant * 100:.1f}",
                                   f"{out.p_rejects * 100:.1f}",
                                   f"{out.mcnemar_rejects * 100:.1f}",
                                   _share(out, out.accuracy_covered)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(results: list[tuple[Regime, Outcome]]) -> str:
    """The worst rows: least coverage, most misses above the upper end, and the type-I
    error of p_value(0) where the true drop is 0."""
    worst = min(results, key=lambda row: row[1].drop_covered)
    above = max(results, key=lambda row: row[1].above_upper)
    nulls = [row for row in results if row[0].true_drop_pp == 0]
    lines = [f"least coverage {_share(worst[1], worst[1].drop_covered)} % "
             f"({', '.join(_describe(worst[0]))}); most above the upper end "
             f"{above[1].above_upper * 100:.1f} % ({', '.join(_describe(above[0]))})"]
    if nulls:
        size = max(nulls, key=lambda row: row[1].p_rejects)
        lines.append(f"type-I error of p_value(0) < 0.05 at a true drop of 0: at most "
                     f"{_share(size[1], size[1].p_rejects)} % ({', '.join(_describe(size[0]))})"
                     f", {sum(row[1].p_rejects for row in nulls) / len(nulls) * 100:.1f} % "
                     f"on average over {len(nulls)} rows")
    return "\n".join(lines)


def admission_table(results: list[tuple[Regime, Outcome]]) -> str:
    lines = [f"| images | true drop pp (limit {LIMIT_PP:g} pp) | seeds | admitted by `mean` % "
             f"| admitted by `upper` (one-sided 97.5 % bound) % |", "|" + "---|" * 5]
    for spec, out in results:
        lines.append(f"| {spec.images} | {spec.true_drop_pp:.2f} | {spec.finetune_seeds}x"
                     f"{spec.error_seeds} | {_share(out, out.admitted_mean)} | "
                     f"{_share(out, out.admitted_upper)} |")
    return "\n".join(lines)


def bootstrap_table(replications: int, bootstrap: int, seed: int) -> str:
    """Paired coverage with ``bootstrap`` replicates against dse's 2000, on the same draws."""
    specs = [regime(DIGITS_IMAGES, DIGITS_ACCURACY, against=4, seeds=(2, 3)),
             regime(DIGITS_IMAGES, DIGITS_ACCURACY, against=8, seeds=(2, 3), noise=SEED_NOISE),
             regime(CIFAR_IMAGES, CIFAR_ACCURACY, against=8, towards=8, seeds=(1, 1),
                    noise=SEED_NOISE)]
    lines = [f"| images | discordant (against / towards) | true drop pp | seeds | seed noise "
             f"| coverage %, {bootstrap} replicates | coverage %, 2000 replicates |",
             "|" + "---|" * 7]
    for spec in specs:
        few, many = (measure(spec, replications, bootstrap=count, seed=seed)
                     for count in (bootstrap, 2000))
        lines.append("| " + " | ".join(_describe(spec) + [_share(few, few.drop_covered),
                                                          _share(many, many.drop_covered)])
                     + " |")
    return "\n".join(lines)


def issue_example(extra_wrong: int) -> str:
    """Few images differ: 269 images, 2 x 3 seeds, the candidate wrong on ``extra_wrong``
    images in every seed, nothing else differing."""
    base = np.ones((2, 3, DIGITS_IMAGES), dtype=bool)
    base[..., :8] = False
    cand = base.copy()
    cand[..., 8:8 + extra_wrong] = False
    test = paired_test(base, cand)
    low, high = test.interval()
    boot_low, boot_high = test.bootstrap_interval()
    return (f"| {extra_wrong} | {test.drop_pp:.2f} [{low:.2f}, {high:.2f}] | "
            f"[{boot_low:.2f}, {boot_high:.2f}] | {significance(low, high)} | "
            f"{test.p_value():.4f} | {mcnemar_p(base, cand):.4f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid (seconds)")
    parser.add_argument("--replications", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=400,
                        help="bootstrap replicates per interval (dse uses 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--exact", action="store_true",
                        help="only the score interval's exact coverage on one seed (seconds)")
    args = parser.parse_args(argv)
    if args.exact:
        print("Exact coverage of the score interval on one seed's discordant counts "
              "(95 %):\n")
        print(exact_table())
        return
    replications = args.replications or (100 if args.quick else 300)
    start = time.perf_counter()
    print("Exact cases (269 images, 2x3 seeds, candidate wrong on k extra images in every "
          "seed; dse's 2000 replicates):\n")
    print("| k | drop pp [95 % interval] | bootstrap alone | significance | p_value(0) "
          "| exact McNemar p |\n|---|---|---|---|---|---|")
    for extra in (0, 3, 4, 5, 6):
        print(issue_example(extra))
    print(f"\nCoverage ({replications} replications per row, {args.bootstrap} bootstrap "
          f"replicates; ± one Monte-Carlo standard error):\n")
    results = [(spec, measure(spec, replications, bootstrap=args.bootstrap,
                              seed=args.seed + i))
               for i, spec in enumerate(coverage_grid(args.quick))]
    print(coverage_table(results))
    print("\n" + summary(results))
    print(f"\nAdmission under a {LIMIT_PP:g} pp limit (seed noise on):\n")
    print(admission_table([(spec, measure(spec, replications, bootstrap=args.bootstrap,
                                          seed=args.seed + 1000 + i))
                           for i, spec in enumerate(admission_grid(args.quick))]))
    if not args.quick:
        print(f"\nBootstrap replicates (the same {replications} draws per row):\n")
        print(bootstrap_table(replications, args.bootstrap, args.seed + 2000))
    print(f"\nRun time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
