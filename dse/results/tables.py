"""Turn a study into tables: trials.csv, pareto.csv and summary.json."""
from __future__ import annotations

import functools
import json
import math
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from dse import pareto
from dse.accuracy.stats import LEVEL, normal_quantile
from dse.metrics import (
    ACCURACY_CHANGE,
    ACCURACY_STATS,
    DRAM_BYTES,
    NOMINAL_DRAM_ENERGY,
    TEST_STATS,
    objective_columns,
    with_accuracy_change,
)
from dse.metrics import COLUMNS as METRICS
from dse.pareto import pareto_mask
from dse.results.claims import (
    REPORTED_ON,
    SELECTED_ON,
    adjust,
    describe,
    eden_claims,
    equivalence_margin,
    front_claims,
    odimo_claims,
)
from dse.results.confirmation import (
    confirmed_columns,
    confirmed_results,
    current_settings,
    validation_to_test_shift,
)
from dse.results.files import write_csv, write_json
from dse.results.headline import headline, next_commands
from dse.results.ledger import (
    BASELINE_ATTR,
    CONFIG_ATTR,
    ENGINE_ATTR,
    ENGINE_COLUMNS_ATTR,
    ENGINE_LABEL_ATTR,
    LEGACY_ENGINE,
    METRICS_ATTR,
    ODIMO_LAMBDA_ATTR,
    PROBE_SETTINGS_ATTR,
    SAFE_DRAM_ATTR,
    SAFE_POINT_ATTR,
    TEST_ACCURACY_ATTR,
    constraints_of,
    feasible,
    metrics_of,
    objectives_of,
    stored_table,
    worker_label,
)
from dse.space import absolute_points
from hw_models.dram import DEFAULT_BER_QUANTILE, DEFAULT_VENDOR, DramDevice, load_dram
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.soc import Soc, load_soc
from hw_models.traffic import layer_traffic


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: metrics with units in column names, flags, then parameters."""
    legacy_test = study.user_attrs.get(TEST_ACCURACY_ATTR, {})
    confirmed = confirmed_columns(study)
    device = dram_device(study)
    floor_v = vdd_floor_v(study, device)
    table = stored_table(study)
    channels = {} if table is None else dict(zip(table.name, (int(c) for c in table.cout)))
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue  # enqueued, not run yet
        attrs = {**trial.user_attrs,
                 **with_accuracy_change(trial.user_attrs.get(METRICS_ATTR, {}))}
        constraints = constraints_of(trial)
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
        row.update({metric: attrs.get(metric, np.nan) for metric in METRICS})
        row[NOMINAL_DRAM_ENERGY] = attrs.get(NOMINAL_DRAM_ENERGY, np.nan)
        row[DRAM_BYTES] = attrs.get(DRAM_BYTES, np.nan)
        if not np.isfinite(row[DRAM_BYTES]) and table is not None:
            row[DRAM_BYTES] = _dram_bytes(study, table, trial.params)  # earlier dse
        row.update({column: attrs.get(column, np.nan) for column in ACCURACY_STATS})
        row.update(confirmed.get(trial.number, {column: np.nan for column in TEST_STATS}))
        if trial.number not in confirmed and str(trial.number) in legacy_test:
            row["test_accuracy"] = legacy_test[str(trial.number)]  # dse 0.1: the mean only
        row["is_baseline"] = BASELINE_ATTR in attrs
        row["baseline"] = attrs.get(BASELINE_ATTR, "")
        row["safe_dram_of"] = attrs.get(SAFE_DRAM_ATTR, "")
        row["odimo_lambda"] = attrs.get(ODIMO_LAMBDA_ATTR, np.nan)
        # the engine as shown: a lighter run named with its settings ("odimo[10 ep]")
        row["engine"] = attrs.get(ENGINE_LABEL_ATTR) or attrs.get(ENGINE_ATTR, LEGACY_ENGINE)
        row["probed"] = attrs.get("probed", False)
        row["feasible"] = feasible(trial)
        row.update({f"constraint:{key}": value for key, value in constraints.items()})
        row["worker"] = worker_label(trial)
        row["cost_seconds"] = attrs.get("cost_seconds", np.nan)
        row["probe_seconds"] = attrs.get("probe_seconds", np.nan)
        if channels:
            row["analog_channel_fraction"] = analog_channel_fraction(trial.params, channels)
        row.update(trial.params)
        if device is not None:
            points = absolute_points(trial.params, device)
            row.update(points)
            row["dram_usable"] = all(value >= floor_v - 1e-9 for key, value in points.items()
                                     if key.partition(":")[0] == "vdd_v")
        for column, value in attrs.get(ENGINE_COLUMNS_ATTR, {}).items():
            row.setdefault(column, value)  # never over dse's own
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:  # unknown values (None: e.g. the accuracy of an unprobed trial): NaN
        frame[list(METRICS)] = frame[list(METRICS)].astype(float)
    if frame.empty:
        return pd.DataFrame(columns=["trial", "state", *METRICS, "is_baseline", "baseline",
                                     "is_pareto"])
    frame["is_pareto"] = front_mask(frame, objectives_of(study))
    frame["is_pareto_robust"] = robust_front_mask(frame, objectives_of(study))
    return frame


def vdd_floor_v(study: optuna.Study, device: DramDevice | None) -> float:
    """The lowest usable VDD (V) of the study's DRAM device for its vendor and DIMM
    quantile (``DramDevice.vdd_range_v``); -inf without DRAM or a readable setting."""
    config = study.user_attrs.get(CONFIG_ATTR, {})
    if device is None:
        return -math.inf
    try:
        return device.vdd_range_v(config.get("vendor", DEFAULT_VENDOR),
                                  config.get("ber_quantile", DEFAULT_BER_QUANTILE))[0]
    except (ConfigError, KeyError, ValueError):
        return -math.inf


def unusable_note(study: optuna.Study, frame: pd.DataFrame) -> str | None:
    """Why some complete trials are left out of the front: their DRAM point is below the
    usable VDD floor (trials an earlier dse made, before the floor); None when none is."""
    if frame.empty or "dram_usable" not in frame:
        return None
    done = frame[frame["state"] == "COMPLETE"]
    unusable = done[~done["dram_usable"].fillna(True).astype(bool)]
    if unusable.empty:
        return None
    config = study.user_attrs.get(CONFIG_ATTR, {})
    floor = vdd_floor_v(study, dram_device(study))
    count = len(unusable)
    return (f"{count} complete trial{'s' * (count != 1)} ({_trial_list(unusable['trial'])}) "
            f"{'are' if count != 1 else 'is'} at a VDD below {floor:.4g} V, the usable floor of "
            f"vendor {config.get('vendor', DEFAULT_VENDOR)}'s "
            f"{config.get('ber_quantile', DEFAULT_BER_QUANTILE)} BER (below it too many of "
            f"the vendor's DIMMs stop working for the statistic to be known); an earlier dse "
            f"ran them: they are left out of the front and the claims (dram_usable in "
            f"trials.csv)")


def _trial_list(trials: pd.Series) -> str:
    numbers = [str(int(n)) for n in trials]
    shown = ", ".join(numbers[:8])
    return f"trial{'s' * (len(numbers) != 1)} {shown}{', ...' if len(numbers) > 8 else ''}"


def analog_channel_fraction(params: dict[str, Any], channels: dict[str, int]) -> float:
    """The share of the network's output channels on the analog array (``n_analog:<layer>``
    over every layer's Cout; layers without the parameter are digital)."""
    analog = sum(int(params.get(f"n_analog:{name}", 0)) for name in channels)
    return analog / max(sum(channels.values()), 1)


def _dram_bytes(study: optuna.Study, table: LayerTable, params: dict[str, Any]) -> float:
    """DRAM bytes per inference of a trial recorded before they were stored: its mapping's
    traffic under the study's SoC preset (NaN when that preset cannot be read)."""
    hw = study.user_attrs.get(CONFIG_ATTR, {}).get("hw")
    try:
        soc = _soc(hw if isinstance(hw, str) else "diana")
    except (ConfigError, OSError):
        return float("nan")
    n_analog = np.array([int(params.get(f"n_analog:{name}", 0)) for name in table.name])
    return float(layer_traffic(table, soc, n_analog).total_bytes.sum())


@functools.lru_cache(maxsize=8)
def _soc(hw: str) -> Soc:
    return load_soc(hw)


def dram_device(study: optuna.Study) -> DramDevice | None:
    """The study's DRAM device preset (None without DRAM, or when its preset file is gone:
    the tables then give the reductions only)."""
    name = study.user_attrs.get(CONFIG_ATTR, {}).get("dram")
    if not isinstance(name, str) or name == "none":
        return None
    try:
        return load_dram(name)
    except (ConfigError, OSError):
        return None


def front_mask(frame: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Pareto mask over complete, feasible trials (others are never on the front)."""
    columns, directions = objective_columns(objectives)
    values = frame[columns].to_numpy(dtype=float, copy=True)
    eligible = _eligible(frame)
    values[~eligible] = np.nan
    return pareto_mask(values, directions)


def _eligible(frame: pd.DataFrame) -> np.ndarray:
    """Complete, feasible trials at a usable DRAM point: what may be on a front."""
    eligible = (frame["state"] == "COMPLETE").to_numpy() & frame["feasible"].to_numpy(bool)
    if "dram_usable" in frame:
        eligible &= frame["dram_usable"].fillna(True).to_numpy(bool)
    return eligible


def robust_front_mask(frame: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Complete, feasible trials that no front point dominates by more than their accuracy
    interval: a trial is kept when, given the upper end of its interval as its accuracy, no
    point of the (mean) front dominates it. Every front point is kept; without accuracy
    intervals this is the front."""
    front = frame["is_pareto"].to_numpy(bool)
    if "accuracy" not in objectives or "accuracy_ci_high" not in frame:
        return front.copy()
    columns, directions = objective_columns(objectives)
    values = frame[columns].to_numpy(dtype=float, copy=True)
    upper = frame["accuracy_ci_high"].to_numpy(dtype=float)
    where = columns.index("accuracy")
    values[:, where] = np.where(np.isfinite(upper), np.maximum(upper, values[:, where]),
                                values[:, where])
    eligible = _eligible(frame)
    means = frame.loc[front, columns].to_numpy(dtype=float)
    return front | (eligible & ~pareto.dominated_by(values, means, directions))


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


def write_tables(study: optuna.Study, out_dir: Path, *, max_drop_pp: float | None,
                 frame: pd.DataFrame | None = None, drop_rule: str | None = None,
                 target: str | None = None, margin_pp: float | None = None) -> dict[str, Any]:
    """Write trials.csv, pareto.csv and summary.json; return the summary (see
    ``write_csvs``)."""
    summary = write_csvs(study, out_dir, max_drop_pp=max_drop_pp, frame=frame,
                         drop_rule=drop_rule, target=target, margin_pp=margin_pp)
    write_json(out_dir / "summary.json", summary)
    return summary


def write_csvs(study: optuna.Study, out_dir: Path, *, max_drop_pp: float | None,
               frame: pd.DataFrame | None = None, drop_rule: str | None = None,
               target: str | None = None, margin_pp: float | None = None
               ) -> dict[str, Any]:
    """Write trials.csv and pareto.csv; return the summary, which the caller writes.
    ``frame`` is the study's ``trials_frame`` when the caller has built it already;
    ``target`` names the study in the next commands (default: ``out_dir``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study) if frame is None else frame
    write_csv(out_dir / "trials.csv", frame)
    front = frame[frame["is_pareto"]] if not frame.empty else frame
    write_csv(out_dir / "pareto.csv", front.drop(columns=["is_pareto"], errors="ignore"))
    config = study.user_attrs.get(CONFIG_ATTR, {})
    rule = drop_rule or config.get("drop_rule") or "mean"
    objectives = objectives_of(study)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "objectives": objectives,
        "trials": {state: int(count) for state, count in frame["state"].value_counts().items()},
        "front": _records(front),
        "robust_front_size": int(frame["is_pareto_robust"].sum()) if not frame.empty else 0,
        "baselines": (_records(frame[frame["is_baseline"] & (frame["state"] == "COMPLETE")])
                      if not frame.empty else []),
        "interval_level": config.get("interval_level", LEVEL),
        "drop_rule": rule,
    }
    summary.update(claims_summary(study, frame, objectives=objectives,
                                  max_drop_pp=max_drop_pp, drop_rule=rule,
                                  margin_pp=margin_pp))
    summary["dram_notes"] = safe_dram_notes(study, frame)
    agreement = model_agreement(frame, summary["interval_level"])
    if agreement is not None:
        summary["model_agreement"] = agreement
    if front.empty:
        summary["front_note"] = empty_front_reason(frame)
    note = unusable_note(study, frame)
    if note is not None:
        summary["unusable_note"] = note
    summary["headline"] = headline(summary["claims"])
    probe = study.user_attrs.get(PROBE_SETTINGS_ATTR)
    summary["next_commands"] = next_commands(
        summary, target or shlex.quote(str(out_dir)),
        confirmable=isinstance(probe, dict) and not probe.get("accuracy_estimator"))
    return summary


def safe_dram_notes(study: optuna.Study, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """What each baseline gains at its lowest safe DRAM point (``ledger.safe_dram_candidates``)
    against itself at nominal DRAM: energy changes in %, and the accuracy, which is the
    baseline's own (no tensor sees an error there), with a line saying so; for a mapping
    with no tensor in DRAM, that the saving is background power only."""
    if frame.empty or "safe_dram_of" not in frame:
        return []
    done = frame[frame["state"] == "COMPLETE"]
    bases = {row["baseline"]: row for _, row in done[done["is_baseline"]].iterrows()}
    points = {t.number: t.user_attrs.get(SAFE_POINT_ATTR, {})
              for t in study.get_trials(deepcopy=False) if SAFE_DRAM_ATTR in t.user_attrs}
    notes = []
    for _, row in done[done["safe_dram_of"] != ""].iterrows():
        base = bases.get(row["safe_dram_of"])
        point = points.get(int(row["trial"]), {})
        if base is None or not point:
            continue
        note: dict[str, Any] = {
            "baseline": row["safe_dram_of"], "trial": int(row["trial"]),
            "baseline_trial": int(base["trial"]), "vdd_v": point.get("vdd_v"),
            "trcd_ns": point.get("trcd_ns"), "in_dram": bool(point.get("in_dram")),
            # recorded since the safe point is error-free for every mapping; earlier studies
            # queued mappings with nothing in DRAM at the grid's bottom and said no BER
            "error_free": point.get("ber") == 0 or bool(point.get("in_dram")),
            "energy_change_pct": _change_pct(row["energy_j"], base["energy_j"]),
            "dram_energy_change_pct": _change_pct(row["dram_energy_j"], base["dram_energy_j"]),
        }
        accuracy, reference = row.get("accuracy"), base.get("accuracy")
        known = all(value is not None and np.isfinite(value) for value in (accuracy, reference))
        note["accuracy_change_pp"] = (float(accuracy - reference) * 100) if known else None
        note["text"] = _safe_text(note)
        notes.append(note)
    return notes


def _change_pct(value: float, reference: float) -> float | None:
    if not (np.isfinite(value) and np.isfinite(reference)) or reference == 0:
        return None
    return float((value - reference) / reference * 100)


def _safe_text(note: dict[str, Any]) -> str:
    why = "the lowest VDD and tRCD at which the chosen DIMM reads back without error"
    if not note["in_dram"]:
        why = ("none of its tensors is in DRAM, so the point only lowers the background power "
               "of a DRAM the inference does not use, and gets no EDEN claim; " + why)
        if not note["error_free"]:  # an earlier dse queued it at the bottom of the grid
            why = ("none of its tensors is in DRAM; an earlier dse queued it at the bottom of "
                   "the grid, where the chosen DIMM is not error-free: its saving is that of "
                   "a DRAM that may not work")
    energy = ("" if note["energy_change_pct"] is None
              else f"energy {note['energy_change_pct']:+.1f} %, DRAM energy "
                   f"{note['dram_energy_change_pct']:+.1f} %")
    change = note["accuracy_change_pp"]
    if change is None:
        accuracy = "accuracy not measured"
    elif change == 0:  # by construction, not by a test: no test is counted for it
        accuracy = ("no measurable accuracy cost by construction (every tensor at BER 0: "
                    "the baseline's own probe, the same answer on every image)")
    else:
        accuracy = f"validation accuracy {change:+.2f} pp (untested)"
    return (f"{note['baseline']} at VDD {note['vdd_v']:g} V, tRCD {note['trcd_ns']:g} ns "
            f"({why}): {energy}, {accuracy}")


def claims_summary(study: optuna.Study, frame: pd.DataFrame, *, objectives: list[str],
                   max_drop_pp: float | None, drop_rule: str,
                   margin_pp: float | None = None) -> dict[str, Any]:
    """The claims (front, ODiMO's and EDEN's metrics), chosen on the validation split and
    reported on the test-split confirmations, their tests Holm-adjusted as one family; the
    front's validation-to-test shift, and why there are no claims when there are none."""
    if frame.empty:
        return {"claims": [], "claims_note": "no trial has completed yet"}
    results = confirmed_results(study)
    margin = equivalence_margin(margin_pp, max_drop_pp)
    level = study.user_attrs.get(CONFIG_ATTR, {}).get("interval_level", LEVEL)
    front = front_claims(frame, results, objectives=objectives, max_drop_pp=max_drop_pp,
                         drop_rule=drop_rule, margin_pp=margin)
    metrics: list[dict[str, Any]] = []
    if "accuracy" in objectives:
        metrics = (odimo_claims(frame, results, max_drop_pp=max_drop_pp, drop_rule=drop_rule,
                                margin_pp=margin)
                   + eden_claims(frame, results, drop_rule=drop_rule, margin_pp=margin))
    holm_tests = adjust([*front, *metrics], level=level)
    out: dict[str, Any] = {"claims": [{**item, "text": describe(item)} for item in front]}
    if "accuracy" in objectives:
        out["method_metrics"] = [{**item, "text": describe(item)} for item in metrics]
        out["selected_on"], out["reported_on"] = SELECTED_ON, REPORTED_ON
        out["equivalence_margin_pp"] = margin
        out["holm_tests"] = holm_tests
        out["confirmed"] = len(results)
        out["confirm_settings"] = current_settings(study)
        out["validation_to_test_shift"] = validation_to_test_shift(frame)
        if not results:
            out["claims_note"] = ("no claim: the front and the baselines are not confirmed on "
                                  "the test split yet (run `dse confirm`)")
        elif not front:
            out["claims_note"] = ("no confirmed front point beats a confirmed baseline within "
                                  "the accuracy limit on the validation split")
    return out


def point_label(row: dict[str, Any]) -> str:
    """What a summary record is: 'all-digital (baseline)', 'all-digital, safe DRAM' (the
    baseline at its lowest safe DRAM point), '27% analog' (the share of output channels on
    the analog array), or the engine's name when the share is unknown."""
    if row.get("baseline"):
        return f"{row['baseline']} (baseline)"
    if row.get("safe_dram_of"):
        return f"{row['safe_dram_of']}, safe DRAM"
    fraction = row.get("analog_channel_fraction")
    if isinstance(fraction, (int, float)) and np.isfinite(fraction):
        return f"{fraction:.0%} analog"
    return str(row.get("engine") or LEGACY_ENGINE)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    keep = ["trial", "baseline", "safe_dram_of", "engine", "odimo_lambda", *METRICS,
            *ACCURACY_STATS, *TEST_STATS, "feasible", "is_pareto_robust",
            "analog_channel_fraction"]
    points = [c for c in frame.columns if c.split(":")[0] in ("vdd_v", "trcd_ns")]
    subset = frame[[c for c in keep if c in frame.columns] + points]
    return json.loads(subset.to_json(orient="records"))


PREDICTED_DROP = "predicted_drop_pp"  # an engine's own column: the drop its model predicted
PREDICTED_LOW, PREDICTED_HIGH = "predicted_drop_low_pp", "predicted_drop_high_pp"  # its 95 %
CEILING_DRAWS = 2000  # simulated re-measurements behind the noise ceiling


def model_agreement(frame: pd.DataFrame, level: float = LEVEL) -> dict[str, Any] | None:
    """How well an engine's model of the accuracy drop (``predicted_drop_pp``, the frontier
    engine's) ranked the points it had probed: Spearman's rank correlation of predicted
    against measured paired drops (pp, positive = worse), and its noise ceiling, what a
    model that knew every measured drop exactly would reach against measurements as noisy
    as these (each re-drawn from a normal with the standard error of its ``level``
    interval, ``CEILING_DRAWS`` times: an estimate, the measured spread standing in for the
    true one); and, where the points have prediction intervals (``predicted_drop_low_pp``,
    ``predicted_drop_high_pp``), how many held their measured drop (``interval_points``,
    ``interval_held``). None when no trial has a prediction."""
    if frame.empty or PREDICTED_DROP not in frame or ACCURACY_CHANGE[0] not in frame:
        return None
    done = frame[(frame["state"] == "COMPLETE") & frame[PREDICTED_DROP].notna()
                 & frame[ACCURACY_CHANGE[0]].notna()]
    if done.empty:
        return None
    predicted = done[PREDICTED_DROP].to_numpy(float)
    measured = -done[ACCURACY_CHANGE[0]].to_numpy(float)
    found: dict[str, Any] = {
        "points": int(len(done)), "spearman": None, "noise_ceiling": None,
        "mean_error_pp": float(np.mean(predicted - measured)),
        "mean_abs_error_pp": float(np.mean(np.abs(predicted - measured)))}
    if PREDICTED_LOW in done and PREDICTED_HIGH in done:
        bounded = done[done[PREDICTED_LOW].notna() & done[PREDICTED_HIGH].notna()]
        inside = ((bounded[PREDICTED_LOW] <= -bounded[ACCURACY_CHANGE[0]])
                  & (-bounded[ACCURACY_CHANGE[0]] <= bounded[PREDICTED_HIGH]))
        found.update(interval_points=int(len(bounded)), interval_held=int(inside.sum()))
    if len(done) >= 3 and np.ptp(predicted) > 0 and np.ptp(measured) > 0:
        found["spearman"] = spearman_rho(predicted, measured)
        low, high = ACCURACY_CHANGE[1], ACCURACY_CHANGE[2]
        if low in done and high in done:
            z = normal_quantile(level)
            se = (done[high].to_numpy(float) - done[low].to_numpy(float)) / (2 * z)
            se = np.where(np.isfinite(se), se, 0.0)
            rng = np.random.default_rng(0)
            draws = [spearman_rho(measured, measured + se * rng.standard_normal(len(se)))
                     for _ in range(CEILING_DRAWS)]
            found["noise_ceiling"] = float(np.nanmean(draws))
    return found


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN where either is constant."""
    ranks_a = pd.Series(a).rank().to_numpy()
    ranks_b = pd.Series(b).rank().to_numpy()
    if np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return float("nan")
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def model_agreement_text(agreement: dict[str, Any]) -> str:
    """``model_agreement`` in one sentence (the summary's printed line and the report)."""
    rho, ceiling = agreement.get("spearman"), agreement.get("noise_ceiling")
    ranked = (f"rank correlation {rho:.2f}" if rho is not None
              else "too few distinct points to rank")
    if ceiling is not None:
        ranked += f" (noise ceiling {ceiling:.2f})"
    held = ""
    if agreement.get("interval_points"):
        held = (f"; its 95 % prediction intervals held {agreement['interval_held']} of "
                f"{agreement['interval_points']}")
    return (f"the engine's drop model on its {agreement['points']} probed points: {ranked}, "
            f"mean error {agreement['mean_error_pp']:+.2f} pp (predicted minus measured)"
            f"{held}")


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
