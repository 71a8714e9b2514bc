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

import copy
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, cast

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
StepProgress = Callable[[int, int, str], None]  # (fine-tune steps done, in all, status)


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
                                on_step: StepProgress | None = None, *, batch: int
                                ) -> list[np.ndarray]:
    """``fine_tuned_correctness`` of every candidate, ``batch`` fine-tunes at a time as one
    ``StackedModel`` (each fine-tune seed of each candidate is a replica): what the
    candidates give one at a time, up to the rounding of a few reductions
    (``networks.stacked``). ``on_step`` is told (replica steps done, in all, status). A
    network that cannot be stacked, or ``batch`` 1, is probed one candidate at a time."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    config = setup.config
    template = setup.checkpoint.build()
    if batch == 1 or not stackable(template) or len(candidates) == 0:
        return _one_at_a_time(candidates, setup, on_step)
    finetunes = 1 if config.steps == 0 else config.finetune_seeds
    replicas = [(index, finetune) for index in range(len(candidates))
                for finetune in range(finetunes)]
    masks = [1 if _error_free(c) else config.error_seeds for c in candidates]
    rows: dict[tuple[int, int], list[np.ndarray]] = {}
    total = len(replicas) * config.steps
    for start in range(0, len(replicas), batch):
        chunk = replicas[start:start + batch]
        models = []
        for index, _ in chunk:
            model = copy.deepcopy(template)
            model.set_split(candidates[index].n_analog, candidates[index].analog_channels)
            models.append(model)
        stacked = StackedModel(models).to(setup.device)
        reporter = None
        if on_step is not None and config.steps:
            report, done_before = on_step, start * config.steps

            def reporter(step: int, chunk_start: int = start, size: int = len(chunk)) -> None:
                report(done_before + step * size, total,
                       f"fine-tunes {chunk_start + 1}-{chunk_start + size} of "
                       f"{len(replicas)}, step {step}/{config.steps}")
        _fine_tune_stacked(stacked, [candidates[i] for i, _ in chunk], setup,
                           seeds=[derived_seed(config.seed, f) for _, f in chunk],
                           on_step=reporter)
        for mask in range(max(masks[i] for i, _ in chunk)):
            errors = [None if masks[i] == 1 and _error_free(candidates[i]) else
                      ReplicaErrors(candidates[i].weight_ber, candidates[i].activation_ber,
                                    _shortcut(candidates[i]), derived_seed(config.seed, f, mask))
                      for i, f in chunk]
            correct = _stacked_correct_under_errors(stacked, errors, setup)
            for (index, finetune), row in zip(chunk, correct):
                if mask < masks[index]:
                    rows.setdefault((index, finetune), []).append(row)
    results = []
    for index in range(len(candidates)):
        correct = np.array([rows[(index, f)] for f in range(finetunes)], dtype=bool)
        results.append(np.broadcast_to(correct, (config.finetune_seeds, config.error_seeds,
                                                 correct.shape[2])).copy())
    return results


def _one_at_a_time(candidates: Sequence[FineTuneCandidate], setup: FineTuneSetup,
                   on_step: StepProgress | None) -> list[np.ndarray]:
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
        results.append(fine_tuned_correctness(candidate, setup, reporter))
    return results


def _error_free(candidate: FineTuneCandidate) -> bool:
    return (not any(candidate.weight_ber) and not any(candidate.activation_ber)
            and not any(_shortcut(candidate) or ()))


def _shortcut(candidate: FineTuneCandidate) -> tuple[float, ...] | None:
    shortcut = getattr(candidate, "shortcut_ber", None)
    return tuple(shortcut) if shortcut else None


def _fine_tune_stacked(model: StackedModel, candidates: Sequence[FineTuneCandidate],
                       setup: FineTuneSetup, *, seeds: Sequence[int],
                       on_step: Callable[[int], None] | None) -> None:
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
