"""The summary's claims: what the front gains, each point chosen on the validation split
(the search's) and reported on the test split (the confirmation's), never chosen on test.

Three kinds, each named after what it measures:

* ``front``: per baseline and cost objective of the study, the largest reduction among the
  confirmed front points whose validation-accuracy drop below that baseline is within
  ``--max-accuracy-drop`` (by ``--drop-rule``; iso-accuracy without a limit).
* ``odimo``: ODiMO's metric, compute-only latency and energy (what ODiMO's DIANA model
  counts) against each heuristic mapping, at a validation drop within the limit (1 pp
  without one).
* ``eden``: EDEN's metric, the DRAM energy of one mapping at its approximate-DRAM point
  against the same mapping at nominal DRAM, among confirmed points within 1 pp of the
  all-digital baseline's validation accuracy (EDEN's "within 1 % of the original DNN");
  only for mappings that hold data in DRAM (``dram_bytes`` above 0): where no tensor is
  in DRAM, approximate DRAM corrupts nothing and saves only the background power of a
  DRAM the inference does not use (what that costs is the SoC preset's
  ``memory.idle_dram``), which is not what EDEN measures, so such a point gets no EDEN
  claim.

Choosing: the validation drop of a point below a baseline comes from what the search stored
for each trial, its accuracy change against the all-digital baseline paired on the
validation images (``dse.metrics.ACCURACY_CHANGE``): the difference of the two points'
changes (exact, both being paired on the same images), with an interval whose ends add the
two intervals' excursions in quadrature (against all-digital: the point's own interval). The
cheapest point whose validation drop meets the limit is chosen (ties: the smaller drop).

Reporting: the chosen point's test-accuracy change against the baseline (pp, negative:
worse), paired on the test images and seeds, with its interval, and whether it meets the
limit on test too (``test_within_limit``; a point that fails there is still the claim). Its
verdict (``dse.accuracy.verdicts``) comes from two tests, of no change and of equivalence
within ``equivalence_margin_pp``, Holm-adjusted over every test of the summary
(``adjust``). Baselines are compared with front points, never with each other. A study
without accuracy has cost claims only; one with accuracy but no confirmation has none.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dse.accuracy import ProbeResult, accuracy_drop_pp, within_limit
from dse.accuracy import verdicts as tests
from dse.accuracy.defaults import DEFAULT_MAX_ACCURACY_DROP_PP
from dse.accuracy.stats import LEVEL, change_from_drop, paired_test
from dse.metrics import ACCURACY_CHANGE, BY_COLUMN, DRAM_BYTES, METRICS, NOMINAL_DRAM_ENERGY
from dse.results.confirmation import REFERENCE

EDEN_DROP_PP = 1.0          # EDEN: "within 1 % of the original DNN's accuracy"
ODIMO_DEFAULT_DROP_PP = DEFAULT_MAX_ACCURACY_DROP_PP  # without --max-accuracy-drop
ODIMO_COLUMNS = ("compute_latency_s", "compute_energy_j")
SELECTED_ON, REPORTED_ON = "validation", "test"

Drop = tuple[float, float, float]  # (drop, low, high) in pp, positive: worse


def equivalence_margin(margin_pp: float | None, max_drop_pp: float | None) -> float:
    """``--equivalence-margin``, else the accuracy limit, else its default (1 pp)."""
    if margin_pp is not None:
        return float(margin_pp)
    return float(DEFAULT_MAX_ACCURACY_DROP_PP if max_drop_pp is None else max_drop_pp)


class Pairs:
    """Test drops between confirmed trials, each computed once: paired on the per-image
    data when both have it on the same images (``stats.paired_test``), else from the two
    intervals (``accuracy_drop_pp``: records without per-image data)."""

    def __init__(self, results: dict[int, ProbeResult]) -> None:
        self.results = results
        self._tests: dict[tuple[int, int], tests.Drop | None] = {}
        self._drops: dict[tuple[int, int], Drop] = {}

    def drop(self, baseline: int, trial: int) -> Drop:
        """(drop, low, high) in pp at the trial's interval level."""
        self.tested(baseline, trial)
        return self._drops[(baseline, trial)]

    def tested(self, baseline: int, trial: int) -> tests.Drop | None:
        """The drop as its tests take it: paired, else from its interval by the normal
        approximation (``verdicts.IntervalDrop``), None without an interval."""
        key = (baseline, trial)
        if key not in self._tests:
            base, result = self.results[baseline], self.results[trial]
            if (base.correct is not None and result.correct is not None
                    and base.correct.shape[2] == result.correct.shape[2]):
                paired = paired_test(base.correct, result.correct)
                self._tests[key] = paired
                self._drops[key] = (paired.drop_pp, *paired.interval(result.level))
            else:
                drop, low, high = accuracy_drop_pp(base, result)
                self._drops[key] = (drop, low, high)
                self._tests[key] = (tests.IntervalDrop(drop, low, high, result.level)
                                    if math.isfinite(low) and math.isfinite(high) else None)
        return self._tests[key]


def _bound(drop: Drop, rule: str) -> float:
    return drop[2] if rule == "upper" and math.isfinite(drop[2]) else drop[0]


def _number(row: pd.Series, column: str) -> float:
    value = row.get(column, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def validation_drop(base: pd.Series, row: pd.Series) -> Drop:
    """The validation drop of ``row`` below ``base`` (pp) from the changes against
    all-digital the search stored (see the module); from the two accuracies without them
    (no interval: NaN ends); all NaN when either accuracy is unknown."""
    point = [_number(row, column) for column in ACCURACY_CHANGE]
    if base.get("baseline") == REFERENCE and not math.isfinite(_number(base, ACCURACY_CHANGE[0])):
        reference = [0.0, 0.0, 0.0]  # all-digital against itself
    else:
        reference = [_number(base, column) for column in ACCURACY_CHANGE]
    if math.isfinite(point[0]) and math.isfinite(reference[0]):
        drop = reference[0] - point[0]
        up = math.hypot(point[0] - point[1], reference[2] - reference[0])
        down = math.hypot(point[2] - point[0], reference[0] - reference[1])
        return drop, drop - down, drop + up  # NaN ends when either interval is unknown
    accuracy, base_accuracy = _number(row, "accuracy"), _number(base, "accuracy")
    return (base_accuracy - accuracy) * 100, math.nan, math.nan


def _validation_fields(drop: Drop) -> dict[str, Any]:
    change, low, high = change_from_drop(drop)
    return {"validation_accuracy_change_pp": change,
            "validation_accuracy_change_ci_low_pp": low if math.isfinite(low) else None,
            "validation_accuracy_change_ci_high_pp": high if math.isfinite(high) else None}


def same_model(row: pd.Series, base: pd.Series) -> bool:
    """Whether ``row`` is the safe DRAM point of the baseline ``base``: its split with every
    tensor at BER 0 (or none in DRAM), so the same model, whose answers are the baseline's by
    construction on every image of any split."""
    label = row.get("safe_dram_of", "")
    return isinstance(label, str) and label != "" and label == base.get("baseline", "")


def _test_fields(pairs: Pairs, baseline: int, trial: int, limit_pp: float, rule: str,
                 margin_pp: float, *, same: bool = False) -> dict[str, Any]:
    """The chosen point's test-split numbers: its change and interval, whether it meets the
    limit on test, and the unadjusted p-values of its two tests (``adjust`` adds the
    adjusted ones and the verdict). The baseline's own model (``same``) has no change to
    test: its change is 0 and its verdict ``equivalent`` by construction, outside the family."""
    if same:
        return {"level": pairs.results[trial].level, "test_accuracy_change_pp": 0.0,
                "test_accuracy_change_ci_low_pp": 0.0, "test_accuracy_change_ci_high_pp": 0.0,
                "test_within_limit": True, "equivalence_margin_pp": margin_pp,
                "same_model": True, "verdict": tests.EQUIVALENT, "p_value": None,
                "p_equivalence": None}
    drop = pairs.drop(baseline, trial)
    change, low, high = change_from_drop(drop)
    fields: dict[str, Any] = {
        "level": pairs.results[trial].level, "test_accuracy_change_pp": change,
        "test_accuracy_change_ci_low_pp": low, "test_accuracy_change_ci_high_pp": high,
        "test_within_limit": within_limit(_bound(drop, rule), limit_pp),
        "equivalence_margin_pp": margin_pp}
    tested = pairs.tested(baseline, trial)
    if tested is None:
        return {**fields, "verdict": tests.NO_INTERVAL, "p_value": None,
                "p_equivalence": None}
    return {**fields, "p_value": tests.no_change_p(tested),
            "p_equivalence": tests.equivalence_p(tested, margin_pp)}


def _best(rows: pd.DataFrame, column: str, base: pd.Series, pairs: Pairs | None,
          limit_pp: float, rule: str, margin_pp: float) -> dict[str, Any] | None:
    """The row of ``rows`` with the lowest ``column`` among those whose validation drop
    below ``base`` is within ``limit_pp`` (any row without accuracy); its change in % and
    its accuracy fields, validation and test."""
    best: tuple[float, float, int, Drop | None] | None = None
    for _, row in rows.iterrows():
        value = float(row[column])
        if not np.isfinite(value):
            continue
        drop: Drop | None = None
        accuracy_key = 0.0
        if pairs is not None:
            drop = validation_drop(base, row)
            if not within_limit(_bound(drop, rule), limit_pp):
                continue
            accuracy_key = drop[0]
        if best is None or (value, accuracy_key) < best[:2]:
            best = (value, accuracy_key, int(row["trial"]), drop)
    base_value = float(base[column])
    if best is None or not base_value > 0:
        return None
    change = (best[0] / base_value - 1) * 100
    if not change < 0:
        return None  # nothing qualifying beats this baseline
    found: dict[str, Any] = {"trial": best[2], "change_percent": change}
    if pairs is not None and best[3] is not None:
        found.update(_validation_fields(best[3]))
        row = rows[rows["trial"].astype(int) == best[2]].iloc[0]
        found.update(_test_fields(pairs, int(base["trial"]), best[2], limit_pp, rule,
                                  margin_pp, same=same_model(row, base)))
    return found


def _confirmed(frame: pd.DataFrame, results: dict[int, ProbeResult]) -> pd.Series:
    return frame["trial"].astype(int).isin(list(results))


def front_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *,
                 objectives: list[str], max_drop_pp: float | None,
                 drop_rule: str, margin_pp: float | None = None) -> list[dict[str, Any]]:
    """Per baseline and cost objective: the front's best reduction (see the module);
    unadjusted p-values (``adjust``)."""
    has_accuracy = "accuracy" in objectives
    done = frame[frame["state"] == "COMPLETE"]
    bases = done[done["is_baseline"]]
    peers = done[done["is_pareto"] & ~done["is_baseline"]]
    pairs = Pairs(results) if has_accuracy else None
    if has_accuracy:
        bases, peers = bases[_confirmed(bases, results)], peers[_confirmed(peers, results)]
    costs = [m for m in METRICS if m.direction == "minimize" and m.name in objectives]
    margin = equivalence_margin(margin_pp, max_drop_pp)
    claims = []
    for _, base in bases.iterrows():
        for metric in costs:
            found = _best(peers, metric.column, base, pairs, max_drop_pp or 0.0, drop_rule,
                          margin)
            if found is not None:
                claims.append({"kind": "front", "baseline": base["baseline"],
                               "metric": metric.name, **found})
    return claims


def odimo_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *,
                 max_drop_pp: float | None, drop_rule: str,
                 margin_pp: float | None = None) -> list[dict[str, Any]]:
    """ODiMO's metric against each heuristic mapping (see the module)."""
    done = frame[(frame["state"] == "COMPLETE") & _confirmed(frame, results)]
    bases = done[done["is_baseline"]]
    peers = done[done["is_pareto"] & ~done["is_baseline"]]
    limit = ODIMO_DEFAULT_DROP_PP if max_drop_pp is None else max_drop_pp
    margin = equivalence_margin(margin_pp, max_drop_pp)
    pairs = Pairs(results)
    claims = []
    for _, base in bases.iterrows():
        for column in ODIMO_COLUMNS:
            if column not in frame:
                continue
            found = _best(peers, column, base, pairs, limit, drop_rule, margin)
            if found is not None:
                claims.append({"kind": "odimo", "baseline": base["baseline"],
                               "metric": BY_COLUMN[column].name, "limit_pp": limit,
                               **found})
    return claims


def eden_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *, drop_rule: str,
                margin_pp: float | None = None, max_drop_pp: float | None = None
                ) -> list[dict[str, Any]]:
    """EDEN's metric: DRAM energy saved on one mapping by its approximate-DRAM point; a
    point whose mapping has no tensor in DRAM (or whose traffic is unknown) gets none."""
    if NOMINAL_DRAM_ENERGY not in frame:
        return []
    done = frame[(frame["state"] == "COMPLETE") & _confirmed(frame, results)]
    reference = done[done["baseline"] == REFERENCE]
    peers = done[done["is_pareto"] & ~done["is_baseline"]]
    if reference.empty:
        return []
    base = reference.iloc[0]
    pairs = Pairs(results)
    best: tuple[float, int, Drop] | None = None
    for _, row in peers.iterrows():
        nominal, approximate = float(row[NOMINAL_DRAM_ENERGY]), float(row["dram_energy_j"])
        if not (nominal > 0 and np.isfinite(approximate)):
            continue
        if not float(row.get(DRAM_BYTES, np.nan)) > 0:
            continue  # nothing in DRAM: no EDEN claim (the module says why)
        drop = validation_drop(base, row)
        if not within_limit(_bound(drop, drop_rule), EDEN_DROP_PP):
            continue
        change = (approximate / nominal - 1) * 100
        if best is None or change < best[0]:
            best = (change, int(row["trial"]), drop)
    if best is None or not best[0] < 0:
        return []
    margin = equivalence_margin(margin_pp, max_drop_pp)
    return [{"kind": "eden", "baseline": "same mapping at nominal DRAM",
             "metric": "dram_energy", "limit_pp": EDEN_DROP_PP, "trial": best[1],
             "change_percent": best[0], **_validation_fields(best[2]),
             **_test_fields(pairs, int(base["trial"]), best[1], EDEN_DROP_PP, drop_rule,
                            margin),
             "accuracy_reference": REFERENCE}]


def adjust(claims: list[dict[str, Any]], *, level: float = LEVEL) -> int:
    """Holm-adjust every test of ``claims`` as one family (each claim's test of no change
    and its equivalence test) and give each tested claim its verdict, at ``level``'s
    alpha (1 - level); in place. Returns the number of tests."""
    tested = [claim for claim in claims if claim.get("p_value") is not None]
    adjusted = tests.holm([claim["p_value"] for claim in tested]
                          + [claim["p_equivalence"] for claim in tested])
    count = len(adjusted)
    for claim, p, p_equivalence in zip(tested, adjusted, adjusted[len(tested):]):
        claim.update(p_adjusted=p, p_equivalence_adjusted=p_equivalence, holm_tests=count,
                     verdict=tests.verdict(-claim["test_accuracy_change_pp"], p,
                                           p_equivalence, 1 - level))
    return count


def verdict_words(claim: dict[str, Any]) -> str:
    """e.g. 'inconclusive, Holm-adjusted over 6 tests'; 'equivalent within ±1 pp: no
    measurable accuracy cost, ...'."""
    found = claim.get("verdict", "not tested yet")  # ``adjust`` gives it
    if claim.get("same_model"):
        return (f"{tests.EQUIVALENT}: the same model as the baseline, every tensor at BER 0: "
                f"{tests.NO_COST} by construction, not tested")
    if "holm_tests" not in claim:
        return found
    if found == tests.EQUIVALENT:
        found = (f"equivalent within ±{claim['equivalence_margin_pp']:g} pp: "
                 f"{tests.NO_COST} at that margin")
    return f"{found}, Holm-adjusted over {claim['holm_tests']} tests"


def describe(claim: dict[str, Any]) -> str:
    """e.g. '-31.0 % latency at -0.32 pp test accuracy (95 % CI -0.90 to +0.20 pp:
    inconclusive, Holm-adjusted over 6 tests) vs diana-heuristic (trial 17), chosen at
    -0.10 pp validation accuracy'."""
    name = {"odimo": "ODiMO metric: ", "eden": "EDEN metric: "}.get(claim.get("kind", ""), "")
    text = f"{name}{claim['change_percent']:+.1f} % {claim['metric']}"
    accuracy = chosen = ""
    if "test_accuracy_change_pp" in claim:
        reference = (f" vs {claim['accuracy_reference']}" if "accuracy_reference" in claim
                     else "")
        accuracy = (f" at {claim['test_accuracy_change_pp']:+.2f} pp test accuracy{reference} "
                    f"({claim.get('level', LEVEL):.0%} CI "
                    f"{claim['test_accuracy_change_ci_low_pp']:+.2f} to "
                    f"{claim['test_accuracy_change_ci_high_pp']:+.2f} pp: "
                    f"{verdict_words(claim)})")
        if not claim.get("test_within_limit", True):
            accuracy += ", over the accuracy limit on test"
    if "validation_accuracy_change_pp" in claim:
        chosen = (f", chosen at {claim['validation_accuracy_change_pp']:+.2f} pp validation "
                  "accuracy")
    against = f" vs {claim['baseline']} (trial {claim['trial']})"
    if "accuracy_reference" in claim:  # EDEN: name what is compared before the accuracy
        return f"{text}{against},{accuracy}{chosen}"
    return f"{text}{accuracy}{against}{chosen}"
