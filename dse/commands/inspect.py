"""``dse pareto``, ``show`` and ``status``: read a study (also while it runs) and report on
it; ``dse repair-journal``: mend a torn journal file."""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import optuna

from dse.accuracy.verdicts import check_margin
from dse.commands.reports import (
    RepairReport,
    ShowReport,
    StatusReport,
    StudyReport,
    ToleranceReport,
)
from dse.config import check_storage
from dse.metrics import TEST_ACCURACY, plotted_metric
from dse.results.confirmation import confirmed_results, current_settings
from dse.results.details import problem_of, trial_details
from dse.results.files import check_writable_folder
from dse.results.ledger import (
    EDEN_ATTR,
    TEST_ACCURACY_ATTR,
    WORKER_ATTR,
    eden_tolerances,
    objectives_of,
    worker_label,
)
from dse.results.location import (
    check_own_database,
    missing_file,
    only_study,
    resolve,
    study_target,
)
from dse.results.outputs import write_outputs
from dse.results.tables import front_trials
from dse.storage.journal import repair_journal
from dse.storage.reader import snapshot
from dse.storage.storage import (
    MASK,
    journal_path,
    open_storage,
    shown_url,
    sqlite_path,
)
from hw_models import ConfigError


def locate(target: str | None, *, storage: str | None, study_name: str | None,
           results_dir: str) -> tuple[str, str, Path]:
    """(storage URL, study name, results folder) from a folder, a study name or --storage;
    with none of them, the only study in ``results_dir``."""
    check_storage(storage)
    if storage is not None:
        name = study_name or target
        if name is None:  # neither given, or --study "" without TARGET
            raise ConfigError("with --storage, give --study NAME (or the study as TARGET)")
        return storage, name, Path(results_dir) / name
    target = target or study_name
    folder = (only_study(Path(results_dir)) if target is None
              else Path(target) if Path(target).is_dir() else Path(results_dir) / target)
    config_path = folder / "config.json"
    if config_path.is_dir():
        raise ConfigError(f"{config_path} is a folder, not a study's settings file; pass "
                          "--storage URL --study NAME")
    if not config_path.is_file():
        raise ConfigError(f"no study found at '{target}' ({config_path} does not exist)")
    url, name = stored_location(config_path)
    gone = missing_file(url)
    if gone is not None:
        raise ConfigError(f"the database of study '{name}', {gone}, named by {config_path}, "
                          "is gone: restore it, or pass --storage URL --study NAME")
    if shown_url(url) != url or MASK in url:
        raise ConfigError(f"study '{name}' is in {url}, whose password is not stored: pass "
                          f"--storage URL --study {name}")
    return url, name, folder


def stored_location(config_path: Path) -> tuple[str, str]:
    """(storage URL, study name) from a results folder's ``config.json``, the storage
    resolved against the folder itself."""
    try:
        config = json.loads(config_path.read_text())
        url, name = resolve(config, config_path.parent), config["study"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{config_path} is damaged ({type(exc).__name__}): restore it, or "
                          "pass --storage URL --study NAME") from None
    if not isinstance(name, str):
        raise ConfigError(f"{config_path} is damaged (its storage and study are not text): "
                          "restore it, or pass --storage URL --study NAME")
    check_own_database(url, config_path.parent)
    return url, name


def check_stored(storage_url: str) -> None:
    """The file of a SQLite or journal storage exists: opening an existing study must not
    create it."""
    database = sqlite_path(storage_url)
    if database is not None and not database.is_file():
        raise ConfigError(f"no study database at {database}")
    journal = journal_path(storage_url)
    if journal is not None and not journal.exists():
        raise ConfigError(f"no study journal at {journal}")


def load(storage_url: str, name: str) -> Any:
    """The study as read now (a ``StudySnapshot`` on database storages: fast for large
    studies), for reading only."""
    check_stored(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise ConfigError(f"study '{name}' does not exist in {shown_url(storage_url)}") from None
    return snapshot(study)


def pareto_report(target: str | None, *, storage: str | None, study_name: str | None,
                  x: str | None, y: str | None, color: str | None, out: str | None,
                  results_dir: str, margin_pp: float | None = None) -> StudyReport:
    if margin_pp is not None:
        check_margin(margin_pp)
    if (x is None) != (y is None):
        raise ConfigError("give --x and --y together (and --color optionally)")
    if color is not None and x is None:
        raise ConfigError("--color colours an extra plot: give --x and --y with it")
    axes = [None if given is None else plotted_metric(given).column
            for given in (x, y, color)]
    url, name, folder = locate(target, storage=storage, study_name=study_name,
                               results_dir=results_dir)
    out_dir = Path(out) if out else folder
    check_writable_folder(out_dir, what="output folder", hint="pass another --out")
    study = load(url, name)
    if TEST_ACCURACY.column in axes and not (confirmed_results(study)
                                             or study.user_attrs.get(TEST_ACCURACY_ATTR)):
        raise ConfigError(f"no point of study '{name}' is confirmed on the test split, so "
                          f"there is no test accuracy to plot: run `dse confirm {name}` first")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {out_dir}: {exc.strerror}") from None
    summary = write_outputs(study, out_dir, x=axes[0], y=axes[1], color=axes[2],
                            target=study_target(folder, url, name), margin_pp=margin_pp)
    return StudyReport(**summary, results_dir=str(out_dir), storage=shown_url(url))


def show_report(target: str | None, trial_number: int, *, storage: str | None,
                results_dir: str) -> ShowReport:
    url, name, _ = locate(target, storage=storage, study_name=None, results_dir=results_dir)
    study = load(url, name)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= trial_number < len(trials):
        raise ConfigError(f"study '{name}' has trials 0..{len(trials) - 1}, not {trial_number}")
    trial = trials[trial_number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise ConfigError(f"trial {trial_number} is {trial.state.name}, not COMPLETE")
    try:
        details = trial_details(study, trial, problem_of(study))
    except ConfigError as error:  # e.g. an earlier dse's point below today's VDD floor
        raise ConfigError(f"trial {trial_number} cannot be costed under today's model: "
                          f"{error}; its stored metrics are in trials.csv") from error
    return ShowReport(**details)


def tolerance_report(target: str | None, *, storage: str | None, study_name: str | None,
                     results_dir: str) -> ToleranceReport:
    """The error tolerance EDEN characterised, per split: the coarse BER (all data at once)
    and the fine BER per data type; and the trial of each split's mapping."""
    url, name, _ = locate(target, storage=storage, study_name=study_name,
                          results_dir=results_dir)
    study = load(url, name)
    tolerance = eden_tolerances(study.user_attrs)
    if not tolerance:
        raise ConfigError(f"study '{name}' has no EDEN characterisation (run dse search "
                          "--engine eden on it)")
    trials = {t.user_attrs[EDEN_ATTR]["mapping"]: t for t in study.get_trials(deepcopy=False)
              if EDEN_ATTR in t.user_attrs}
    splits = []
    for mapping, record in tolerance.items():
        trial = trials.get(mapping)
        eden = trial.user_attrs[EDEN_ATTR] if trial is not None else {}
        splits.append({"mapping": mapping, **record,
                       "trial": None if trial is None else trial.number,
                       "partition_ber": eden.get("partition_ber"),
                       "retrain_epochs": eden.get("retrain_epochs"),
                       "target_met": eden.get("target_met"),
                       "tightened": eden.get("tightened"), "probes": eden.get("probes")})
    return ToleranceReport(study=name, splits=splits)


def status_report(target: str | None, *, storage: str | None, study_name: str | None,
                  results_dir: str) -> StatusReport:
    """Trials by state, per worker (host:pid), the running ones, front size, last
    completion time."""
    url, name, _ = locate(target, storage=storage, study_name=study_name,
                          results_dir=results_dir)
    study = load(url, name)
    trials = study.get_trials(deepcopy=False)
    by_state: dict[str, int] = {}
    by_worker: dict[str, int] = {}
    threads: dict[str, int] = {}  # worker -> torch threads of its latest trial
    running = []
    now = datetime.datetime.now()
    for trial in trials:
        by_state[trial.state.name] = by_state.get(trial.state.name, 0) + 1
        worker_threads = trial.user_attrs.get(WORKER_ATTR, {}).get("threads")
        if worker_threads is not None:
            threads[worker_label(trial)] = worker_threads
        if trial.state == optuna.trial.TrialState.COMPLETE:
            worker = worker_label(trial) or "?:?"
            by_worker[worker] = by_worker.get(worker, 0) + 1
        elif trial.state == optuna.trial.TrialState.RUNNING:
            started = trial.datetime_start
            running.append({"trial": trial.number, "worker": worker_label(trial) or "?:?",
                            "threads": trial.user_attrs.get(WORKER_ATTR, {}).get("threads"),
                            "started": started.isoformat() if started else None,
                            "running_s": (now - started).total_seconds() if started else None})
    completed = [t.datetime_complete for t in trials
                 if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete]
    front = front_trials(trials, objectives_of(study))
    return StatusReport(study=name, storage=shown_url(url), trials=by_state,
                        complete_by_worker=by_worker, threads_by_worker=threads,
                        running=running, front_size=len(front),
                        confirmed=len(confirmed_results(study)),
                        confirm_settings=current_settings(study),
                        last_completion=max(completed).isoformat() if completed else None)


def repair_journal_report(target: str) -> RepairReport:
    """``dse repair-journal PATH`` (or ``journal:PATH``): see ``repair_journal``."""
    return RepairReport(**repair_journal(journal_path(target) or Path(target)))
