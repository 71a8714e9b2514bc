"""ODiMO's differentiable channel-split search (Risso et al., ISLPED 2023), as its public code
does it for DIANA (eml-eda/odimo; shared research note odimo_diana.md, section 2).

Every conv / linear layer the analog array can run holds, per output channel, two logits
``alpha`` (digital, analog), equal at the start; its weight is the
``softmax(alpha / tau)``-weighted mix of the 8-bit digital and the ternary analog quantised
weight (plain softmax, no Gumbel noise); depthwise layers stay digital. The loss is

    cross-entropy + lambda * cost(alpha) / cost(all digital)

with the cost (latency or energy) of ``networks.diana_cost`` at the effective channel
counts ``sum_c softmax(alpha / tau)[analog, c]``, so ``lambda`` is dimensionless. Each batch
takes one step of SGD on the weights (lr 1e-3, momentum 0.9, weight decay 1e-4), Adam on the
logits (lr 1e-3) and plain SGD on the quantisers' activation clips and weight scales
(lr 1e-5: ODiMO's ``q_params``, ``search_r20.py``:91,339-357); ``tau`` starts at 1 and is
multiplied by exp(-0.045) after every epoch, once that epoch is validated. The epoch whose
relaxed network (at the tau it was validated at) has the best validation top-1 accuracy is
kept, a later epoch only when strictly better (ODiMO's ``search_r20.py``: ``acc1 >
best_acc1``; an epoch whose validation cross-entropy is not finite never counts), and each
channel goes to the core with the larger logit (a tie: digital).

The weights learn under SGD with ODiMO's schedule (``MultiStepLR`` at epochs 100 and 150,
factor 0.1) and the quantisers (clips and weight scales) with their own SGD (``StepLR``
every 50 epochs, factor 0.1); the search stops early once ``patience_epochs`` epochs pass
without a better kept epoch (ODiMO's early stopping, patience 50) and runs at most 200 epochs
(its ``run_ic_fulltest.sh``); batches of 128 images.

**Fine-tune** (``odimo_finetune``, ODiMO's second stage): the kept epoch's whole state (weights
and clips, not only the logits) with the argmax split frozen, trained for ``finetune_epochs``
(ODiMO: 200) by SGD at lr 1e-4 (momentum 0.9, weight decay 1e-4, ``MultiStepLR`` at 100 and
150), the quantisers at lr 1e-5; the epoch whose discrete network is most accurate on
validation is kept (ODiMO's patience of 500 epochs never stops a 200-epoch run, so there is
no early stop). These weights are what ODiMO delivers: ``dse.engines.odimo`` measures its
split from them.

The search starts from the baseline checkpoint and never sees DRAM errors (ODiMO does not
model DRAM).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from hw_models.layer_table import LayerTable
from hw_models.soc import Soc
from networks.datasets import DataBundle
from networks.diana_cost import LayerColumns, split_cost
from networks.quantize import QUANTIZER_LR, split_parameters
from networks.train import Checkpoint

COST_TARGETS = ("latency", "energy")
Progress = Callable[[int, int, str], None]


# ODiMO's schedule (eml-eda/odimo @ 2d9f139: run_ic_fulltest.sh, search_r20.py, main_r20.py)
SEARCH_EPOCHS = 200
SEARCH_PATIENCE_EPOCHS = 50
FINETUNE_EPOCHS = 200
LR_MILESTONES_EPOCHS = (100, 150)   # MultiStepLR of the weights, search and fine-tune
LR_DECAY = 0.1
CLIP_LR_STEP_EPOCHS = 50            # StepLR of the quantisers (clips, scales) in the search


@dataclass(frozen=True)
class OdimoConfig:
    """One search and its fine-tune, with ODiMO's settings for DIANA (module docstring);
    fewer epochs make a truncated run (``truncated``)."""

    cost_weight: float              # lambda, dimensionless (the cost is normalised)
    epochs: int = SEARCH_EPOCHS
    patience_epochs: int = SEARCH_PATIENCE_EPOCHS
    finetune_epochs: int = FINETUNE_EPOCHS
    target: str = "latency"         # latency | energy
    batch_size: int = 128
    weight_lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    alpha_lr: float = 1e-3
    quantizer_lr: float = QUANTIZER_LR  # clips and weight scales (search_r20.py:357)
    finetune_lr: float = 1e-4
    tau_decay_per_epoch: float = 0.045
    seed: int = 0

    @property
    def truncated(self) -> bool:
        """Fewer epochs than ODiMO runs (a lighter variant, labelled as such)."""
        return self.epochs < SEARCH_EPOCHS or self.finetune_epochs < FINETUNE_EPOCHS


@dataclass
class OdimoResult:
    """The discretised split and how the search went.

    Attributes:
        n_analog: analog output channels per layer (table order).
        analog_channels: per layer, which channels (None for digital-only layers).
        best_epoch: the kept epoch (1-based; 0: none ended with a finite loss).
        history: per epoch, the tau it was validated at, validation cross-entropy and top-1
            accuracy (fraction) of the relaxed network, normalised cost, analog share.
        samples: training samples processed (the compute budget measure).
        seconds: wall time of the search.
        state_dict: the model's state at the kept epoch (weights and clips).
    """

    n_analog: tuple[int, ...]
    analog_channels: tuple[tuple[int, ...] | None, ...]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


@dataclass
class FinetuneResult:
    """ODiMO's fine-tune of the discrete split: the kept state (best validation top-1 of the
    discrete network), its epoch (0: the search's state, no epoch beat it or none ran), the
    per-epoch validation accuracy (fraction), samples and wall time."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    best_epoch: int
    val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0


def odimo_search(checkpoint: Checkpoint, bundle: DataBundle, table: LayerTable, soc: Soc,
                 config: OdimoConfig, *, device: str = "cpu",
                 progress: Progress | None = None) -> OdimoResult:
    """Run one ODiMO search and discretise it (see the module docstring)."""
    if config.target not in COST_TARGETS:
        raise ValueError(f"target must be one of {COST_TARGETS}")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = checkpoint.build().to(device)
    model.set_split([0] * table.n_layers)
    layers = model.layers()
    searched = [i for i in range(table.n_layers) if table.analog_capable[i]]
    alphas = {i: torch.zeros(2, int(table.cout[i]), device=device, requires_grad=True)
              for i in searched}
    columns = LayerColumns.of(table, device)
    reference = _cost(torch.zeros(table.n_layers, dtype=torch.float64, device=device),
                      columns, soc, config.target).detach()
    weights, quantizers = split_parameters(model)
    weight_optimizer = torch.optim.SGD(weights, lr=config.weight_lr, momentum=config.momentum,
                                       weight_decay=config.weight_decay)
    quantizer_optimizer = torch.optim.SGD(quantizers, lr=config.quantizer_lr)
    optimizers = [weight_optimizer, torch.optim.Adam(list(alphas.values()), lr=config.alpha_lr),
                  quantizer_optimizer]
    schedulers = [
        torch.optim.lr_scheduler.MultiStepLR(weight_optimizer, list(LR_MILESTONES_EPOCHS),
                                             gamma=LR_DECAY),
        torch.optim.lr_scheduler.StepLR(quantizer_optimizer, CLIP_LR_STEP_EPOCHS,
                                        gamma=LR_DECAY)]
    tau = 1.0
    best_accuracy, best_epoch = -math.inf, 0
    best_alphas = {i: a.detach().clone() for i, a in alphas.items()}
    best_state = _state_copy(model)
    history = []
    samples = 0
    steps_per_epoch = bundle.num_batches("train", config.batch_size)
    total = config.epochs * steps_per_epoch
    if progress is not None:
        progress(0, total, f"lambda {config.cost_weight:g}, epoch 1/{config.epochs}")

    def relaxed_cost() -> torch.Tensor:
        shares = {}
        for i, alpha in alphas.items():
            share = torch.softmax(alpha / tau, dim=0)[1]
            layers[i].analog_probability = share
            shares[i] = share
        counts = torch.stack([shares[i].sum().double() if i in shares
                              else torch.zeros((), dtype=torch.float64, device=device)
                              for i in range(table.n_layers)])
        return _cost(counts, columns, soc, config.target) / reference

    try:
        for epoch in range(config.epochs):
            costs: list[torch.Tensor] = []

            def search_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(logits, labels) + config.cost_weight * costs[-1]

            def told(step: int) -> None:
                if progress is not None:
                    progress(epoch * steps_per_epoch + step, total,
                             f"lambda {config.cost_weight:g}, epoch {epoch + 1}/"
                             f"{config.epochs}, tau {tau:.3f}, cost "
                             f"{float(costs[-1].detach()):.3f} of all-digital")
            samples += _train_epoch(model, bundle, config.batch_size, optimizers,
                                    seed=config.seed * 100_003 + epoch, loss_of=search_loss,
                                    device=device, on_step=told,
                                    before=lambda: costs.append(relaxed_cost()))
            for scheduler in schedulers:
                scheduler.step()
            val_ce, val_accuracy, cost_now = _validate(model, bundle, relaxed_cost, device)
            share = float(sum(torch.softmax(a.detach() / tau, dim=0)[1].sum()
                              for a in alphas.values())
                          / max(1, sum(a.shape[1] for a in alphas.values())))
            history.append({"epoch": epoch + 1, "tau": tau, "val_cross_entropy": val_ce,
                            "val_accuracy": val_accuracy, "cost_of_all_digital": cost_now,
                            "analog_share": share})
            if math.isfinite(val_ce) and val_accuracy > best_accuracy:
                best_accuracy, best_epoch = val_accuracy, epoch + 1
                best_alphas = {i: a.detach().clone() for i, a in alphas.items()}
                best_state = _state_copy(model)
            tau *= math.exp(-config.tau_decay_per_epoch)  # after validating, as ODiMO
            if best_epoch and epoch + 1 - best_epoch >= config.patience_epochs:
                break  # ODiMO's early stopping: no better epoch for `patience` epochs
    finally:
        for layer in layers:
            layer.analog_probability = None
    n_analog, channels = discretise(best_alphas, table.n_layers)
    return OdimoResult(n_analog, channels, best_epoch, history, samples,
                       time.perf_counter() - start, best_state)


def odimo_finetune(checkpoint: Checkpoint, bundle: DataBundle, searched: OdimoResult,
                   config: OdimoConfig, *, device: str = "cpu",
                   progress: Progress | None = None) -> FinetuneResult:
    """ODiMO's fine-tune of ``searched``'s discrete split from its kept state (the module
    docstring); ``config.finetune_epochs`` of 0 keeps the search's state as it is."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = checkpoint.build().to(device)
    model.load_state_dict(searched.state_dict)
    model.set_split(searched.n_analog, searched.analog_channels)
    best_accuracy = _accuracy(model, bundle, device)
    best_epoch, best_state = 0, _state_copy(model)
    history: list[dict[str, float]] = []
    samples = 0
    weights, quantizers = split_parameters(model)
    weight_optimizer = torch.optim.SGD(weights, lr=config.finetune_lr,
                                       momentum=config.momentum,
                                       weight_decay=config.weight_decay)
    optimizers = [weight_optimizer, torch.optim.SGD(quantizers, lr=config.quantizer_lr)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        weight_optimizer, list(LR_MILESTONES_EPOCHS), gamma=LR_DECAY)
    steps_per_epoch = bundle.num_batches("train", config.batch_size)
    total = config.finetune_epochs * steps_per_epoch
    for epoch in range(config.finetune_epochs):
        def told(step: int) -> None:
            if progress is not None:
                progress(epoch * steps_per_epoch + step, total,
                         f"lambda {config.cost_weight:g}, fine-tune epoch {epoch + 1}/"
                         f"{config.finetune_epochs}")
        samples += _train_epoch(model, bundle, config.batch_size, optimizers,
                                seed=config.seed * 100_003 + 50_000 + epoch,
                                loss_of=F.cross_entropy, device=device, on_step=told)
        scheduler.step()
        accuracy = _accuracy(model, bundle, device)
        history.append({"epoch": epoch + 1, "val_accuracy": accuracy})
        if accuracy > best_accuracy:  # strictly better, as ODiMO keeps its best epoch
            best_accuracy, best_epoch, best_state = accuracy, epoch + 1, _state_copy(model)
    return FinetuneResult(best_state, best_epoch, best_accuracy, history, samples,
                          time.perf_counter() - start)


def _train_epoch(model: torch.nn.Module, bundle: DataBundle, batch_size: int,
                 optimizers: Sequence[torch.optim.Optimizer], *, seed: int,
                 loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: str,
                 on_step: Callable[[int], None],
                 before: Callable[[], object] | None = None) -> int:
    """One epoch over the augmented, shuffled training split (``seed``), a step of every
    optimizer per batch on ``loss_of(logits, labels)``; ``before`` runs ahead of each
    forward pass (the search sets the channels' analog shares there) and ``on_step`` hears
    each step done (1-based). Returns the training samples processed."""
    model.train()
    samples = 0
    for step, (images, labels) in enumerate(bundle.batches(
            "train", batch_size, shuffle=True, augment=True, device=device, seed=seed)):
        if before is not None:
            before()
        loss = loss_of(model(images), labels)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        samples += len(labels)
        on_step(step + 1)
    return samples


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


@torch.no_grad()
def _accuracy(model, bundle: DataBundle, device: str) -> float:
    """Validation top-1 accuracy (fraction) of the discrete network, error-free."""
    model.eval()
    right, count = 0, 0
    for images, labels in bundle.batches("val", 256, shuffle=False, device=device):
        right += int((model(images).argmax(dim=1) == labels).sum())
        count += len(labels)
    return right / max(count, 1)


def discretise(alphas: dict[int, torch.Tensor], n_layers: int
               ) -> tuple[tuple[int, ...], tuple[tuple[int, ...] | None, ...]]:
    """Each channel to the core with the larger logit (a tie: digital)."""
    counts, channels = [0] * n_layers, [None] * n_layers  # type: list[int], list
    for i, alpha in alphas.items():
        chosen = torch.nonzero(alpha[1] > alpha[0]).flatten().tolist()
        counts[i] = len(chosen)
        channels[i] = tuple(int(c) for c in chosen)
    return tuple(counts), tuple(channels)


def _cost(counts: torch.Tensor, columns: LayerColumns, soc: Soc, target: str) -> torch.Tensor:
    latency, energy = split_cost(counts, columns, soc)
    return (latency if target == "latency" else energy).sum()


@torch.no_grad()
def _validate(model, bundle: DataBundle, relaxed_cost: Callable[[], torch.Tensor],
              device: str) -> tuple[float, float, float]:
    """Validation cross-entropy and top-1 accuracy (fraction) of the relaxed network, and
    its normalised cost."""
    model.eval()
    cost = float(relaxed_cost())
    total, right, count = 0.0, 0, 0
    for images, labels in bundle.batches("val", 256, shuffle=False, device=device):
        logits = model(images)
        total += float(F.cross_entropy(logits, labels, reduction="sum"))
        right += int((logits.argmax(dim=1) == labels).sum())
        count += len(labels)
    return total / max(count, 1), right / max(count, 1), cost
