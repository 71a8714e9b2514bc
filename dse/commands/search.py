"""``dse search``: build the problem once, run an engine into the study, write the results."""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import optuna

from dse.accuracy import AccuracyModel, CheckedEstimator
from dse.commands.confirm import confirm_points, probe_settings
from dse.commands.inspect import stored_location
from dse.commands.reports import ConfirmationReport
from dse.config import (
    SearchConfig,
    default_study_name,
    resolved_confirm_steps,
    steps_for_epochs,
    validate,
    worker_index,
    worker_seed,
)
from dse.engines import Budget, Engine, EngineJob, Progress, Stage, make_engine
from dse.evaluate import cost_metrics
from dse.host import worker_identity
from dse.problem import Limits, Problem, build_problem, resolve_dram
from dse.results.files import check_not_folders, check_writable_folder, write_json
from dse.results.ledger import (
    PROBE_SETTINGS_ATTR,
    Ledger,
    baseline_candidates,
    open_ledger,
)
from dse.results.location import check_folder_is_ours, storage_record, study_target
from dse.results.outputs import write_outputs
from dse.results.provenance import append_run, resolved_config
from dse.signals import SignalGuard, Terminated
from dse.storage.journal import TornJournal
from dse.storage.storage import (
    StorageConnectionLost,
    check_storage_file,
    default_storage_url,
    journal_path,
    open_storage,
    shown_url,
    single_writer,
    sqlite_path,
)
from dse.threads import HostWorkers, ThreadPolicy
from hw_models import ConfigError, load_soc
from hw_models.dram import dram_preset_path
from hw_models.mapping import resolve_split

# written into the results folder before the first trial (checked before training)
STUDY_FILES = ("config.json", "runs.jsonl")


class SearchInterrupted(Exception):
    """The search stopped on a signal; results were written from what exists."""

    def __init__(self, signal_name: str, exit_code: int, out_dir: Path) -> None:
        super().__init__(f"{signal_name}: stopped; completed trials are kept and the results "
                         f"in {out_dir} are written from them")
        self.exit_code = exit_code


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


def prepare(config: SearchConfig, *, progress: Progress | None = None,
            step_progress: Progress | None = None) -> Prepared:
    """Validate everything and build the problem (this trains the checkpoint if needed:
    ``progress`` hears its steps). ``step_progress`` hears every probe's fine-tune steps,
    the search's and the confirmation's."""
    objectives = validate(config)
    engine_for(config, "")  # an unknown engine or sampler fails before any work
    check_engine_objectives(config, objectives)
    soc = load_soc(config.hw)
    dram_name = resolve_dram(config.dram, soc)
    if "dram" in ENGINE_NEEDS.get(config.engine, ()) and dram_name == "none":
        raise ConfigError(f"--engine {config.engine} maps data to DRAM partitions: it needs "
                          "a DRAM device, not --dram none")
    study_name, storage_url = study_location(config)
    out_dir = Path(config.results_dir) / study_name
    check_writable_folder(out_dir, what="results folder", hint="pass another --results-dir")
    check_not_folders(out_dir, STUDY_FILES, hint="pass another --results-dir")
    check_folder_is_ours(out_dir, storage_url, study_name, stored_location)
    limits = Limits(config.max_accuracy_drop_pp, config.latency_budget_s,
                    config.energy_budget_j, config.drop_rule)
    if "accuracy" in objectives and config.accuracy_estimator is None:
        from networks.datasets import load_dataset
        bundle = load_dataset(config.dataset, config.data_dir, download=config.download)  # no
        # data: fail before anything else
        if config.finetune_epochs is not None:  # from here on the probe's steps stand for it
            config = dataclasses.replace(config, probe_steps=steps_for_epochs(
                config.finetune_epochs, len(bundle.split("train").labels)))
    problem = build_problem(network=config.network, dataset=config.dataset, hw=config.hw,
                            dram=dram_name, vendor=config.vendor,
                            ber_quantile=config.ber_quantile, objectives=objectives,
                            limits=limits, partitions=config.partitions)
    from dse.accuracy.probe_estimator import resolve_device
    resolve_device(config.device)
    database = sqlite_path(storage_url)
    if database is None or database.is_file():  # a new SQLite file is made only to be used
        open_storage(storage_url)  # a bad URL or an unreachable database fails before training
    else:
        check_storage_file(database, storage_url)
    check_costs(problem)  # a preset whose costs overflow fails before training
    if config.mapping is not None:  # a bad --mapping fails before training
        resolve_split(config.mapping, problem.table, problem.soc)
    accuracy, test_estimator, checkpoint_sha256 = None, None, None
    if problem.needs_accuracy:
        accuracy, test_estimator, checkpoint_sha256 = _accuracy_model(
            config, problem, progress, step_progress)
    identity = config.identity(dram_name, hw_path=soc.source_path,
                               dram_path=dram_preset_path(dram_name),
                               checkpoint_sha256=checkpoint_sha256)
    return Prepared(config, problem, accuracy, study_name, storage_url, out_dir, identity,
                    test_estimator)


def study_location(config: SearchConfig) -> tuple[str, str]:
    """The study's name and storage URL (defaults: from the settings, SQLite under
    --results-dir)."""
    dram_name = resolve_dram(config.dram, load_soc(config.hw))
    study_name = config.study or default_study_name(config.network, config.dataset,
                                                    config.hw, dram_name)
    return study_name, config.storage or default_storage_url(config.results_dir, study_name)


@contextlib.contextmanager
def worker_threads(config: SearchConfig) -> Iterator[ThreadPolicy]:
    """This worker's torch threads, shared with the workers of the same study on this host
    from the start (before the baseline is trained); applied on entry."""
    validate(config)
    study_name, storage_url = study_location(config)
    with HostWorkers(_host_key(storage_url, study_name)) as workers:
        policy = ThreadPolicy(config.threads, workers)
        policy.refresh()
        yield policy


def check_costs(problem: Problem) -> None:
    """Cost the baseline mappings once: a preset that gives a non-finite total is an error
    (naming it) before any study is created."""
    for _, candidate in baseline_candidates(problem):
        cost_metrics(candidate, problem)


def _accuracy_model(config: SearchConfig, problem: Problem, progress: Progress | None,
                    step_progress: Progress | None = None
                    ) -> tuple[AccuracyModel, Any, str | None]:
    """The probe (or the user's estimator) with its all-digital baseline measured; the
    probe's test-split twin and the digest of the checkpoint's tensors (None for the
    user's estimator)."""
    from dse.accuracy.probe_estimator import with_baseline
    if config.accuracy_estimator is not None:
        from networks.zoo import import_callable
        estimator = CheckedEstimator(
            import_callable(config.accuracy_estimator, what="accuracy estimator"),
            config.accuracy_estimator)
        model = with_baseline(estimator, problem.table.n_layers)
        assert model.baseline is not None  # with_baseline keeps the measurement
        if config.drop_rule == "upper" and not all(map(math.isfinite,
                                                       model.baseline.interval())):
            raise ConfigError(f"--drop-rule upper needs accuracy intervals; the accuracy "
                              f"estimator '{config.accuracy_estimator}' gives none (return "
                              "per-image 'correct' or 'ci_low'/'ci_high' in its ProbeResult)")
        return model, None, None
    from dse.accuracy.probe_estimator import DataRequest, ProbeEstimator, probe_setup
    from networks.finetune import ProbeConfig
    data = DataRequest(network=config.network, dataset=config.dataset,
                       data_dir=config.data_dir, download=config.download,
                       results_dir=config.results_dir, checkpoint=config.checkpoint,
                       epochs=config.epochs, device=config.device)
    probe_config = ProbeConfig(steps=config.probe_steps, finetune_seeds=config.finetune_seeds,
                               error_seeds=config.error_seeds, error_model=config.error_model,
                               seed=config.seed, interval_level=config.interval_level)
    probe = ProbeEstimator(probe_setup(data, probe_config, problem.device, progress=progress),
                           on_step=step_progress)
    confirming = probe.confirming(steps=resolved_confirm_steps(config),
                                  finetune_seeds=config.confirm_seeds)
    return (with_baseline(probe, problem.table.n_layers), confirming,
            probe.setup.checkpoint.tensors_sha256)


def engine_for(config: SearchConfig, storage_url: str) -> Engine:
    if config.engine == "eden":
        return make_engine("eden", mappings=() if config.mapping is None else (config.mapping,),
                           retrain_steps=config.eden_retrain_steps)
    if config.engine in ("odimo", "odimo+eden"):
        from dse.engines.odimo import DEFAULT_LAMBDAS
        weights = DEFAULT_LAMBDAS if config.lambdas is None else parse_floats(
            config.lambdas, "--lambdas")
        extra = ({"retrain_steps": config.eden_retrain_steps}
                 if config.engine == "odimo+eden" else {})
        return make_engine(config.engine, cost_weights=weights,
                           dnas_epochs=config.dnas_epochs, target=config.odimo_target, **extra)
    return make_engine(config.engine, sampler=config.sampler, storage_url=storage_url,
                       heartbeat_interval_s=config.heartbeat_interval_s,
                       grace_period_s=config.grace_period_s)


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """'0.01,0.1, 1' -> (0.01, 0.1, 1.0); one line naming ``option`` on anything else."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tuple(float(part) for part in parts)
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, not '{text}'") from None


# what each engine other than optuna needs: accuracy among the objectives (all of them),
# the built-in probe (the ODiMO search trains on its data), a DRAM device (EDEN maps to it)
ENGINE_NEEDS = {"odimo": {"probe"}, "eden": {"dram"}, "odimo+eden": {"probe", "dram"}}


def check_engine_objectives(config: SearchConfig, objectives: tuple[str, ...]) -> None:
    """An engine that cannot serve the objectives is refused, saying which it serves."""
    if config.mapping is not None and config.engine != "eden":
        raise ConfigError("--mapping names the split --engine eden maps; the other engines "
                          "search the split")
    needs = ENGINE_NEEDS.get(config.engine)
    if needs is None:
        return
    serves = ("accuracy with latency and/or energy"
              + (", on a DRAM device" if "dram" in needs else "")
              + (", with the built-in probe (its search trains on the probe's data)"
                 if "probe" in needs else ""))
    if "accuracy" not in objectives:
        raise ConfigError(f"--engine {config.engine} serves {serves}; not "
                          f"'{config.objectives}'")
    if config.eden_retrain_steps is not None and config.accuracy_estimator is not None:
        raise ConfigError("--eden-retrain-steps sets the built-in probe's fine-tune; not with "
                          "--accuracy-estimator")
    if "probe" in needs and config.accuracy_estimator is not None:
        raise ConfigError(f"--engine {config.engine} serves {serves}; not with "
                          "--accuracy-estimator")


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
    config = prepared.config
    storage = open_storage(prepared.storage_url,
                           heartbeat_interval_s=config.heartbeat_interval_s,
                           grace_period_s=config.grace_period_s)
    with single_writer(prepared.storage_url):
        study, created = open_ledger(
            name=prepared.study_name, storage=storage, identity=prepared.identity,
            problem=prepared.problem,
            budget=None if config.trials_per_worker is not None else config.trials)
        if notice is not None:
            notice(f"study {prepared.study_name} in {shown_url(prepared.storage_url)}")
        if prepared.problem.needs_accuracy and PROBE_SETTINGS_ATTR not in study.user_attrs:
            study.set_user_attr(PROBE_SETTINGS_ATTR, probe_settings(config))
        prepared.out_dir.mkdir(parents=True, exist_ok=True)
        run_record = run_provenance(prepared)
        if created or not (prepared.out_dir / "config.json").is_file():
            write_json(prepared.out_dir / "config.json", run_record)  # the study's settings
        append_run(prepared.out_dir / "runs.jsonl", run_record)
        with SignalGuard() as guard:
            try:
                job = EngineJob(problem=prepared.problem, ledger=Ledger(study, prepared.problem),
                                budget=Budget(config.trials, config.trials_per_worker),
                                seed=worker_seed(config), accuracy=prepared.accuracy,
                                guard=guard, progress=progress, stage=stage,
                                before_trial=_worker_attrs(threads))
                engine_for(config, prepared.storage_url).run(job)
                guard.check()
                summary = finish(study, prepared, test_split=config.confirm,
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


def _host_key(storage_url: str, study_name: str) -> str:
    """The same study on this host, however its storage is spelled (relative or absolute
    journal and SQLite paths)."""
    path = journal_path(storage_url) or sqlite_path(storage_url)
    where = str(path.resolve()) if path is not None else storage_url
    return f"{where}\n{study_name}"


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
        extra={"storage": shown_url(config.storage or prepared.storage_url),
               "worker_index": worker_index(config), "worker_seed": worker_seed(config)})
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
    summary = write_outputs(study, prepared.out_dir, target=study_target(
        prepared.out_dir, prepared.storage_url, prepared.study_name))
    return ConfirmationReport(**summary, confirmation=confirmation,
                              results_dir=str(prepared.out_dir),
                              storage=shown_url(prepared.storage_url))
