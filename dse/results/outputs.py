"""Every output file of a study at once: tables, summary and plots (no torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from dse.results.ledger import CONFIG_ATTR, objectives_of, stored_table
from dse.results.plots import write_plots
from dse.results.tables import trials_frame, write_tables
from hw_models.errors import ConfigError


def write_outputs(study: optuna.Study, out_dir: Path, *, x: str | None = None,
                  y: str | None = None, color: str | None = None) -> dict[str, Any]:
    """trials.csv, pareto.csv, summary.json and the plots; returns the summary."""
    config = study.user_attrs.get(CONFIG_ATTR, {})
    frame = trials_frame(study)  # built once: it is a second of a 10,000-trial study
    summary = write_tables(study, out_dir, max_drop_pp=config.get("max_accuracy_drop"),
                           frame=frame)
    summary["plots"] = [str(p) for p in write_plots(frame, objectives_of(study),
                                                    layer_channels(study), out_dir,
                                                    x=x, y=y, color=color)]
    return summary


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
