"""Every output file of a study at once: tables, plots, report and summary (no torch)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna

from dse.accuracy.stats import LEVEL
from dse.problem import Problem
from dse.results.confirmation import confirmed_columns
from dse.results.details import problem_of, trial_details
from dse.results.files import write_json
from dse.results.ledger import (
    CONFIG_ATTR,
    EDEN_ATTR,
    EQUIVALENCE_MARGIN_ATTR,
    eden_tolerances,
    objectives_of,
    stored_table,
)
from dse.results.plots import write_plots
from dse.results.report import write_report
from dse.results.tables import trials_frame, write_csvs
from hw_models.errors import ConfigError

logger = logging.getLogger(__name__)


def write_outputs(study: optuna.Study, out_dir: Path, *, x: str | None = None,
                  y: str | None = None, color: str | None = None,
                  target: str | None = None, problem: Problem | None = None,
                  margin_pp: float | None = None) -> dict[str, Any]:
    """trials.csv, pareto.csv, the plots, report.html and summary.json (last, listing the
    others); returns the summary. ``problem``: the study's problem when the caller has it
    (else rebuilt from the study). ``target`` names the study in the next commands
    (``location.study_target``; default: ``out_dir``). ``margin_pp``: the claims'
    equivalence margin (None: the one the study keeps, ``keep_margin``, else the default)."""
    config = study.user_attrs.get(CONFIG_ATTR, {})
    if margin_pp is None:
        margin_pp = kept_margin(study)
    frame = trials_frame(study)  # built once: it is a second of a 10,000-trial study
    summary = write_csvs(study, out_dir, max_drop_pp=config.get("max_accuracy_drop"),
                         frame=frame, target=target, margin_pp=margin_pp)
    summary["plots"] = [str(p) for p in write_plots(frame, objectives_of(study),
                                                    layer_channels(study), out_dir,
                                                    x=x, y=y, color=color,
                                                    level=config.get("interval_level",
                                                                     LEVEL))]
    summary["eden_files"] = [str(p) for p in write_eden_files(study, out_dir)]
    summary["report"] = str(write_report(summary, point_details(study, summary, problem), out_dir,
                                         facts=study_facts(study, summary)))
    write_json(out_dir / "summary.json", summary)
    return summary


def keep_margin(study: optuna.Study, margin_pp: float | None) -> None:
    """Keep ``--equivalence-margin`` in the study (``dse search``, ``dse confirm``: they
    write to it), so that later summaries (``dse pareto``, which only reads) use it too;
    reporting only, not the study's identity. None keeps what is kept."""
    if margin_pp is not None and study.user_attrs.get(EQUIVALENCE_MARGIN_ATTR) != margin_pp:
        study.set_user_attr(EQUIVALENCE_MARGIN_ATTR, float(margin_pp))


def kept_margin(study: optuna.Study) -> float | None:
    """The margin ``keep_margin`` kept (None: none, or not a margin)."""
    stored = study.user_attrs.get(EQUIVALENCE_MARGIN_ATTR)
    if isinstance(stored, (int, float)) and math.isfinite(stored) and stored >= 0:
        return float(stored)
    return None


def point_details(study: optuna.Study, summary: dict[str, Any],
                  problem: Problem | None = None) -> dict[int, dict[str, Any]]:
    """``dse show``'s details of every front point and baseline, by trial number; none
    for a study without a stored layer table (it would need torch to rebuild the network)
    or whose presets no longer load here (the report then says so; the tables stand)."""
    if stored_table(study) is None or CONFIG_ATTR not in study.user_attrs:
        return {}
    try:
        problem = problem or problem_of(study)
        confirmed = confirmed_columns(study)
        trials = study.get_trials(deepcopy=False)
        numbers = dict.fromkeys(row["trial"]
                                for row in [*summary["front"], *summary["baselines"]])
        return {number: trial_details(study, trials[number], problem, confirmed=confirmed)
                for number in numbers}
    except ConfigError as exc:
        logger.warning("report.html without the trials in full: %s", exc)
        return {}


def study_facts(study: optuna.Study, summary: dict[str, Any]) -> str:
    """One line on what was searched and how far the search is."""
    config = study.user_attrs.get(CONFIG_ATTR, {})
    trials = ", ".join(f"{count} {state.lower()}" for state, count in summary["trials"].items())
    searched = (f"{config['network']} on {config['dataset']}, {config.get('hw', '?')} with "
                f"DRAM {config.get('dram', '?')}; " if "network" in config else "")
    return (f"{searched}objectives {', '.join(summary['objectives'])}; trials: "
            f"{trials or 'none'}")


def write_eden_files(study: optuna.Study, out_dir: Path) -> list[Path]:
    """``tolerance.json`` (every split EDEN characterised) and, per EDEN trial,
    ``eden_partitions_trial<N>.json``, a partitions file for ``dse cost/probe``."""
    written = []
    tolerance = eden_tolerances(study.user_attrs)
    if tolerance:
        write_json(out_dir / "tolerance.json", tolerance)
        written.append(out_dir / "tolerance.json")
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        document = trial.user_attrs.get(EDEN_ATTR, {}).get("partitions_file")
        if document:
            path = out_dir / f"eden_partitions_trial{trial.number}.json"
            write_json(path, document)
            written.append(path)
    return written


def layer_channels(study: optuna.Study) -> list[tuple[str, int]]:
    """(layer name, output channels) from the stored table; studies made before it was
    stored rebuild the network (torch)."""
    table = stored_table(study)
    if table is None:
        config = study.user_attrs.get(CONFIG_ATTR, {})
        try:
            from dse.workload import load_workload
            table = load_workload(config["network"], config["dataset"]).table
        except (ConfigError, KeyError):
            return []
    return list(zip(table.name, (int(c) for c in table.cout)))
