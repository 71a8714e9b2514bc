"""``dse search``: build the context once, run the study, write the results folder."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
import optuna

import dse
from dse.objectives import OBJECTIVES, Context, Limits, candidate_cost, parse_objectives
from dse.plots import write_plots
from dse.probing import DataRequest, obtain_checkpoint, resolve_device, resolved_epochs
from dse.reports import CostRequest, dram_setting
from dse.runner import SignalGuard, Terminated, TrialRunner, fail_stale
from dse.results import (TEST_ACCURACY_ATTR, front_trials, metrics_of, trials_frame,
                         write_json, write_tables)
from dse.space import build_space, suggest_candidate
from dse.study import (GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, default_storage_url,
                       default_study_name, journal_path, make_objective, make_sampler,
                       open_storage, open_study, OrphanCheck, shown_url, sqlite_path,
                       worker_identity)
from dse.workload import load_workload
from hw_models import ConfigError, load_soc
from hw_models.dram import DEFAULT_VENDOR, dram_preset_path
from hw_models.error_models import ErrorModelParams
from hw_models.traffic import layer_traffic
from networks.datasets import load_dataset
from networks.zoo import import_callable
from networks.probe import ProbeCandidate, ProbeConfig, ProbeSetup, probe

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``dse search`` takes; ``identity`` is what a study is bound to."""

    network: str = "resnet8"
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    hw: str = "diana"
    dram: str | None = None               # None: the SoC's default device
    vendor: str = DEFAULT_VENDOR
    objectives: str = "accuracy,latency,energy"
    max_accuracy_drop: float | None = 1.0  # percentage points
    latency_budget: float | None = None    # s
    energy_budget: float | None = None     # J
    trials: int = 50
    sampler: str = "tpe"
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    results_dir: str = "results"
    device: str = "auto"
    checkpoint: str | None = None
    epochs: int | None = None
    probe_steps: int = ProbeConfig.steps
    probe_seeds: int = ProbeConfig.seeds
    error_model: int = ProbeConfig.error_model
    accuracy_estimator: str | None = None  # package.module:function replacing the probe
    trials_per_worker: int | None = None  # this worker's own count instead of the total
    worker: int | None = None             # worker index for its seed stream
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S
    grace_period: int = GRACE_PERIOD_S

    def resolved_dram(self, soc_default: str) -> str:
        return soc_default if self.dram is None else self.dram

    def identity(self, dram: str, *, hw_path: str | None = None,
                 dram_path: str | None = None) -> dict[str, Any]:
        """The settings a study is bound to; the hardware and DRAM presets also by the
        SHA-256 of their files, so that an edited file is noticed and the same file under
        another name (a preset by its path) is not."""
        keep = ("network", "dataset", "hw", "vendor", "objectives", "max_accuracy_drop",
                "latency_budget", "energy_budget", "checkpoint", "probe_steps",
                "probe_seeds", "error_model", "accuracy_estimator")
        return {**{key: getattr(self, key) for key in keep}, "dram": dram,
                "epochs": resolved_epochs(self.dataset, self.epochs),
                "hw_sha256": _sha256(hw_path), "dram_sha256": _sha256(dram_path)}


class SearchInterrupted(Exception):
    """The search stopped on a signal; results were written from what exists."""

    def __init__(self, signal_name: str, exit_code: int, out_dir: Path) -> None:
        super().__init__(f"{signal_name}: stopped; completed trials are kept and the results "
                         f"in {out_dir} are written from them")
        self.exit_code = exit_code


@dataclass(frozen=True)
class Prepared:
    config: SearchConfig
    context: Context
    study_name: str
    storage_url: str
    out_dir: Path
    identity: dict[str, Any]
    probe_setup: ProbeSetup | None


def check(config: SearchConfig) -> tuple[str, ...]:
    if config.trials < 1:
        raise ConfigError("--trials must be >= 1")
    if not 0 <= worker_seed(config) < 2**32 or config.seed < 0 or (config.worker or 0) < 0:
        raise ConfigError("--seed and --worker must be >= 0 (and the seed below 2**32)")
    if config.study is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                                                     config.study):
        raise ConfigError(f"study name '{config.study}' may hold letters, digits, '_', '.' "
                          "and '-' only (it names a folder under --results-dir)")
    if config.trials_per_worker is not None and config.trials_per_worker < 1:
        raise ConfigError("--trials-per-worker must be >= 1")
    if not 0 < config.heartbeat_interval < config.grace_period:
        raise ConfigError("need 0 < --heartbeat-interval < --grace-period")
    if config.probe_steps < 0 or config.probe_seeds < 1:
        raise ConfigError("--probe-steps must be >= 0 and --probe-seeds >= 1")
    for name, value in (("--latency-budget", config.latency_budget),
                        ("--energy-budget", config.energy_budget),
                        ("--max-accuracy-drop", config.max_accuracy_drop)):
        if value is not None and not value >= 0:
            raise ConfigError(f"{name} must be >= 0")
    make_sampler(config.sampler, config.seed)
    return parse_objectives(config.objectives)


def prepare(config: SearchConfig, *, progress: Progress | None = None) -> Prepared:
    """Validate everything and build the context (this trains the checkpoint if needed)."""
    objectives = check(config)
    soc = load_soc(config.hw)
    dram_name = config.resolved_dram(soc.default_dram)
    table = load_workload(config.network, config.dataset).table
    if "accuracy" in objectives and config.accuracy_estimator is None:
        # no data: fail before anything else
        load_dataset(config.dataset, config.data_dir, download=config.download)
    dram = dram_setting(CostRequest(network=config.network, dataset=config.dataset,
                                    mapping="all-digital", hw=config.hw, dram=dram_name,
                                    vendor=config.vendor), table, soc)
    device = None if dram is None else dram.device
    spilled = layer_traffic(table, soc, np.zeros(table.n_layers, dtype=int)).spilled
    space = build_space(table, spilled, device, config.vendor)
    study_name = config.study or default_study_name(config.network, config.dataset, config.hw,
                                                    dram_name)
    storage_url = config.storage or default_storage_url(config.results_dir, study_name)
    resolve_device(config.device)
    probe_setup, estimator, baseline_accuracy = None, None, None
    if "accuracy" in objectives and config.accuracy_estimator is not None:
        estimator = import_callable(config.accuracy_estimator, what="accuracy estimator")
    database = sqlite_path(storage_url)
    if database is None or database.is_file():  # a new SQLite file is made only to be used
        open_storage(storage_url)  # a bad URL or an unreachable database fails before training
    if "accuracy" in objectives:
        if estimator is None:
            probe_setup = _probe_setup(config, device, progress)
            estimator = functools.partial(_probe_with, probe_setup)
        zeros = tuple(0.0 for _ in range(table.n_layers))
        baseline_accuracy = estimator(ProbeCandidate((0,) * table.n_layers, zeros,
                                                     zeros)).accuracy_mean
    context = Context(
        space=space, soc=soc, vendor=config.vendor, objectives=objectives,
        limits=Limits(config.max_accuracy_drop, config.latency_budget, config.energy_budget),
        probe=estimator, baseline_accuracy=baseline_accuracy)
    return Prepared(config, context, study_name, storage_url,
                    Path(config.results_dir) / study_name,
                    config.identity(dram_name, hw_path=soc.source_path,
                                    dram_path=dram_preset_path(dram_name)),
                    probe_setup)


def _append_run(path: Path, record: dict[str, Any]) -> None:
    """One line per run or worker that joined the study (its sampler, seed, trials, ...):
    config.json keeps the settings of the run that created it."""
    line = json.dumps({"started": datetime.datetime.now().isoformat(timespec="seconds"),
                       "worker": worker_identity(),
                       **record}, default=str)
    with open(path, "a") as handle:
        handle.write(line + "\n")


def _sha256(path: str | Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _probe_with(setup: ProbeSetup, candidate: ProbeCandidate):
    return probe(candidate, setup=setup)


def _probe_setup(config: SearchConfig, device, progress: Progress | None) -> ProbeSetup:
    data = DataRequest(network=config.network, dataset=config.dataset,
                       data_dir=config.data_dir, download=config.download,
                       results_dir=config.results_dir,
                       checkpoint=config.checkpoint, epochs=config.epochs, device=config.device)
    checkpoint, _, _ = obtain_checkpoint(data, progress=progress)
    return ProbeSetup(
        checkpoint=checkpoint, bundle=load_dataset(config.dataset, config.data_dir),
        config=ProbeConfig(steps=config.probe_steps, seeds=config.probe_seeds,
                           error_model=config.error_model, seed=config.seed),
        error_params=device.error_params if device else ErrorModelParams(),
        row_bytes=device.row_bytes if device else 2048,
        device=resolve_device(config.device),
        cache_dir=Path(config.results_dir) / "probe_cache")


def run_search(prepared: Prepared, *, progress: Progress | None = None,
               notice: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or join, or resume) the study until it holds ``trials`` complete trials (or this
    worker ran ``trials_per_worker``); write every output. ``notice`` hears which study in
    which storage once it is open."""
    config = prepared.config
    storage = open_storage(prepared.storage_url, heartbeat_interval_s=config.heartbeat_interval,
                           grace_period_s=config.grace_period)
    with _single_writer(prepared.storage_url):
        study, created = open_study(name=prepared.study_name, storage=storage,
                              sampler=make_sampler(config.sampler, worker_seed(config)),
                              identity=prepared.identity, context=prepared.context)
        if notice is not None:
            notice(f"study {prepared.study_name} in {shown_url(prepared.storage_url)}")
        prepared.out_dir.mkdir(parents=True, exist_ok=True)
        run_record = resolved_config(prepared)
        if created or not (prepared.out_dir / "config.json").is_file():
            write_json(prepared.out_dir / "config.json", run_record)  # the study's settings
        _append_run(prepared.out_dir / "runs.jsonl", run_record)
        with SignalGuard() as guard:
            try:
                _work(study, prepared, progress, guard)
                guard.check()
                summary = finish(study, prepared, test_split=True,
                                 interruptible=guard.interruptible)
                guard.check()
                return summary
            except KeyboardInterrupt as exc:
                guard.hold()
                terminated = isinstance(exc, Terminated)
                # a second signal stops the writing (each file is replaced whole or not at all)
                with contextlib.suppress(KeyboardInterrupt), guard.interruptible():
                    finish(study, prepared, test_split=False)
                raise SearchInterrupted("SIGTERM" if terminated else "interrupted",
                                        143 if terminated else 130, prepared.out_dir) from None


def _work(study: optuna.Study, prepared: Prepared, progress: Progress | None,
          guard: SignalGuard) -> None:
    """One trial at a time until the study's budget (or this worker's) is met.

    While the budget is only reached by counting trials still running elsewhere, wait: if
    their worker died, the heartbeat fails them after the grace period and their parameters
    come back as waiting trials, which this worker then runs.
    """
    config = prepared.config
    per_worker = config.trials_per_worker
    objective = make_objective(prepared.context, budget=None if per_worker else config.trials,
                               guard=guard)
    callback = _ProgressCallback(prepared, progress) if progress is not None else None
    orphans = OrphanCheck(prepared.storage_url, config.grace_period)

    def look_for_dead_workers(study: optuna.Study) -> None:
        fail_stale(study)
        orphans(study)

    runner = TrialRunner(guard, [callback] if callback else [],
                         periodic=look_for_dead_workers,
                         periodic_interval_s=config.heartbeat_interval,
                         heartbeat_interval_s=(config.heartbeat_interval
                                               if journal_path(prepared.storage_url) else None))
    ran = 0
    while True:
        guard.check()
        if per_worker is not None:
            if ran >= per_worker:
                break
        else:
            complete, running = _counts(study)
            if complete >= config.trials:
                break
            if complete + running >= config.trials:
                look_for_dead_workers(study)
                with guard.interruptible():
                    time.sleep(POLL_S)
                continue
        runner.run(study, objective)
        ran += 1
    if callback is not None:
        callback.report(study)


POLL_S = 1.0


def worker_index(config: SearchConfig) -> int:
    """--worker, else the scheduler's task index (SLURM), else 0."""
    if config.worker is not None:
        return config.worker
    for variable in ("SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "PBS_ARRAYID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def worker_seed(config: SearchConfig) -> int:
    """Each worker samples from its own stream; worker 0 keeps the plain --seed."""
    return config.seed + 1_000_003 * worker_index(config)


@contextlib.contextmanager
def _single_writer(storage_url: str):
    """SQLite serves one worker: a second one on the same file is refused with a hint."""
    database = sqlite_path(storage_url)
    if database is None:
        yield
        return
    lock_path = Path(str(database.resolve()) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another dse worker is using {storage_url}; SQLite serves one "
                              "worker: for several, use --storage postgresql://... or "
                              "journal:PATH") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _counts(study: optuna.Study) -> tuple[int, int]:
    """Complete and running trials, in one storage query."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    trials = study.get_trials(deepcopy=False, states=states)
    complete = sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return complete, len(trials) - complete


class _ProgressCallback:
    """After a trial: trials done, front size and the fastest front point so far.

    Redraws at most every ``PROGRESS_INTERVAL_S`` (``report`` draws the last state), reading
    the study without copying it, so that long studies on a shared database stay cheap to
    watch.
    """

    def __init__(self, prepared: Prepared, progress: Progress) -> None:
        self.prepared = prepared
        self.progress = progress
        self.last_s = -np.inf

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if time.monotonic() - self.last_s >= PROGRESS_INTERVAL_S:
            self.report(study)

    def report(self, study: optuna.Study) -> None:
        self.last_s = time.monotonic()
        total = self.prepared.config.trials
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        front = front_trials(complete, list(self.prepared.context.objectives))
        status = f"front {len(front)}"
        if front:
            fastest = metrics_of(min(front, key=lambda t: metrics_of(t).get("latency_s", np.inf)))
            status += f", fastest {fastest['latency_s'] * 1e3:.3f} ms"
            if "accuracy" in fastest:
                status += f" at {fastest['accuracy']:.2%}"
        self.progress(min(len(complete), total), total, status)


PROGRESS_INTERVAL_S = 0.5


def finish(study: optuna.Study, prepared: Prepared, *, test_split: bool,
           interruptible: Callable[[], ContextManager[Any]] = contextlib.nullcontext
           ) -> dict[str, Any]:
    """Test accuracy of the front (once; the probes run inside ``interruptible()``), then
    tables and plots."""
    if test_split and prepared.probe_setup is not None:
        _test_accuracy(study, prepared, interruptible)
    summary = write_outputs(study, prepared.out_dir, prepared.config.max_accuracy_drop)
    return {**summary, "results_dir": str(prepared.out_dir),
            "storage": shown_url(prepared.storage_url)}


def _test_accuracy(study: optuna.Study, prepared: Prepared,
                   interruptible: Callable[[], ContextManager[Any]]) -> None:
    """Probe the front points on the test split (the search itself only saw validation)."""
    frame = trials_frame(study)
    known = dict(study.user_attrs.get(TEST_ACCURACY_ATTR, {}))
    setup = dataclasses.replace(prepared.probe_setup, config=dataclasses.replace(
        prepared.probe_setup.config, split="test"))
    for _, row in frame[frame["is_pareto"]].iterrows():
        if str(row["trial"]) in known:
            continue
        trial = study.trials[int(row["trial"])]
        candidate = suggest_candidate(optuna.trial.FixedTrial(trial.params),
                                      prepared.context.space)
        cost = candidate_cost(candidate, prepared.context)
        with interruptible():
            result = probe(ProbeCandidate(candidate.n_analog,
                                          tuple(map(float, cost.weight_ber)),
                                          tuple(map(float, cost.activation_ber))), setup=setup)
        known[str(row["trial"])] = result.accuracy_mean
    study.set_user_attr(TEST_ACCURACY_ATTR, known)


def write_outputs(study: optuna.Study, out_dir: Path, max_drop_pp: float | None, *,
                  x: str | None = None, y: str | None = None, color: str | None = None
                  ) -> dict[str, Any]:
    summary = write_tables(study, out_dir, max_drop_pp=max_drop_pp)
    frame = trials_frame(study)
    objectives = list(study.user_attrs.get("objectives", {}))
    layers = _layers(study)
    summary["plots"] = [str(p) for p in write_plots(frame, objectives, layers, out_dir,
                                                    x=x, y=y, color=color)]
    return summary


def _layers(study: optuna.Study) -> list[tuple[str, int]]:
    config = study.user_attrs.get("dse_config", {})
    try:
        table = load_workload(config["network"], config["dataset"]).table
    except (ConfigError, KeyError):
        return []
    return list(zip(table.name, (int(c) for c in table.cout)))


def resolved_config(prepared: Prepared) -> dict[str, Any]:
    import torch
    return {
        "study": prepared.study_name, "storage": shown_url(prepared.storage_url),
        "config": {**asdict(prepared.config),
                   "storage": shown_url(prepared.config.storage or prepared.storage_url)},
        "identity": prepared.identity,
        "objectives": {name: OBJECTIVES[name] for name in prepared.context.objectives},
        "baseline_accuracy": prepared.context.baseline_accuracy,
        "versions": {"dse": dse.__version__, "optuna": optuna.__version__,
                     "numpy": np.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "git_revision": _git_revision(),
    }


def _git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
