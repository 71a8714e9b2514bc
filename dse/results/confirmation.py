"""Test-split confirmations as the study stores them, and what they say (no torch).

``dse confirm`` (and the end of a search) re-probes the front points and the baselines on
the test split, which the search never saw, with a longer fine-tune and more seeds. Each
point's result is one study attribute, written once it is measured (so a stopped
confirmation resumes where it was, and workers confirming at once never overwrite each
other's records):

* ``dse:confirm-settings``: the settings the current confirmations were made with
  (``split``, ``steps``, ``finetune_seeds``, ``error_seeds``, ``seed``);
* ``dse:confirmed:<trial>``: {settings, accuracy, ci_low, ci_high, std, seconds,
  correct (bit-packed per-image correctness)};
* ``dse:confirm-claim:<trial>``: {host, pid, time, token}: a worker is measuring it (claimed
  in one step: ``dse.storage.atomic``).

Only records made with the current settings count. Accuracy changes (negative: worse) are
paired on the test images and seeds with the confirmed all-digital baseline.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna

from dse.accuracy import ProbeResult, accuracy_change_pp, stats
from dse.metrics import TEST_STATS
from dse.results.ledger import BASELINE_ATTR
from dse.results.ledger import CONFIRM_CLAIM_PREFIX as CLAIM_PREFIX
from dse.results.ledger import CONFIRM_SETTINGS_ATTR as SETTINGS_ATTR
from dse.results.ledger import CONFIRMED_PREFIX as RECORD_PREFIX

__all__ = ["CLAIM_PREFIX", "RECORD_PREFIX", "SETTINGS_ATTR"]  # the ledger's keys, re-exported
REFERENCE = "all-digital"  # the baseline accuracy changes are measured against


def record_of(result: ProbeResult, settings: dict[str, Any]) -> dict[str, Any]:
    """A confirmation's study attribute."""
    low, high = result.interval()
    record: dict[str, Any] = {"settings": settings, "accuracy": result.accuracy_mean,
                              "ci_low": low, "ci_high": high, "level": result.level,
                              "std": result.accuracy_std, "seconds": result.seconds}
    if result.correct is not None:
        record["correct"] = stats.pack(result.correct)
    return record


def result_of(record: Any) -> ProbeResult | None:
    """The stored result (None when the record is not one)."""
    if not isinstance(record, dict):
        return None
    correct = stats.unpack(record.get("correct"))
    level = record.get("level", stats.LEVEL)
    if not isinstance(level, float) or not 0 < level < 1:
        level = stats.LEVEL
    if correct is not None:
        return ProbeResult.from_correct(correct, seconds=float(record.get("seconds", 0.0)),
                                        cached=True, level=level)
    values = [record.get(key) for key in ("accuracy", "ci_low", "ci_high")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    mean, low, high = (float(v) for v in values)  # type: ignore[arg-type]
    return ProbeResult(mean, float(record.get("std", math.nan)), (mean,),
                       float(record.get("seconds", 0.0)), True, ci_low=low, ci_high=high,
                       level=level)


def current_settings(study: optuna.Study) -> dict[str, Any] | None:
    return study.user_attrs.get(SETTINGS_ATTR)


def confirmed_results(study: optuna.Study) -> dict[int, ProbeResult]:
    """Trial number -> its confirmation, for records made with the current settings."""
    attrs = study.user_attrs
    settings = attrs.get(SETTINGS_ATTR)
    results = {}
    for key, record in attrs.items():
        if not key.startswith(RECORD_PREFIX) or not isinstance(record, dict):
            continue
        if record.get("settings") != settings:
            continue
        number = key[len(RECORD_PREFIX):]
        result = result_of(record)
        if number.isdigit() and result is not None:
            results[int(number)] = result
    return results


def reference_trial(study: optuna.Study) -> int | None:
    """The all-digital baseline's trial number (None when the study has none)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(BASELINE_ATTR) == REFERENCE:
            return trial.number
    return None


def confirmed_columns(study: optuna.Study) -> dict[int, dict[str, float]]:
    """Trial number -> the TEST_STATS columns of its confirmation (accuracy changes NaN until
    the all-digital baseline is confirmed)."""
    results = confirmed_results(study)
    reference = reference_trial(study)
    base = results.get(reference) if reference is not None else None
    columns = {}
    for number, result in results.items():
        low, high = result.interval()
        change = (accuracy_change_pp(base, result) if base is not None
                  else (math.nan, math.nan, math.nan))
        columns[number] = dict(zip(TEST_STATS, (result.accuracy_mean, low, high, *change)))
    return columns


def validation_to_test_shift(frame: Any) -> dict[str, Any] | None:
    """Mean, spread and count of (test - validation) accuracy over the confirmed front
    points, in percentage points (None when none is confirmed)."""
    front = frame[frame["is_pareto"] & np.isfinite(frame["test_accuracy"].astype(float))
                  & np.isfinite(frame["accuracy"].astype(float))]
    if front.empty:
        return None
    shift = (front["test_accuracy"].astype(float) - front["accuracy"].astype(float)) * 100
    return {"mean_pp": float(shift.mean()), "std_pp": float(shift.std(ddof=0)),
            "min_pp": float(shift.min()), "max_pp": float(shift.max()), "points": len(shift)}
