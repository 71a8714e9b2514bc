"""``dse search``: build the problem once, run an engine into the study, write the results."""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import optuna

from dse.accuracy import AccuracyModel, CheckedEstimator
from dse.accuracy.defaults import check_finetune_steps
from dse.commands.confirm import confirm_points, probe_request
from dse.commands.inspect import stored_location
from dse.commands.reports import ConfirmationReport
from dse.config import SearchConfig, default_study_name, sha256_of, steps_for_epochs
from dse.engines import (
    Budget,
    EngineJob,
    EngineSpec,
    Progress,
    Stage,
    engine_spec,
    make_engine,
)
from dse.evaluate import cost_metrics
from dse.host import worker_identity
from dse.problem import Limits, Problem, build_problem, resolve_dram
from dse.results.files import check_not_folders, check_writable_folder, write_json
from dse.results.ledger import (
    DATA_DIGEST,
    PROBE_SETTINGS_ATTR,
    Ledger,
    baseline_candidates,
    bind_engine_settings,
    check_bound,
    open_ledger,
)
from dse.results.location import check_folder_is_ours, storage_record, study_target
from dse.results.outputs import keep_margin, write_outputs
from dse.results.provenance import append_run, resolved_config
from dse.signals import SignalGuard, Terminated
from dse.storage.journal import TornJournal
from dse.storage.storage import (
    StorageConnectionLost,
    check_storage_file,
    default_storage_url,
    in_memory,
    open_storage,
    shown_url,
    single_writer,
    sqlite_path,
)
from dse.threads import HostWorkers, ThreadPolicy
from hw_models import ConfigError, Soc, load_soc
from hw_models.dram import ber_model_sha256, dram_preset_path

logger = logging.getLogger(__name__)

# the workers that share a host's CPUs: every dse search on it, whatever its study (two
# studies side by side each taking every core slow each other down 5x)
SEARCH_WORKERS = "dse search"

# written into the results folder before the first trial (checked before training)
STUDY_FILES = ("config.json", "runs.jsonl")


class SearchInterrupted(Exception):
    """The search stopped on a signal; results were written from what exists."""

    def __init__(self, signal_name: str, exit_code: int, out_dir: Path) -> None:
        super().__init__(f"{signal_name}: stopped; completed trials are kept and the results "
                         f"in {out_dir} are written from them")
        self.exit_code = exit_code


@dataclass(frozen=True)
class Resolved:
    """A search with everything resolved that needs no data, network or storage: checked
    once, then shared by the thread set-up, the preparation, the run and the confirmation.

    ``config`` holds the engine's settings and, once prepared, the probe's steps (from
    ``--finetune-epochs``)."""

    config: SearchConfig
    objectives: tuple[str, ...]
    engine: EngineSpec
    soc: Soc
    dram: str                       # the DRAM device's name ("none": no DRAM)
    study_name: str
    storage_url: str

    @property
    def out_dir(self) -> Path:
        return Path(self.config.cluster.results_dir) / self.study_name


def resolve(config: SearchConfig) -> Resolved:
    """Check every setting, fill in the engine's settings, load the SoC preset and name the
    study and its storage: once per search."""
    objectives = config.validate()
    engine = engine_spec(config.search.engine)
    config = config.replace(engine_settings=engine_settings(config, engine))
    soc = load_soc(config.hardware.hw)
    dram = resolve_dram(config.hardware.dram, soc)
    if dram == "none" and config.hardware.partitions != 1:
        raise ConfigError(f"--partitions {config.hardware.partitions} divides a DRAM device; "
                          "not with --dram none")
    engine.check_search(config.search.engine_settings, objectives=objectives,
                        probe=config.accuracy.accuracy_estimator is None, dram=dram)
    workload, cluster = config.workload, config.cluster
    study_name = cluster.study or default_study_name(workload.network, workload.dataset,
                                                     config.hardware.hw, dram)
    storage_url = cluster.storage or default_storage_url(cluster.results_dir, study_name)
    if in_memory(storage_url):  # config.json would name a study no later command can open
        raise ConfigError(f"--storage {storage_url} keeps the study in this process's memory "
                          "only, and the results folder could never read it again: give a "
                          "file (sqlite:///PATH, journal:PATH) or a database server")
    return Resolved(config, objectives, engine, soc, dram, study_name, storage_url)


@dataclass(frozen=True)
class Prepared:
    """A validated search, ready to run: the problem, its accuracy model, where it goes."""

    config: SearchConfig
    problem: Problem
    accuracy: AccuracyModel | None
    study_name: str
    storage_url: str
    out_dir: Path
    identity: dict[str, Any]
    test_estimator: Any = None       # the probe on the test split (None: no test accuracy)
    storage: Any = None              # the storage, once opened (None: opened by the run)
    engine: EngineSpec | None = None  # the engine's spec (None: looked up by its name)


def prepare(search: SearchConfig | Resolved, *, progress: Progress | None = None,
            step_progress: Progress | None = None) -> Prepared:
    """Check everything that needs files, data or the storage and build the problem (this
    trains the checkpoint if needed: ``progress`` hears its steps). ``step_progress`` hears
    every probe's fine-tune steps, the search's and the confirmation's."""
    resolved = search if isinstance(search, Resolved) else resolve(search)
    config, objectives, engine = resolved.config, resolved.objectives, resolved.engine
    out_dir, storage_url = resolved.out_dir, resolved.storage_url
    check_writable_folder(out_dir, what="results folder", hint="pass another --results-dir")
    check_not_folders(out_dir, STUDY_FILES, hint="pass another --results-dir")
    check_folder_is_ours(out_dir, storage_url, resolved.study_name, stored_location)
    limits = config.limits
    workload, hardware, accuracy_config = config.workload, config.hardware, config.accuracy
    data_sha256 = None
    if "accuracy" in objectives and accuracy_config.accuracy_estimator is None:
        from dse.accuracy.probe_estimator import data_identity
        from networks.datasets import load_dataset
        bundle = load_dataset(workload.dataset, workload.data_dir,  # no data: fail before
                              download=workload.download)  # anything else
        data_sha256 = data_identity(bundle, config.cluster.results_dir)
        if accuracy_config.finetune_epochs is not None:  # from here on the probe's steps
            epochs, images = accuracy_config.finetune_epochs, len(bundle.split("train").labels)
            steps = steps_for_epochs(epochs, images)  # stand for it
            check_finetune_steps(epochs, steps, images)
            config = config.replace(probe_steps=steps)
    problem = build_problem(network=workload.network, dataset=workload.dataset,
                            soc=resolved.soc, dram=resolved.dram, vendor=hardware.vendor,
                            ber_quantile=hardware.ber_quantile, objectives=objectives,
                            limits=Limits(limits.max_accuracy_drop_pp, limits.latency_budget_s,
                                          limits.energy_budget_j, limits.drop_rule),
                            partitions=hardware.partitions)
    if problem.needs_accuracy and accuracy_config.accuracy_estimator is None:
        from dse.accuracy.probe_estimator import resolve_device
        config = config.replace(device=resolve_device(accuracy_config.device))
    storage = None
    database = sqlite_path(storage_url)
    if database is None or database.is_file():  # a new SQLite file is made only to be used
        storage = open_storage(  # a bad URL or an unreachable database fails before training
            storage_url, heartbeat_interval_s=config.cluster.heartbeat_interval_s,
            grace_period_s=config.cluster.grace_period_s)
    else:
        check_storage_file(database, storage_url)
    check_costs(problem)  # a preset whose costs overflow fails before training
    if engine.check is not None:  # e.g. a split that does not fit: before training
        engine.check(config.search.engine_settings, problem)
    if storage is not None and data_sha256 is not None:  # other data: refused before training
        check_bound(storage, resolved.study_name, {DATA_DIGEST: data_sha256})
    accuracy, test_estimator = None, None
    contents: dict[str, str | None] = {}  # the checkpoint's and the data's digests, quantisers
    if problem.needs_accuracy:
        accuracy, test_estimator, contents = _accuracy_model(
            config, problem, progress, step_progress)
    identity = config.identity(resolved.dram, hw_sha256=resolved.soc.sha256,
                               dram_sha256=sha256_of(dram_preset_path(resolved.dram)),
                               ber_model_sha256=(None if resolved.dram == "none"
                                                 else ber_model_sha256()),
                               **contents)
    return Prepared(config, problem, accuracy, resolved.study_name, storage_url, out_dir,
                    identity, test_estimator, storage, engine)


@contextlib.contextmanager
def worker_threads(search: SearchConfig | Resolved) -> Iterator[ThreadPolicy]:
    """This worker's torch threads, shared with every ``dse search`` worker on this host,
    whatever its study, from the start (before the baseline is trained); applied on
    entry."""
    resolved = search if isinstance(search, Resolved) else resolve(search)
    with HostWorkers(SEARCH_WORKERS) as workers:
        policy = ThreadPolicy(resolved.config.cluster.threads, workers)
        policy.refresh()
        yield policy


def check_costs(problem: Problem) -> None:
    """Cost the baseline mappings once: a preset that gives a non-finite total is an error
    (naming it) before any study is created."""
    for _, candidate in baseline_candidates(problem):
        cost_metrics(candidate, problem)


def _accuracy_model(config: SearchConfig, problem: Problem, progress: Progress | None,
                    step_progress: Progress | None = None
                    ) -> tuple[AccuracyModel, Any, dict[str, str | None]]:
    """The probe (or the user's estimator) with its all-digital baseline measured; the
    probe's test-split twin and the digests of the checkpoint's tensors and of the data
    (``checkpoint_sha256``, ``data_sha256``; none for the user's estimator)."""
    from dse.accuracy.probe_estimator import with_baseline
    settings = config.accuracy
    if settings.accuracy_estimator is not None:
        from networks.zoo import import_callable
        estimator = CheckedEstimator(
            import_callable(settings.accuracy_estimator, what="accuracy estimator"),
            settings.accuracy_estimator)
        model = with_baseline(estimator, problem.table.n_layers)
        assert model.baseline is not None  # with_baseline keeps the measurement
        if config.limits.drop_rule == "upper" and not all(map(math.isfinite,
                                                       model.baseline.interval())):
            raise ConfigError(f"--drop-rule upper needs accuracy intervals; the accuracy "
                              f"estimator '{settings.accuracy_estimator}' gives none (return "
                              "per-image 'correct' or 'ci_low'/'ci_high' in its ProbeResult)")
        return model, None, {}
    from dse.accuracy.probe_estimator import ProbeEstimator, probe_setup
    from networks.quantize import QUANTIZER_VERSION
    data, probe_config = probe_request(
        config.probe_settings(), results_dir=config.cluster.results_dir,
        data_dir=config.workload.data_dir, download=config.workload.download,
        device=settings.device)
    probe = ProbeEstimator(probe_setup(data, probe_config, problem.device, progress=progress,
                                       batch=settings.probe_batch), on_step=step_progress)
    confirming = probe.confirming(
        steps=config.confirmation.steps(settings.probe_steps),
        finetune_seeds=config.confirmation.confirm_seeds)
    return (with_baseline(probe, problem.table.n_layers), confirming,
            {"checkpoint_sha256": probe.setup.checkpoint.tensors_sha256,
             "data_sha256": probe.setup.data_sha256, "quantizer_version": QUANTIZER_VERSION})


def engine_settings(config: SearchConfig, spec: EngineSpec | None = None) -> Any:
    """The engine's settings: as given, else its defaults (checked when made)."""
    spec = spec or engine_spec(config.search.engine)
    given = config.search.engine_settings
    if given is None:
        return spec.settings()
    if not isinstance(given, spec.settings):
        raise ConfigError(f"--engine {spec.name} takes {spec.settings.__name__}, not "
                          f"{type(given).__name__}")
    return given


def run_search(prepared: Prepared, *, progress: Progress | None = None,
               notice: Callable[[str], None] | None = None,
               threads: ThreadPolicy | None = None,
               confirm_progress: Progress | None = None,
               stage: Stage | None = None,
               announce: Callable[[dict[str, Any]], None] | None = None) -> ConfirmationReport:
    """Run (or join, or resume) the study until it holds ``trials`` complete trials (or this
    worker ran ``trials_per_worker``); confirm the front and the baselines on the test split
    (unless ``--no-confirm``); write every output. ``notice`` hears which study in which
    storage once it is open; ``threads`` is re-applied before every trial.

    ``progress`` is told the trials, ``stage`` opens the progress of the long work inside
    one (``EngineJob.stage``), ``confirm_progress`` is told the confirmed points and
    ``announce`` hears the confirmation's plan (``confirmation_plan``) before it starts."""
    config, cluster = prepared.config, prepared.config.cluster
    storage = prepared.storage if prepared.storage is not None else open_storage(
        prepared.storage_url, heartbeat_interval_s=cluster.heartbeat_interval_s,
        grace_period_s=cluster.grace_period_s)
    with single_writer(prepared.storage_url):
        study, created = open_ledger(
            name=prepared.study_name, storage=storage, identity=prepared.identity,
            problem=prepared.problem,
            budget=None if cluster.trials_per_worker is not None else config.search.trials)
        engine = prepared.engine or engine_spec(config.search.engine)
        bind_engine_settings(study, prepared.study_name, engine.name,
                             engine.binding(config.search.engine_settings), engine.removed)
        if notice is not None:
            notice(f"study {prepared.study_name} in {shown_url(prepared.storage_url)}")
        ledger = Ledger(study, prepared.problem)
        if cluster.trials_per_worker is None and \
                (held := ledger.complete_count()) >= config.search.trials:
            logger.warning("study %s already holds %d complete trials (--trials %d): this "
                           "run searches nothing; raise --trials to search further",
                           prepared.study_name, held, config.search.trials)
        if prepared.problem.needs_accuracy and PROBE_SETTINGS_ATTR not in study.user_attrs:
            study.set_user_attr(PROBE_SETTINGS_ATTR, config.probe_settings())
        prepared.out_dir.mkdir(parents=True, exist_ok=True)
        run_record = run_provenance(prepared)
        if created or not (prepared.out_dir / "config.json").is_file():
            write_json(prepared.out_dir / "config.json", run_record)  # the study's settings
        append_run(prepared.out_dir / "runs.jsonl", run_record)
        with SignalGuard() as guard:
            try:
                job = EngineJob(problem=prepared.problem, ledger=ledger,
                                budget=Budget(config.search.trials,
                                              cluster.trials_per_worker),
                                seed=config.worker_seed(), accuracy=prepared.accuracy,
                                guard=guard, progress=progress, stage=stage,
                                before_trial=_worker_attrs(threads))
                make_engine(engine.name, config.search.engine_settings,
                            problem=prepared.problem, study=study).run(job)
                guard.check()
                summary = finish(study, prepared, test_split=config.confirmation.confirm,
                                 interruptible=guard.interruptible,
                                 progress=confirm_progress, announce=announce)
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
            except (StorageConnectionLost, TornJournal) as exc:
                guard.hold()
                raise type(exc)(f"{exc}; {_results_after_failure(study, prepared)}") from None


def _results_after_failure(study: optuna.Study, prepared: Prepared) -> str:
    """Write the results from what the storage holds, if it answers again; say so."""
    resume = "the study keeps its finished trials (the same command resumes it)"
    try:
        finish(study, prepared, test_split=False)
    except StorageConnectionLost:
        return (f"{resume}; the results in {prepared.out_dir} could not be written (the "
                "database still does not answer): `dse pareto` writes them once it does")
    except Exception as exc:
        return (f"{resume}; the results in {prepared.out_dir} could not be written "
                f"({type(exc).__name__}: {' '.join(str(exc).split())})")
    return f"{resume}; the results in {prepared.out_dir} are written from them"


def _worker_attrs(policy: ThreadPolicy | None) -> Callable[[], dict[str, Any]]:
    def attrs() -> dict[str, Any]:
        identity = worker_identity()
        if policy is not None:
            identity["threads"] = policy.refresh()
        return identity
    return attrs


def run_provenance(prepared: Prepared) -> dict[str, Any]:
    """config.json / runs.jsonl: the settings, where the study lives (relative to the
    results folder when it is inside it), this worker's index and seed."""
    config = prepared.config
    location = storage_record(prepared.storage_url, prepared.out_dir)
    record = resolved_config(
        study=prepared.study_name, storage_shown=location["storage"], config=config,
        identity=prepared.identity, objectives=prepared.problem.objectives,
        baseline_accuracy=(None if prepared.accuracy is None
                           else prepared.accuracy.baseline_accuracy),
        extra={"storage": shown_url(config.cluster.storage or prepared.storage_url),
               "worker_index": config.cluster.index(), "worker_seed": config.worker_seed()})
    return {**record, **location}


def finish(study: optuna.Study, prepared: Prepared, *, test_split: bool,
           interruptible: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
           progress: Progress | None = None,
           announce: Callable[[dict[str, Any]], None] | None = None) -> ConfirmationReport:
    """Confirm the front and the baselines on the test split (each point once; the probes
    run inside ``interruptible()``), then write the tables and plots."""
    confirmation = None
    if test_split and prepared.test_estimator is not None:
        confirmation = confirm_points(study, prepared.problem, prepared.test_estimator,
                                      prepared.test_estimator.settings(),
                                      interruptible=interruptible, progress=progress,
                                      announce=announce)
    keep_margin(study, prepared.config.limits.equivalence_margin_pp)
    summary = write_outputs(study, prepared.out_dir, target=study_target(
        prepared.out_dir, prepared.storage_url, prepared.study_name), problem=prepared.problem)
    return ConfirmationReport(**summary, confirmation=confirmation,
                              results_dir=str(prepared.out_dir),
                              storage=shown_url(prepared.storage_url))
