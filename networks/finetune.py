"""The fine-tune probe's measurement (torch): a quick fine-tune of one candidate, then its
correctness under DRAM errors, image by image.

``fine_tuned_correctness(candidate, setup)`` starts from the baseline checkpoint, puts each
layer's ``n_analog`` least-ternarisation-error channels (or the named ones) on the analog
array, fine-tunes for ``steps`` steps while the bit error rate of every stored tensor ramps up
geometrically from 1 % of its target to the target (EDEN's curricular retraining; fresh error
masks on every forward pass), then records, image by image, whether the split is classified
correctly under ``error_seeds`` independent error masks. The whole is repeated for
``finetune_seeds`` fine-tunes (other batch orders and training masks), so it returns a
(finetune_seeds, error_seeds, images) boolean array. The same settings and seed give the same
array. Checking the settings, caching results and turning the array into accuracies and
intervals are the caller's (the search's probe estimator).
"""
from __future__ import annotations

import contextlib
import copy
import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence, TypeVar, cast

import numpy as np
import torch
from torch.nn import functional as F

from hw_models.error_models import ErrorModelParams
from networks.datasets import DataBundle
from networks.diana_model import DianaModel
from networks.quantize import QUANTIZER_LR, split_parameters
from networks.stacked import ReplicaErrors, StackedModel, stackable
from networks.train import Checkpoint, correctness, lr_at

RAMP_START = 0.01  # curricular BER starts at 1 % of the target
# A worker thread takes at least this many replicas by default: on the 2-core development
# machine (ResNet8/digits, BER 1e-4) two threads of 1 or 2 replicas each ran 28 and 44
# steps/s against 41 and 49 for one thread's stack of 2 and 4, two threads of 4 ran 70
# against 57 for one stack of 8 (the interpreter is shared; 2026-12-05)
MIN_REPLICAS_PER_WORKER = 4
StepProgress = Callable[[int, int, str], None]  # (fine-tune steps done, in all, status)
T = TypeVar("T")


class FineTuneCandidate(Protocol):
    """What is fine-tuned, per layer (layer-table order): analog channels and the bit error
    rates of the stored weights and activations (dimensionless probabilities per bit);
    ``analog_channels``, when given, names each layer's analog channels (None for a layer:
    the least-ternarisation-error rule)."""

    @property
    def n_analog(self) -> tuple[int, ...]: ...
    @property
    def weight_ber(self) -> tuple[float, ...]: ...
    @property
    def activation_ber(self) -> tuple[float, ...]: ...
    @property
    def analog_channels(self) -> tuple[tuple[int, ...] | None, ...] | None: ...


@dataclass(frozen=True)
class FineTuneConfig:
    """How a candidate is fine-tuned and evaluated (every value given by the caller)."""

    steps: int            # fine-tune steps (0: evaluate the checkpoint as it is)
    batch_size: int       # images per step
    lr: float             # Adam peak learning rate, cosine decay to 0
    ramp_fraction: float  # BER reaches its target after this share of the steps
    finetune_seeds: int   # independent fine-tunes
    error_seeds: int      # error masks per fine-tuned model
    error_model: int      # EDEN error model 0..3
    split: str            # the split evaluated ("val", "test")
    seed: int


@dataclass(frozen=True)
class FineTuneSetup:
    """What stays fixed across the fine-tunes of one study."""

    checkpoint: Checkpoint
    bundle: DataBundle
    config: FineTuneConfig
    error_params: ErrorModelParams
    row_bytes: int
    device: str = "cpu"


def fine_tuned_correctness(candidate: FineTuneCandidate, setup: FineTuneSetup,
                           on_step: StepProgress | None = None) -> np.ndarray:
    """The (finetune_seeds, error_seeds, images) correctness of ``candidate``; ``on_step``
    is told (steps done, steps in all, status) as the fine-tunes run. Without errors every
    error seed agrees, and without fine-tune steps every fine-tune seed does: those are
    measured once and repeated."""
    with single_threaded_ops(setup.device):
        return _fine_tuned_correctness(candidate, setup, on_step)


def _fine_tuned_correctness(candidate: FineTuneCandidate, setup: FineTuneSetup,
                            on_step: StepProgress | None = None) -> np.ndarray:
    config = setup.config
    error_free = (not any(candidate.weight_ber) and not any(candidate.activation_ber)
                  and not any(getattr(candidate, "shortcut_ber", None) or ()))
    finetunes = 1 if config.steps == 0 else config.finetune_seeds
    masks = 1 if error_free else config.error_seeds
    rows = []
    for finetune in range(finetunes):
        seed = derived_seed(config.seed, finetune)
        model = setup.checkpoint.build().to(setup.device)
        model.set_split(candidate.n_analog, candidate.analog_channels)
        _fine_tune(model, candidate, setup, seed=seed,
                   on_step=_step_reporter(on_step, finetune, finetunes, config.steps, masks))
        rows.append([_correct_under_errors(model, candidate, setup,
                                           seed=derived_seed(config.seed, finetune, mask))
                     for mask in range(masks)])
    correct = np.array(rows, dtype=bool)
    return np.broadcast_to(correct, (config.finetune_seeds, config.error_seeds,
                                     correct.shape[2])).copy()


def fine_tuned_correctness_many(candidates: Sequence[FineTuneCandidate], setup: FineTuneSetup,
                                on_step: StepProgress | None = None, *, batch: int,
                                workers: int | None = None) -> list[np.ndarray]:
    """``fine_tuned_correctness`` of every candidate, bit for bit, ``batch`` fine-tunes at a
    time (each fine-tune seed of each candidate is a replica), spread over ``workers``
    threads as ``StackedModel``s of about ``batch / workers`` replicas each
    (``networks.stacked``). By default the workers are torch's threads on the CPU (1 on a
    GPU), each taking ``MIN_REPLICAS_PER_WORKER`` replicas at the least. Every replica's
    operations run on one thread (``single_threaded_ops``), so its results depend neither
    on ``batch`` nor on ``workers``; on the 2-core development machine two threads of 16
    replicas are 1.3-1.6x one stack of 32 on two threads (``bench/probe_throughput.py``).
    ``on_step`` is told (replica steps done, in all, status). A lone replica and ``batch`` 1
    are fine-tuned as plain models, one at a time on one thread; a network that cannot be
    stacked one at a time on torch's threads (its results then depend on their number)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    least = 1  # replicas a worker thread takes at the least
    if workers is None:
        workers = torch.get_num_threads() if setup.device == "cpu" else 1
        least = MIN_REPLICAS_PER_WORKER
    workers = min(workers, batch)
    template = setup.checkpoint.build()
    if not stackable(template):  # no equality to keep: torch's threads, as configured
        return _one_at_a_time(candidates, setup, on_step)
    finetunes = 1 if setup.config.steps == 0 else setup.config.finetune_seeds
    with single_threaded_ops(setup.device):
        if batch == 1 or len(candidates) * finetunes <= 1:  # one replica: the plain model
            return _one_at_a_time(candidates, setup, on_step)
        return _stacked_groups(candidates, setup, on_step, batch, workers, template, least)


def _stacked_groups(candidates: Sequence[FineTuneCandidate], setup: FineTuneSetup,
                    on_step: StepProgress | None, batch: int, workers: int,
                    template: DianaModel, least: int = 1) -> list[np.ndarray]:
    config = setup.config
    finetunes = 1 if config.steps == 0 else config.finetune_seeds
    replicas = [(index, finetune) for index in range(len(candidates))
                for finetune in range(finetunes)]
    masks = [1 if _error_free(c) else config.error_seeds for c in candidates]
    rows: dict[tuple[int, int], list[np.ndarray]] = {}
    total = len(replicas) * config.steps
    for start in range(0, len(replicas), batch):
        chunk = replicas[start:start + batch]
        spread = min(workers, max(1, len(chunk) // least))
        parts = [part for part in np.array_split(np.arange(len(chunk)), spread) if len(part)]
        steps_done = [0] * len(parts)
        lock = threading.Lock()

        def reported(part: int, step: int, chunk_start: int = start,
                     size: int = len(chunk)) -> None:
            if on_step is None or not config.steps:
                return
            with lock:
                steps_done[part] = step
                done = sum(s * len(p) for s, p in zip(steps_done, parts))
                on_step(chunk_start * config.steps + done, total,
                        f"fine-tunes {chunk_start + 1}-{chunk_start + size} of "
                        f"{len(replicas)}, step {min(steps_done)}/{config.steps}")

        def measure(part: int, stop: threading.Event,
                    chunk: list[tuple[int, int]] = chunk) -> list[list[np.ndarray]]:
            members = [chunk[i] for i in parts[part]]
            models = []
            for index, _ in members:
                model = copy.deepcopy(template)
                model.set_split(candidates[index].n_analog, candidates[index].analog_channels)
                models.append(model)
            stacked = StackedModel(models).to(setup.device)
            _fine_tune_stacked(stacked, [candidates[i] for i, _ in members], setup,
                               seeds=[derived_seed(config.seed, f) for _, f in members],
                               on_step=lambda step: reported(part, step), stop=stop)
            found: list[list[np.ndarray]] = [[] for _ in members]
            for mask in range(max(masks[i] for i, _ in members)):
                errors = [None if masks[i] == 1 and _error_free(candidates[i]) else
                          ReplicaErrors(candidates[i].weight_ber, candidates[i].activation_ber,
                                        _shortcut(candidates[i]),
                                        derived_seed(config.seed, f, mask))
                          for i, f in members]
                correct = _stacked_correct_under_errors(stacked, errors, setup)
                for row, (index, _), own in zip(correct, members, found):
                    if mask < masks[index]:
                        own.append(row)
            return found

        for part, found in enumerate(in_threads(measure, len(parts))):
            for member, own in zip(parts[part], found):
                rows[chunk[member]] = own
    results = []
    for index in range(len(candidates)):
        correct = np.array([rows[(index, f)] for f in range(finetunes)], dtype=bool)
        results.append(np.broadcast_to(correct, (config.finetune_seeds, config.error_seeds,
                                                 correct.shape[2])).copy())
    return results


def _one_at_a_time(candidates: Sequence[FineTuneCandidate], setup: FineTuneSetup,
                   on_step: StepProgress | None) -> list[np.ndarray]:
    """Each candidate fine-tuned alone, one after another (in threads, candidates would
    share torch's global generator, which ``_fine_tune`` seeds)."""
    config = setup.config
    finetunes = 1 if config.steps == 0 else config.finetune_seeds
    total = len(candidates) * finetunes * config.steps
    results = []
    for index, candidate in enumerate(candidates):
        reporter = None
        if on_step is not None:
            report, before = on_step, index * finetunes * config.steps

            def reporter(done: int, _: int, status: str, number: int = index) -> None:
                report(before + done, total, f"candidate {number + 1}/{len(candidates)}, "
                                             f"{status}")
        results.append(_fine_tuned_correctness(candidate, setup, reporter))
    return results


@contextlib.contextmanager
def single_threaded_ops(device: str) -> Iterator[None]:
    """On the CPU, torch runs every operation on its calling thread inside this block (the
    probe's replicas, not its operations, are spread over the threads): the probe's results
    then do not depend on the thread count, and its many small operations run faster
    (one replica of ResNet8 on digits: 53 steps/s on one thread, 47 on two)."""
    if device != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def in_threads(work: Callable[[int, threading.Event], T], count: int) -> list[T]:
    """``[work(i, stop) for i in range(count)]``, each call on its own thread (the first on
    the calling one, where signals arrive). When a call raises, or the calling thread is
    interrupted (a signal's exception), ``stop`` is set and every other call stops at its
    next step (``Stopped``); the first real exception is raised once all have ended."""
    stop = threading.Event()
    if count == 1:
        return [work(0, stop)]

    def guarded(index: int) -> T:
        try:
            return work(index, stop)
        except BaseException:
            stop.set()
            raise
    with futures.ThreadPoolExecutor(max_workers=count - 1) as pool:
        others = [pool.submit(guarded, i) for i in range(1, count)]
        try:
            first = guarded(0)
            return [first] + [future.result() for future in others]
        except BaseException as error:
            stop.set()
            futures.wait(others)
            if isinstance(error, Stopped):  # stopped for another's failure: raise that
                for future in others:
                    failure = future.exception()
                    if failure is not None and not isinstance(failure, Stopped):
                        raise failure from None
            raise


class Stopped(Exception):
    """A fine-tune stopped because another one of its batch failed or was interrupted."""


def _error_free(candidate: FineTuneCandidate) -> bool:
    return (not any(candidate.weight_ber) and not any(candidate.activation_ber)
            and not any(_shortcut(candidate) or ()))


def _shortcut(candidate: FineTuneCandidate) -> tuple[float, ...] | None:
    shortcut = getattr(candidate, "shortcut_ber", None)
    return tuple(shortcut) if shortcut else None


def _fine_tune_stacked(model: StackedModel, candidates: Sequence[FineTuneCandidate],
                       setup: FineTuneSetup, *, seeds: Sequence[int],
                       on_step: Callable[[int], None] | None,
                       stop: threading.Event | None = None) -> None:
    """``_fine_tune`` of every replica at once: replica k fine-tunes ``candidates[k]`` from
    seed ``seeds[k]`` (its own batches and error masks), one optimiser over all."""
    config = setup.config
    if config.steps == 0:
        return
    if on_step is not None:
        on_step(0)
    weights, quantizers = model.split_parameters()
    optimizer = torch.optim.Adam(weights, lr=config.lr)
    quantizer_optimizer = torch.optim.SGD(quantizers, lr=QUANTIZER_LR)
    ramp_steps = max(1, round(config.steps * config.ramp_fraction))
    streams = [_endless_batches(setup, seed) for seed in seeds]
    model.train()
    for step in range(config.steps):
        if stop is not None and stop.is_set():
            raise Stopped
        ramp = RAMP_START ** max(0.0, 1 - step / ramp_steps)
        model.set_errors([ReplicaErrors([b * ramp for b in c.weight_ber],
                                        [b * ramp for b in c.activation_ber],
                                        None if _shortcut(c) is None else
                                        [b * ramp for b in cast(tuple, _shortcut(c))],
                                        derived_seed(seed, step))
                          for c, seed in zip(candidates, seeds)],
                         error_model=config.error_model, params=setup.error_params,
                         row_bytes=setup.row_bytes)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr)
        batches = [next(stream) for stream in streams]
        logits = _replica_rows(model(torch.cat([images for images, _ in batches])),
                               len(batches))
        loss = sum(F.cross_entropy(replica, labels)
                   for replica, (_, labels) in zip(logits, batches))
        optimizer.zero_grad(set_to_none=True)
        quantizer_optimizer.zero_grad(set_to_none=True)
        cast(torch.Tensor, loss).backward()
        optimizer.step()
        quantizer_optimizer.step()
        if on_step is not None:
            on_step(step + 1)
    model.clear_errors()


def _replica_rows(output: torch.Tensor, replicas: int) -> torch.Tensor:
    return output.reshape(replicas, output.shape[0] // replicas, *output.shape[1:])


@torch.no_grad()
def _stacked_correct_under_errors(model: StackedModel, errors: Sequence[ReplicaErrors | None],
                                  setup: FineTuneSetup, batch_size: int = 256) -> np.ndarray:
    """(K, images): each replica's per-image correctness on the split under its errors,
    weight masks drawn once (as ``_correct_under_errors``), the images in ``correctness``'s
    batches."""
    model.eval()
    model.set_errors(errors, error_model=setup.config.error_model,
                     params=setup.error_params, row_bytes=setup.row_bytes)
    model.freeze_weight_errors()
    parts = []
    for images, labels in setup.bundle.batches(setup.config.split, batch_size, shuffle=False,
                                               device=setup.device):
        logits = _replica_rows(model(images.repeat(model.replicas, *(1,) * (images.dim() - 1))),
                               model.replicas)
        parts.append((logits.argmax(dim=2) == labels).cpu().numpy())
    model.clear_errors()
    return np.concatenate(parts, axis=1) if parts else np.zeros((model.replicas, 0), bool)


def derived_seed(*parts: int) -> int:
    """A 32-bit seed for one (base seed, fine-tune seed, ...) combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _step_reporter(on_step: StepProgress | None, finetune: int, finetunes: int, steps: int,
                   masks: int) -> Callable[[int], None] | None:
    """``on_step`` told the steps of fine-tune ``finetune`` counted over all of them (and,
    after its last step, that its error masks are evaluated); None without ``on_step``."""
    if on_step is None or steps == 0:
        return None
    report = on_step

    def told(step: int) -> None:
        status = (f"seed {finetune + 1}/{finetunes}, step {step}/{steps}" if step < steps
                  else f"seed {finetune + 1}/{finetunes}, evaluating under {masks} error "
                       f"mask{'s' if masks > 1 else ''}")
        report(finetune * steps + step, finetunes * steps, status)
    return told


def _fine_tune(model: DianaModel, candidate: FineTuneCandidate, setup: FineTuneSetup, *,
               seed: int, on_step: Callable[[int], None] | None = None) -> None:
    """``config.steps`` steps of Adam on the weights and plain SGD at ``QUANTIZER_LR`` on the
    activation clips and weight scales (ODiMO fine-tunes its quantisers with their own SGD,
    image_classification/cifar10/main_r20.py:308-325), under ramping errors; ``on_step``
    hears each step done (0 before the first)."""
    config = setup.config
    if config.steps == 0:
        return
    if on_step is not None:
        on_step(0)
    torch.manual_seed(seed)
    weights, quantizers = split_parameters(model)
    optimizer = torch.optim.Adam(weights, lr=config.lr)
    quantizer_optimizer = torch.optim.SGD(quantizers, lr=QUANTIZER_LR)
    ramp_steps = max(1, round(config.steps * config.ramp_fraction))
    batches = _endless_batches(setup, seed)
    model.train()
    for step in range(config.steps):
        ramp = RAMP_START ** max(0.0, 1 - step / ramp_steps)  # 1 % -> 100 % geometrically
        _set_errors(model, candidate, setup, scale=ramp, seed=derived_seed(seed, step))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr)
        images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        quantizer_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        quantizer_optimizer.step()
        if on_step is not None:
            on_step(step + 1)
    model.clear_errors()


def _endless_batches(setup: FineTuneSetup, seed: int):
    epoch = 0
    while True:
        yield from setup.bundle.batches("train", setup.config.batch_size, shuffle=True,
                                        seed=derived_seed(seed, epoch),
                                        augment=True, device=setup.device)
        epoch += 1


def _correct_under_errors(model: DianaModel, candidate: FineTuneCandidate,
                          setup: FineTuneSetup, *, seed: int) -> np.ndarray:
    """Per image of the split: right under the error masks of ``seed``."""
    model.eval()
    _set_errors(model, candidate, setup, scale=1.0, seed=seed)
    _freeze_weight_errors(model)
    correct = correctness(model, setup.bundle, setup.config.split, device=setup.device)
    model.clear_errors()
    return correct


def _set_errors(model: DianaModel, candidate: FineTuneCandidate, setup: FineTuneSetup, *,
                scale: float, seed: int) -> None:
    shortcut = getattr(candidate, "shortcut_ber", None) or None  # absent / empty: none
    model.set_errors([b * scale for b in candidate.weight_ber],
                     [b * scale for b in candidate.activation_ber],
                     model=setup.config.error_model, params=setup.error_params,
                     row_bytes=setup.row_bytes, seed=seed,
                     shortcut_ber=None if shortcut is None else [b * scale for b in shortcut])


def _freeze_weight_errors(model: DianaModel) -> None:
    """One weight mask per evaluation seed: draw it once, reuse it for every batch."""
    for layer in model.layers():
        layer.freeze_weight_errors()
