"""The summary's claims: what the front gains, stated on test-split numbers only.

Three kinds, each named after what it measures:

* ``front``: per baseline and cost objective of the study, the largest reduction among the
  confirmed front points whose paired test-accuracy drop below that baseline is within
  ``--max-accuracy-drop`` (by ``--drop-rule``; iso-accuracy without a limit).
* ``odimo``: ODiMO's metric, compute-only latency and energy (what ODiMO's DIANA model
  counts) against each heuristic mapping, at a test drop within the limit (1 pp without one).
* ``eden``: EDEN's metric, the DRAM energy of one mapping at its approximate-DRAM point
  against the same mapping at nominal DRAM, among confirmed points within 1 pp of the
  all-digital baseline's test accuracy (EDEN's "within 1 % of the original DNN"); only
  for mappings that hold data in DRAM (``dram_bytes`` above 0): where no tensor is in DRAM,
  approximate DRAM corrupts nothing and saves only the background power of a DRAM the
  inference does not use (what that costs is the SoC preset's ``memory.idle_dram``), which
  is not what EDEN measures, so such a point gets no EDEN claim.

Accuracy changes are in percentage points (pp) with their 95 % interval, paired on the test
images and seeds; the verdict is ``significant`` when that interval excludes 0, else
``within noise``. Baselines are compared with front points, never with each other. A study
without accuracy has cost claims only; one with accuracy but no confirmation has none.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dse.accuracy import ProbeResult, accuracy_drop_pp, within_limit
from dse.accuracy.defaults import DEFAULT_MAX_ACCURACY_DROP_PP
from dse.accuracy.stats import LEVEL, change_from_drop, verdict
from dse.metrics import BY_COLUMN, DRAM_BYTES, METRICS, NOMINAL_DRAM_ENERGY
from dse.results.confirmation import REFERENCE

EDEN_DROP_PP = 1.0          # EDEN: "within 1 % of the original DNN's accuracy"
ODIMO_DEFAULT_DROP_PP = DEFAULT_MAX_ACCURACY_DROP_PP  # without --max-accuracy-drop
ODIMO_COLUMNS = ("compute_latency_s", "compute_energy_j")


class Pairs:
    """Paired test drops between confirmed trials, each computed once."""

    def __init__(self, results: dict[int, ProbeResult]) -> None:
        self.results = results
        self._drops: dict[tuple[int, int], tuple[float, float, float]] = {}

    def drop(self, baseline: int, trial: int) -> tuple[float, float, float]:
        key = (baseline, trial)
        if key not in self._drops:
            self._drops[key] = accuracy_drop_pp(self.results[baseline], self.results[trial])
        return self._drops[key]


def _bound(drop: tuple[float, float, float], rule: str) -> float:
    return drop[2] if rule == "upper" and math.isfinite(drop[2]) else drop[0]


def _accuracy_fields(drop: tuple[float, float, float], level: float) -> dict[str, Any]:
    change, low, high = change_from_drop(drop)
    return {"level": level, "test_accuracy_change_pp": change,
            "test_accuracy_change_ci_low_pp": low,
            "test_accuracy_change_ci_high_pp": high,
            "verdict": verdict(low, high) if math.isfinite(low) else "no interval"}


def _best(rows: pd.DataFrame, column: str, base_value: float, pairs: Pairs | None,
          baseline: int | None, limit_pp: float, rule: str) -> dict[str, Any] | None:
    """The row of ``rows`` with the lowest ``column`` among those within ``limit_pp`` of
    ``baseline`` (any row without accuracy); its change in % and its accuracy fields."""
    best: tuple[float, float, int, dict[str, Any]] | None = None
    for _, row in rows.iterrows():
        value = float(row[column])
        if not np.isfinite(value):
            continue
        fields: dict[str, Any] = {}
        accuracy_key = 0.0
        if pairs is not None and baseline is not None:
            drop = pairs.drop(baseline, int(row["trial"]))
            if not within_limit(_bound(drop, rule), limit_pp):
                continue
            fields = _accuracy_fields(drop, pairs.results[int(row["trial"])].level)
            accuracy_key = drop[0]
        if best is None or (value, accuracy_key) < best[:2]:
            best = (value, accuracy_key, int(row["trial"]), fields)
    if best is None or not base_value > 0:
        return None
    change = (best[0] / base_value - 1) * 100
    if not change < 0:
        return None  # nothing qualifying beats this baseline
    return {"trial": best[2], "change_percent": change, **best[3]}


def _confirmed(frame: pd.DataFrame, results: dict[int, ProbeResult]) -> pd.Series:
    return frame["trial"].astype(int).isin(list(results))


def front_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *,
                 objectives: list[str], max_drop_pp: float | None,
                 drop_rule: str) -> list[dict[str, Any]]:
    """Per baseline and cost objective: the front's best reduction (see the module)."""
    has_accuracy = "accuracy" in objectives
    done = frame[frame["state"] == "COMPLETE"]
    bases = done[done["is_baseline"]]
    peers = done[done["is_pareto"] & ~done["is_baseline"]]
    pairs = Pairs(results) if has_accuracy else None
    if has_accuracy:
        bases, peers = bases[_confirmed(bases, results)], peers[_confirmed(peers, results)]
    costs = [m for m in METRICS if m.direction == "minimize" and m.name in objectives]
    claims = []
    for _, base in bases.iterrows():
        for metric in costs:
            found = _best(peers, metric.column, float(base[metric.column]), pairs,
                          int(base["trial"]), max_drop_pp or 0.0, drop_rule)
            if found is not None:
                claims.append({"kind": "front", "baseline": base["baseline"],
                               "metric": metric.name, **found})
    return claims


def odimo_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *,
                 max_drop_pp: float | None, drop_rule: str) -> list[dict[str, Any]]:
    """ODiMO's metric against each heuristic mapping (see the module)."""
    done = frame[(frame["state"] == "COMPLETE") & _confirmed(frame, results)]
    bases = done[done["is_baseline"]]
    peers = done[done["is_pareto"] & ~done["is_baseline"]]
    limit = ODIMO_DEFAULT_DROP_PP if max_drop_pp is None else max_drop_pp
    pairs = Pairs(results)
    claims = []
    for _, base in bases.iterrows():
        for column in ODIMO_COLUMNS:
            if column not in frame:
                continue
            found = _best(peers, column, float(base[column]), pairs, int(base["trial"]),
                          limit, drop_rule)
            if found is not None:
                claims.append({"kind": "odimo", "baseline": base["baseline"],
                               "metric": BY_COLUMN[column].name, "limit_pp": limit,
                               **found})
    return claims


def eden_claims(frame: pd.DataFrame, results: dict[int, ProbeResult], *, drop_rule: str
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
    pairs = Pairs(results)
    best: dict[str, Any] | None = None
    for _, row in peers.iterrows():
        nominal, approximate = float(row[NOMINAL_DRAM_ENERGY]), float(row["dram_energy_j"])
        if not (nominal > 0 and np.isfinite(approximate)):
            continue
        if not float(row.get(DRAM_BYTES, np.nan)) > 0:
            continue  # nothing in DRAM: no EDEN claim (the module says why)
        drop = pairs.drop(int(reference["trial"].iloc[0]), int(row["trial"]))
        if not _bound(drop, drop_rule) <= EDEN_DROP_PP:
            continue
        change = (approximate / nominal - 1) * 100
        if best is None or change < best["change_percent"]:
            best = {"kind": "eden", "baseline": "same mapping at nominal DRAM",
                    "metric": "dram_energy", "limit_pp": EDEN_DROP_PP,
                    "trial": int(row["trial"]), "change_percent": change,
                    **_accuracy_fields(drop, pairs.results[int(row["trial"])].level),
                    "accuracy_reference": REFERENCE}
    return [best] if best is not None and best["change_percent"] < 0 else []


def describe(claim: dict[str, Any]) -> str:
    """e.g. '-31.0 % latency at -0.32 pp test accuracy (95 % CI -0.90 to +0.20 pp: within
    noise) vs diana-heuristic (trial 17)'."""
    name = {"odimo": "ODiMO metric: ", "eden": "EDEN metric: "}.get(claim.get("kind", ""), "")
    text = f"{name}{claim['change_percent']:+.1f} % {claim['metric']}"
    accuracy = ""
    if "test_accuracy_change_pp" in claim:
        reference = (f" vs {claim['accuracy_reference']}" if "accuracy_reference" in claim
                     else "")
        accuracy = (f" at {claim['test_accuracy_change_pp']:+.2f} pp test accuracy{reference} "
                    f"({claim.get('level', LEVEL):.0%} CI "
                    f"{claim['test_accuracy_change_ci_low_pp']:+.2f} to "
                    f"{claim['test_accuracy_change_ci_high_pp']:+.2f} pp: {claim['verdict']})")
    against = f" vs {claim['baseline']} (trial {claim['trial']})"
    if "accuracy_reference" in claim:  # EDEN: name what is compared before the accuracy
        return f"{text}{against},{accuracy}"
    return f"{text}{accuracy}{against}"
