"""Turn a study into tables: trials.csv, pareto.csv and summary.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from dse.metrics import COLUMNS as METRICS
from dse.metrics import METRICS as REGISTRY
from dse.metrics import objective_columns
from dse.pareto import pareto_mask
from dse.results.files import write_csv, write_json
from dse.results.ledger import (
    BASELINE_ATTR,
    ENGINE_ATTR,
    METRICS_ATTR,
    TEST_ACCURACY_ATTR,
    constraints_of,
    feasible,
    metrics_of,
    objectives_of,
    worker_label,
)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: metrics with units in column names, flags, then parameters."""
    test_accuracy = study.user_attrs.get(TEST_ACCURACY_ATTR, {})
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue  # enqueued, not run yet
        attrs = {**trial.user_attrs, **trial.user_attrs.get(METRICS_ATTR, {})}
        constraints = constraints_of(trial)
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
        row.update({metric: attrs.get(metric, np.nan) for metric in METRICS})
        row["accuracy_std"] = attrs.get("accuracy_std", np.nan)
        row["test_accuracy"] = test_accuracy.get(str(trial.number), np.nan)
        row["is_baseline"] = BASELINE_ATTR in attrs
        row["baseline"] = attrs.get(BASELINE_ATTR, "")
        row["engine"] = attrs.get(ENGINE_ATTR, "optuna")
        row["probed"] = attrs.get("probed", False)
        row["feasible"] = feasible(trial)
        row.update({f"constraint:{key}": value for key, value in constraints.items()})
        row["worker"] = worker_label(trial)
        row["cost_seconds"] = attrs.get("cost_seconds", np.nan)
        row["probe_seconds"] = attrs.get("probe_seconds", np.nan)
        row.update(trial.params)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:  # unknown values (None: e.g. the accuracy of an unprobed trial): NaN
        frame[list(METRICS)] = frame[list(METRICS)].astype(float)
    if frame.empty:
        return pd.DataFrame(columns=["trial", "state", *METRICS, "is_baseline", "baseline",
                                     "is_pareto"])
    frame["is_pareto"] = front_mask(frame, objectives_of(study))
    return frame


def front_mask(frame: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Pareto mask over complete, feasible trials (others are never on the front)."""
    columns, directions = objective_columns(objectives)
    values = frame[columns].to_numpy(dtype=float, copy=True)
    eligible = (frame["state"] == "COMPLETE").to_numpy() & frame["feasible"].to_numpy(bool)
    values[~eligible] = np.nan
    return pareto_mask(values, directions)


def front_trials(trials: list[optuna.trial.FrozenTrial], objectives: list[str]
                 ) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front of complete, feasible ``trials`` (as ``front_mask``, without a frame)."""
    columns, directions = objective_columns(objectives)
    values = np.full((len(trials), len(columns)), np.nan)
    for row, trial in enumerate(trials):
        if not feasible(trial):
            continue
        metrics = metrics_of(trial)
        values[row] = [metrics.get(column, np.nan) for column in columns]
    return [trial for trial, on_front in zip(trials, pareto_mask(values, directions))
            if on_front]


def improvements(frame: pd.DataFrame, max_drop_pp: float | None,
                 objectives: list[str] | None = None) -> list[dict[str, Any]]:
    """Per baseline and per cost objective of the study (all of them by default): the
    largest reduction among front points whose accuracy is within ``max_drop_pp`` of the
    baseline's (iso-accuracy, as ODiMO reports); among equal reductions, the most accurate
    point. A baseline whose accuracy is unknown (not probed: over a budget) is compared
    only in studies without accuracy."""
    front = frame[frame["is_pareto"]]
    results = []
    has_accuracy = frame["accuracy"].notna().any()
    tolerance = (max_drop_pp or 0.0) / 100
    costs = [(m.name, m.column) for m in REGISTRY
             if m.direction == "minimize" and m.column in frame
             and (objectives is None or m.name in objectives)]
    for _, base in frame[frame["is_baseline"] & (frame["state"] == "COMPLETE")].iterrows():
        if has_accuracy and not np.isfinite(base["accuracy"]):
            continue
        peers = front
        if has_accuracy:
            peers = front[front["accuracy"] >= base["accuracy"] - tolerance]
        for metric, column in costs:
            if peers.empty or not base[column] > 0:
                continue
            order = [column, "accuracy"] if has_accuracy else [column]
            best = peers.sort_values(order, ascending=[True, False][:len(order)]).iloc[0]
            change = (best[column] / base[column] - 1) * 100
            if not change < 0:
                continue  # nothing on the front beats this baseline at its accuracy
            accuracy_change = ((best["accuracy"] - base["accuracy"]) * 100
                               if has_accuracy else float("nan"))
            results.append({"baseline": base["baseline"], "metric": metric,
                            "change_percent": change, "accuracy_change_pp": accuracy_change,
                            "trial": int(best["trial"])})
    return results


def describe(improvement: dict[str, Any]) -> str:
    """e.g. '-31.0 % latency at -0.32 % accuracy vs diana-heuristic (trial 17)'."""
    text = f"{improvement['change_percent']:+.1f} % {improvement['metric']}"
    if np.isfinite(improvement["accuracy_change_pp"]):
        text += f" at {improvement['accuracy_change_pp']:+.2f} % accuracy"
    return f"{text} vs {improvement['baseline']} (trial {improvement['trial']})"


def write_tables(study: optuna.Study, out_dir: Path, *, max_drop_pp: float | None,
                 frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write trials.csv, pareto.csv and summary.json; return the summary. ``frame`` is the
    study's ``trials_frame`` when the caller has built it already."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study) if frame is None else frame
    write_csv(out_dir / "trials.csv", frame)
    front = frame[frame["is_pareto"]] if not frame.empty else frame
    write_csv(out_dir / "pareto.csv", front.drop(columns=["is_pareto"], errors="ignore"))
    found = (improvements(frame, max_drop_pp, objectives_of(study) or None)
             if not frame.empty else [])
    summary = {
        "study": study.study_name,
        "objectives": objectives_of(study),
        "trials": {state: int(count) for state, count in frame["state"].value_counts().items()},
        "front": _records(front),
        "baselines": (_records(frame[frame["is_baseline"] & (frame["state"] == "COMPLETE")])
                      if not frame.empty else []),
        "improvements": [{**item, "text": describe(item)} for item in found],
    }
    if front.empty:
        summary["front_note"] = empty_front_reason(frame)
    write_json(out_dir / "summary.json", summary)
    return summary


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    keep = ["trial", "baseline", *METRICS, "accuracy_std", "test_accuracy", "feasible"]
    subset = frame[[c for c in keep if c in frame.columns]]
    return json.loads(subset.to_json(orient="records"))


def empty_front_reason(frame: pd.DataFrame) -> str:
    """Why a study has no front: no complete trial, or which constraints every complete
    trial breaks."""
    done = frame[frame["state"] == "COMPLETE"] if not frame.empty else frame
    if done.empty:
        return "no trial has completed yet"
    broken = {column.split(":", 1)[1]: int((done[column] > 0).sum())
              for column in done.columns if column.startswith("constraint:")}
    named = ", ".join(f"{name} by {count}" for name, count in broken.items() if count)
    return (f"none of the {len(done)} complete trials meets every constraint"
            + (f" ({named})" if named else ""))
