"""Every output file of a study at once: tables, summary and plots (no torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from dse.results.files import write_json
from dse.results.ledger import (
    CONFIG_ATTR,
    EDEN_ATTR,
    EDEN_TOLERANCE_ATTR,
    objectives_of,
    stored_table,
)
from dse.results.plots import write_plots
from dse.results.tables import trials_frame, write_tables
from hw_models.errors import ConfigError


def write_outputs(study: optuna.Study, out_dir: Path, *, x: str | None = None,
                  y: str | None = None, color: str | None = None,
                  target: str | None = None) -> dict[str, Any]:
    """trials.csv, pareto.csv, summary.json and the plots; returns the summary. ``target``
    names the study in the next commands (``location.study_target``; default: ``out_dir``)."""
    config = study.user_attrs.get(CONFIG_ATTR, {})
    frame = trials_frame(study)  # built once: it is a second of a 10,000-trial study
    summary = write_tables(study, out_dir, max_drop_pp=config.get("max_accuracy_drop"),
                           frame=frame, target=target)
    summary["plots"] = [str(p) for p in write_plots(frame, objectives_of(study),
                                                    layer_channels(study), out_dir,
                                                    x=x, y=y, color=color)]
    summary["eden_files"] = [str(p) for p in write_eden_files(study, out_dir)]
    return summary


def write_eden_files(study: optuna.Study, out_dir: Path) -> list[Path]:
    """``tolerance.json`` (every split EDEN characterised) and, per EDEN trial,
    ``eden_partitions_trial<N>.json``, a partitions file for ``dse cost/probe``."""
    written = []
    tolerance = study.user_attrs.get(EDEN_TOLERANCE_ATTR)
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
