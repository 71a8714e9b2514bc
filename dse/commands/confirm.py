"""``dse confirm`` and the end of a search: the front and the baselines on the test split.

Each point is re-probed with the confirmation's longer fine-tune and seeds and stored in the
study at once (``dse.results.confirmation``), so a stopped confirmation resumes without
re-probing what it finished, and several workers confirming the same study share the work:
a point another live worker has claimed is left to it (the claim is decided and recorded in
one step: two workers never both claim a point).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import optuna

from dse.accuracy import AccuracyEstimator
from dse.accuracy.abilities import Batched, delivered, measure_many
from dse.accuracy.stats import LEVEL
from dse.commands.reports import ConfirmationReport
from dse.config import check_probe_batch
from dse.evaluate import candidate_cost, probe_candidate
from dse.problem import Problem
from dse.results.confirmation import (
    CLAIM_PREFIX,
    RECORD_PREFIX,
    REFERENCE,
    SETTINGS_ATTR,
    record_of,
)
from dse.results.ledger import (
    BASELINE_ATTR,
    CONFIG_ATTR,
    DELIVERED_WEIGHTS_ATTR,
    METRICS_ATTR,
    PROBE_SETTINGS_ATTR,
    objectives_of,
    trial_candidate,
)
from dse.results.tables import trials_frame
from dse.storage.atomic import set_study_attr_unless
from hw_models.errors import ConfigError

if TYPE_CHECKING:  # the probe loads torch: imported where it is built
    from dse.accuracy.probe_estimator import ProbeEstimator

CLAIM_STALE_S = 6 * 3600  # a claim from another host older than this is taken over

Progress = Callable[[int, int, str], None]


def points_to_confirm(study: optuna.Study) -> list[int]:
    """Trial numbers: the all-digital baseline first, the other baselines, then the front."""
    frame = trials_frame(study)
    if frame.empty:
        return []
    done = frame[frame["state"] == "COMPLETE"]
    bases = done[done["is_baseline"]].sort_values("trial")
    order = ([int(t) for t in bases.loc[bases["baseline"] == REFERENCE, "trial"]]
             + [int(t) for t in bases.loc[bases["baseline"] != REFERENCE, "trial"]])
    front = [int(t) for t in done.loc[done["is_pareto"] & ~done["is_baseline"], "trial"]]
    return order + sorted(front)


def _alive(claim: Any, now: float) -> bool:
    """Whether ``claim`` ({host, pid, time}) belongs to a worker that may still be at it."""
    if not isinstance(claim, dict) or not isinstance(claim.get("time"), (int, float)):
        return False
    if claim.get("host") == socket.gethostname() and isinstance(claim.get("pid"), int):
        if claim["pid"] == os.getpid():
            return False  # this process's own (an earlier pass of it)
        try:
            os.kill(claim["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return now - claim["time"] < CLAIM_STALE_S


def confirm_points(study: optuna.Study, problem: Problem, estimator: AccuracyEstimator,
                   settings: dict[str, Any], *,
                   interruptible: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
                   progress: Progress | None = None,
                   announce: Callable[[dict[str, Any]], None] | None = None
                   ) -> dict[str, Any]:
    """Probe every point of ``points_to_confirm`` not yet confirmed with ``settings``;
    returns how many were measured now, found done, or left to another worker.

    ``announce`` hears the ``confirmation_plan`` first (when there are points);
    ``progress`` is told (points done, points, status) before each point to measure, the
    points found done counted from the start (so that a resumed confirmation's rate is
    that of its probes), and once at the end."""
    if study.user_attrs.get(SETTINGS_ATTR) != settings:
        study.set_user_attr(SETTINGS_ATTR, settings)  # records of other settings no longer count
    points = points_to_confirm(study)
    if announce is not None and points:
        announce(confirmation_plan(study, points, settings))
    found = [n for n in points if _confirmed(study.user_attrs, n, settings)]
    trials = study.get_trials(deepcopy=False)
    counts = {"measured": 0, "already": len(found), "left_to_others": 0}
    pending = [n for n in points if n not in found]
    size = estimator.group_size() if isinstance(estimator, Batched) else 1
    handled = 0
    for start in range(0, len(pending), size):
        group = pending[start:start + size]
        if progress is not None:
            progress(len(found) + handled, len(points), _group_status(trials, group))
        handled += len(group)
        claimed = []
        for number in group:
            if claim_point(study, number, settings):
                claimed.append(number)
                continue
            # re-read: other workers may have confirmed it meanwhile
            done = _confirmed(study.user_attrs, number, settings)
            counts["already" if done else "left_to_others"] += 1
        # points measured from the weights their engine delivered start from those
        by_weights: dict[str, list[int]] = {}
        for number in claimed:
            weights = trials[number].user_attrs.get(DELIVERED_WEIGHTS_ATTR)
            by_weights.setdefault(json.dumps(weights, sort_keys=True), []).append(number)
        for numbers in by_weights.values():
            weights = trials[numbers[0]].user_attrs.get(DELIVERED_WEIGHTS_ATTR)
            measure = delivered(estimator, weights)
            candidates = []
            for number in numbers:
                candidate = trial_candidate(trials[number], problem.space)
                candidates.append(probe_candidate(candidate, candidate_cost(candidate, problem)))
            with interruptible():
                results = measure_many(measure, candidates)
            for number, result in zip(numbers, results):
                record = record_of(result, settings)
                if isinstance(weights, dict):  # measured from the weights its engine delivered
                    record["from_weights_sha256"] = weights.get("tensors_sha256")
                study.set_user_attr(f"{RECORD_PREFIX}{number}", record)
                counts["measured"] += 1
    if progress is not None and points:
        progress(len(points), len(points), "done")
    return {"points": len(points), **counts}


def _group_status(trials: list[Any], group: list[int]) -> str:
    """The progress line's status for the points of ``group``: "trial 3 (all-digital)" for
    one, "trials 3-9 (7 points)" for several."""
    if len(group) == 1:
        baseline = trials[group[0]].user_attrs.get(BASELINE_ATTR)
        return f"trial {group[0]}" + (f" ({baseline})" if baseline else "")
    return f"trials {group[0]}-{group[-1]} ({len(group)} points together)"


def claim_point(study: optuna.Study, number: int, settings: dict[str, Any]) -> bool:
    """Claim trial ``number``'s confirmation for this worker, unless it is confirmed with
    ``settings`` or another live worker has claimed it; of workers claiming it at once,
    exactly one wins (the study decides and records the claim in one step)."""
    key = f"{CLAIM_PREFIX}{number}"

    def taken(attrs: dict[str, Any]) -> bool:
        return _confirmed(attrs, number, settings) or _alive(attrs.get(key), time.time())
    return set_study_attr_unless(study, key, {
        "host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
        "token": uuid.uuid4().hex}, taken)


def _confirmed(attrs: dict[str, Any], number: int, settings: dict[str, Any]) -> bool:
    record = attrs.get(f"{RECORD_PREFIX}{number}")
    return isinstance(record, dict) and record.get("settings") == settings


def confirmation_plan(study: optuna.Study, points: list[int], settings: dict[str, Any]
                      ) -> dict[str, Any]:
    """What confirming ``points`` with ``settings`` takes: the points (baselines among
    them), those already confirmed, each point's fine-tunes, and a rough time
    (``estimate_s``; None when nothing measured gives one).

    The time comes from the points confirmed so far with these settings (the median of
    their seconds), else from the search's own probes (the median seconds per fine-tune
    step of those measured, not read from the cache, evaluation included) times the
    confirmation's steps: rough, since the test split and the device may differ."""
    attrs = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    done = [n for n in points if _confirmed(attrs, n, settings)]
    steps, seeds = settings.get("steps"), settings.get("finetune_seeds")
    per_point_s, per_step_s = _seconds_per_point(study, done, steps, seeds)
    left = len(points) - len(done)
    return {"points": len(points), "already": len(done), "to_measure": left,
            "baselines": sum(BASELINE_ATTR in trials[n].user_attrs for n in points),
            "steps": steps, "finetune_seeds": seeds,
            "error_seeds": settings.get("error_seeds"),
            "seconds_per_step": per_step_s,
            "estimate_s": None if per_point_s is None else left * per_point_s,
            "estimate_from": None if per_point_s is None else (
                "confirmed" if per_step_s is None else "search")}


def _seconds_per_point(study: optuna.Study, done: list[int], steps: Any, seeds: Any
                       ) -> tuple[float | None, float | None]:
    """(seconds per point, seconds per fine-tune step it rests on; None when it rests on
    the points confirmed so far), or (None, None)."""
    attrs = study.user_attrs
    seconds = [attrs[f"{RECORD_PREFIX}{n}"].get("seconds") for n in done]
    seconds = [s for s in seconds if isinstance(s, (int, float)) and s > 0]
    if seconds:
        return float(statistics.median(seconds)), None
    probe = attrs.get(PROBE_SETTINGS_ATTR)
    if not (isinstance(steps, int) and isinstance(seeds, int) and isinstance(probe, dict)):
        return None, None
    search_steps = probe.get("probe_steps", 0) * probe.get("finetune_seeds", 1)
    measured = [metrics.get("probe_seconds") for metrics in
                (t.user_attrs.get(METRICS_ATTR, {}) for t in study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
                if metrics.get("probed") and not metrics.get("probe_cached")]
    measured = [s for s in measured if isinstance(s, (int, float)) and s > 0]
    if not measured or not search_steps > 0:
        return None, None
    per_step_s = float(statistics.median(measured)) / search_steps
    return per_step_s * steps * seeds, per_step_s


# ---- dse confirm --------------------------------------------------------------------------

def probe_request(settings: dict[str, Any], *, results_dir: str, data_dir: str | None,
                  device: str, download: bool = False) -> tuple[Any, Any]:
    """The probe's data request and its settings from a search's probe settings
    (``SearchConfig.probe_settings``, as the study stores them): one reading of them for
    the search and for ``dse confirm``."""
    from dse.accuracy.defaults import ProbeConfig
    from dse.accuracy.probe_estimator import DataRequest

    data = DataRequest(network=settings["network"], dataset=settings["dataset"],
                       data_dir=data_dir, download=download, results_dir=results_dir,
                       checkpoint=settings.get("checkpoint"), epochs=settings.get("epochs"),
                       device=device)
    config = ProbeConfig(steps=settings["probe_steps"],
                         finetune_seeds=settings["finetune_seeds"],
                         error_seeds=settings["error_seeds"],
                         error_model=settings["error_model"], seed=settings["seed"],
                         interval_level=settings.get("interval_level", LEVEL))
    return data, config


def confirm_report(target: str | None, *, storage: str | None, study_name: str | None,
                   results_dir: str, data_dir: str | None, device: str,
                   confirm_steps: int | None, confirm_seeds: int,
                   margin_pp: float | None = None, probe_batch: int | None = None,
                   progress: Progress | None = None,
                   training_progress: Progress | None = None,
                   step_progress: Progress | None = None,
                   announce: Callable[[dict[str, Any]], None] | None = None
                   ) -> ConfirmationReport:
    """Confirm a study's front and baselines on the test split, then rewrite its outputs.

    ``progress`` is told the points, ``training_progress`` the baseline's training when
    its checkpoint is not cached, ``step_progress`` each probe's fine-tune steps;
    ``announce`` hears the ``confirmation_plan`` before the first point; ``margin_pp``:
    the claims' equivalence margin (``write_outputs``)."""
    from dse.accuracy.verdicts import check_margin
    from dse.commands.inspect import locate
    from dse.config import ConfirmationConfig
    from dse.results.details import problem_of
    from dse.results.location import study_target
    from dse.results.outputs import keep_margin, write_outputs
    from dse.signals import SignalGuard
    from dse.storage.storage import shown_url

    if margin_pp is not None:
        check_margin(margin_pp)
    check_probe_batch(probe_batch)
    confirmation = ConfirmationConfig(confirm_steps=confirm_steps, confirm_seeds=confirm_seeds)
    url, name, folder = locate(target, storage=storage, study_name=study_name,
                               results_dir=results_dir)
    study = _open(url, name)
    if "accuracy" not in objectives_of(study):
        raise ConfigError(f"study '{name}' has no accuracy objective: nothing to confirm")
    stored = study.user_attrs.get(PROBE_SETTINGS_ATTR)
    if not isinstance(stored, dict):
        raise ConfigError(f"study '{name}' does not record its probe's settings (made before "
                          "dse 0.2): it cannot be confirmed")
    if stored.get("accuracy_estimator"):
        raise ConfigError(f"study '{name}' uses the accuracy estimator "
                          f"{stored['accuracy_estimator']}, which has no test split: "
                          "nothing to confirm")
    confirmation.validate(stored["probe_steps"])
    steps = confirmation.steps(stored["probe_steps"])
    frame = trials_frame(study)
    if frame.empty or not frame["is_pareto"].any():
        from dse.results.tables import empty_front_reason
        raise ConfigError(f"study '{name}' has no Pareto front to confirm "
                          f"({empty_front_reason(frame)})")
    with SignalGuard() as guard:
        problem = problem_of(study)
        estimator = _estimator(study, stored, problem, results_dir=_results_root(
            target, folder, results_dir), data_dir=data_dir or stored.get("data_dir"),
            device=device, steps=steps, finetune_seeds=confirm_seeds,
            progress=training_progress, batch=probe_batch).reporting(step_progress)
        try:
            counts = confirm_points(study, problem, estimator, estimator.settings(),
                                    interruptible=guard.interruptible, progress=progress,
                                    announce=announce)
        finally:
            guard.hold()
            with contextlib.suppress(KeyboardInterrupt), guard.interruptible():
                folder.mkdir(parents=True, exist_ok=True)
                keep_margin(study, margin_pp)
                summary = write_outputs(study, folder,
                                        target=study_target(folder, url, name))
        guard.check()
    return ConfirmationReport(**summary, confirmation=counts, results_dir=str(folder),
                              storage=shown_url(url))


def _open(url: str, name: str) -> optuna.Study:
    from dse.commands.inspect import check_stored
    from dse.storage.storage import open_storage, shown_url
    check_stored(url)  # a missing database is not made
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"study '{name}' does not exist in {shown_url(url)}") from None


def _results_root(target: str | None, folder: Path, results_dir: str) -> str:
    """Where the checkpoint cache and the probe cache are: the folder's parent when the
    study was named by its folder, else --results-dir."""
    if target is not None and Path(target).is_dir() and (folder / "config.json").is_file():
        return str(folder.parent)
    return results_dir


def _estimator(study: optuna.Study, stored: dict[str, Any], problem: Problem, *,
               results_dir: str, data_dir: str | None, device: str, steps: int,
               finetune_seeds: int, progress: Progress | None,
               batch: int | None = None) -> ProbeEstimator:
    """The search's probe, rebuilt from the study, on the test split; its checkpoint must
    be the one the study is bound to, and its data too."""
    from dse.accuracy.probe_estimator import ProbeEstimator, probe_setup, request_data_sha256

    data, config = probe_request(stored, results_dir=results_dir, data_dir=data_dir,
                                 device=device)
    bound_data = study.user_attrs.get(CONFIG_ATTR, {}).get("data_sha256")
    if bound_data is not None and request_data_sha256(data) != bound_data:  # before training
        raise ConfigError(f"the data in {data.data_dir} is not the data study "
                          f"'{study.study_name}' was searched with (its SHA-256 differs): "
                          "pass the search's --data-dir")
    setup = probe_setup(data, config, problem.device, progress=progress, batch=batch)
    bound = study.user_attrs.get(CONFIG_ATTR, {}).get("checkpoint_sha256")
    if bound is not None and setup.checkpoint.tensors_sha256 != bound:
        raise ConfigError(f"the checkpoint found for study '{study.study_name}' is not the one "
                          "it was searched with (its tensors differ): pass --results-dir "
                          "where the search kept it")
    return ProbeEstimator(setup).confirming(steps=steps, finetune_seeds=finetune_seeds)
