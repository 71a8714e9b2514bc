"""``dse pareto`` and ``dse show``: read a study (also while it runs) and report on it."""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from dse.objectives import Context, Limits, candidate_cost
from dse.reports import CostRequest, dram_setting
from dse.results import (constraints_of, front_trials, metrics_of, objectives_of,
                         worker_label)
from dse.search import write_outputs
from dse.space import build_space, suggest_candidate
from dse.study import CONFIG_ATTR, MASK, open_storage, shown_url, sqlite_path
from dse.workload import load_workload
from hw_models import ConfigError, load_soc
from hw_models.traffic import layer_traffic


def locate(target: str | None, *, storage: str | None, study_name: str | None,
           results_dir: str) -> tuple[str, str, Path]:
    """(storage URL, study name, results folder) from a folder, a study name or --storage."""
    if storage is not None:
        if study_name is None and target is None:
            raise ConfigError("with --storage, give --study NAME (or the study as TARGET)")
        name = study_name or target
        return storage, name, Path(results_dir) / name
    if target is None:
        raise ConfigError("give a study name, its results folder, or --storage and --study")
    folder = Path(target) if Path(target).is_dir() else Path(results_dir) / target
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"no study found at '{target}' ({config_path} does not exist)")
    try:
        config = json.loads(config_path.read_text())
        url, name = str(config["storage"]), str(config["study"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{config_path} is damaged ({type(exc).__name__})") from None
    if shown_url(url) != url or MASK in url:
        raise ConfigError(f"study '{name}' is in {url}, whose password is not stored: pass "
                          f"--storage URL --study {name}")
    return url, name, folder


def load(storage_url: str, name: str) -> optuna.Study:
    database = sqlite_path(storage_url)
    if database is not None and not database.is_file():
        raise ConfigError(f"no study database at {database}")
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise ConfigError(f"study '{name}' does not exist in {shown_url(storage_url)}") from None


def pareto_report(target: str | None, *, storage: str | None, study_name: str | None,
                  x: str | None, y: str | None, color: str | None, out: str | None,
                  results_dir: str) -> dict[str, Any]:
    from dse.objectives import OBJECTIVES
    url, name, folder = locate(target, storage=storage, study_name=study_name,
                               results_dir=results_dir)
    study = load(url, name)
    axes = [OBJECTIVES[a][1] if a in OBJECTIVES else a for a in (x, y, color)]
    known = {column for _, column in OBJECTIVES.values()}
    for given, column in zip((x, y, color), axes):
        if given is not None and column not in known:
            raise ConfigError(f"unknown objective '{given}' (choose from "
                              f"{', '.join(OBJECTIVES)})")
    config = study.user_attrs.get(CONFIG_ATTR, {})
    out_dir = Path(out) if out else folder
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {out_dir}: {exc.strerror}") from None
    summary = write_outputs(study, out_dir, config.get("max_accuracy_drop"), x=axes[0],
                            y=axes[1], color=axes[2])
    return {**summary, "results_dir": str(out_dir), "storage": shown_url(url)}


def show_report(target: str, trial_number: int, *, storage: str | None,
                results_dir: str) -> dict[str, Any]:
    url, name, _ = locate(target, storage=storage, study_name=None, results_dir=results_dir)
    study = load(url, name)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= trial_number < len(trials):
        raise ConfigError(f"study '{name}' has trials 0..{len(trials) - 1}, not {trial_number}")
    trial = trials[trial_number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise ConfigError(f"trial {trial_number} is {trial.state.name}, not COMPLETE")
    config = study.user_attrs[CONFIG_ATTR]
    context = _context(config)
    candidate = suggest_candidate(optuna.trial.FixedTrial(trial.params), context.space)
    cost = candidate_cost(candidate, context)
    table = context.space.table
    layers = [{
        "name": table.name[i], "kind": table.kind[i], "cout": int(table.cout[i]),
        "n_digital": int(table.cout[i] - candidate.n_analog[i]),
        "n_analog": int(candidate.n_analog[i]),
        "weights_partition": "approximate" if candidate.weights_approx[i] else "nominal",
        "activations_partition": ("approximate" if candidate.activations_approx[i]
                                  else "nominal") if context.space.spilled[i] else "on chip",
        "latency_s": float(cost.latency_s[i]),
        "compute_energy_j": float(cost.compute.energy_j[i]),
        "dram_energy_j": float(cost.dram_energy_j[i]),
        "weight_ber": float(cost.weight_ber[i]),
        "activation_ber": float(cost.activation_ber[i]),
    } for i in range(table.n_layers)]
    return {
        "study": name, "trial": trial_number, "baseline": trial.user_attrs.get("baseline", ""),
        "network": config["network"], "dataset": config["dataset"], "dram": config["dram"],
        "vdd_v": candidate.vdd_v, "trcd_ns": candidate.trcd_ns,
        "metrics": {key: metrics_of(trial).get(key) for key in
                    ("accuracy", "accuracy_std", "latency_s", "energy_j", "dram_energy_j",
                     "compute_energy_j", "probed")},
        "constraints": constraints_of(trial),
        "test_accuracy": study.user_attrs.get("test_accuracy", {}).get(str(trial_number)),
        "layers": layers,
    }


def _context(config: dict[str, Any]) -> Context:
    soc = load_soc(config["hw"])
    table = load_workload(config["network"], config["dataset"]).table
    dram = dram_setting(CostRequest(network=config["network"], dataset=config["dataset"],
                                    mapping="all-digital", hw=config["hw"], dram=config["dram"],
                                    vendor=config["vendor"]), table, soc)
    spilled = layer_traffic(table, soc, np.zeros(table.n_layers, dtype=int)).spilled
    space = build_space(table, spilled, None if dram is None else dram.device, config["vendor"])
    return Context(space=space, soc=soc, vendor=config["vendor"], objectives=(),
                   limits=Limits(), probe=None, baseline_accuracy=None)


def status_report(target: str | None, *, storage: str | None, study_name: str | None,
                  results_dir: str) -> dict[str, Any]:
    """Trials by state, per worker (host:pid), the running ones, front size, last
    completion time."""
    url, name, _ = locate(target, storage=storage, study_name=study_name,
                          results_dir=results_dir)
    study = load(url, name)
    trials = study.get_trials(deepcopy=False)
    by_state: dict[str, int] = {}
    by_worker: dict[str, int] = {}
    running = []
    now = datetime.datetime.now()
    for trial in trials:
        by_state[trial.state.name] = by_state.get(trial.state.name, 0) + 1
        if trial.state == optuna.trial.TrialState.COMPLETE:
            worker = worker_label(trial) or "?:?"
            by_worker[worker] = by_worker.get(worker, 0) + 1
        elif trial.state == optuna.trial.TrialState.RUNNING:
            started = trial.datetime_start
            running.append({"trial": trial.number, "worker": worker_label(trial) or "?:?",
                            "started": started.isoformat() if started else None,
                            "running_s": (now - started).total_seconds() if started else None})
    completed = [t.datetime_complete for t in trials
                 if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete]
    front = front_trials(trials, objectives_of(study))
    return {"study": name, "storage": shown_url(url), "trials": by_state,
            "complete_by_worker": by_worker, "running": running, "front_size": len(front),
            "last_completion": max(completed).isoformat() if completed else None}

