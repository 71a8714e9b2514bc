"""Baseline training: a float stage, then DIANA quantisation-aware training whose every batch
draws a random channel split and a random bit error rate, so that one checkpoint serves every
candidate's quick fine-tune (ODiMO trains shared weights for both precisions).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hw_models.error_models import ErrorModelParams
from hw_models.errors import ConfigError
from networks.datasets import DataBundle, DatasetSpec
from networks.diana_model import DianaModel, calibrate, to_diana
from networks.extract import extract_layer_table
from networks.quantize import QUANTIZER_LR, split_parameters
from networks.zoo import build_network

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, status)
CHECKPOINT_FORMAT = 2          # 2: stores the SHA-256 of its tensors (tensors_sha256)
LEGACY_FORMATS = (1,)          # written before tensor digests: loaded unverified
GRADIENT_CLIP_NORM = 5.0
DATA_KEY_CHARS = 16            # of the data's digest in a checkpoint's file name


@dataclass(frozen=True)
class TrainConfig:
    """Baseline training settings; the checkpoint cache is keyed by all of them (and by the
    network and the data: ``checkpoint_path``)."""

    epochs: int = 30              # float epochs + quantisation-aware epochs
    qat_fraction: float = 0.3     # the last 30 % of epochs train the DIANA-quantised model
    batch_size: int = 64
    lr: float = 0.05              # SGD peak learning rate, cosine decay to 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    qat_lr_scale: float = 0.1     # the quantisation-aware stage starts at lr x this
    max_train_ber: float = 1e-3   # half the QAT batches see a BER log-uniform in [1e-6, this]
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Checkpoint:
    """A trained DIANA-quantisable network with the settings it was trained with."""

    network: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    layer_names: tuple[str, ...]
    train_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    val_accuracy: float             # all-digital, error-free, quantised
    float_val_accuracy: float
    digest: str = ""                # hash of the file, set when saved or loaded
    tensors_sha256: str = ""        # tensors_sha256(state_dict), set when saved or loaded
    tensors_verified: bool = False  # the file stored that digest and the tensors matched it

    def build(self) -> DianaModel:
        """The DIANA model with the trained weights (CPU). A checkpoint trained before the
        residual adds were quantised (dse 0.3.0) has no clip for a downsample block's add:
        that clip is calibrated on the first batch the model runs, as ``calibrate`` sets
        every clip of a new checkpoint."""
        float_model = build_network(self.network, DatasetSpec(
            self.dataset, self.input_shape, self.num_classes, ""))
        model = to_diana(float_model, self.layer_names)
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        adds = dict(zip((name for name, _ in model.add_names), model.adds()))
        for key in list(missing):  # trained before the residual adds were quantised
            add = adds.get(key.removeprefix("net.").removesuffix(".quantizer.clip"))
            if add is not None and key.endswith(".quantizer.clip"):
                # an identity block's add shares (and so loaded) its reader's clip
                add.calibrate_on_first_pass = add.reader is None
                missing.remove(key)
        if missing or unexpected:
            raise ConfigError(
                f"checkpoint of {self.network} / {self.dataset} does not fit the DIANA model "
                f"of this dse ({len(missing)} tensors missing, e.g. "
                f"{(missing or unexpected)[0]!r}, {len(unexpected)} unexpected): "
                "train it again (dse train)")
        return model

    def derived(self, state_dict: dict[str, torch.Tensor], *, trained_by: dict[str, Any],
                val_accuracy: float = math.nan) -> "Checkpoint":
        """The same network with weights another method trained from these (ODiMO's
        fine-tuned split, EDEN's retrained network): its identity is the SHA-256 of the new
        tensors, and ``train_config`` records this checkpoint's (``derived_from``), every
        ancestor's (``lineage``: EDEN may retrain what ODiMO delivered) and what trained it.
        ``val_accuracy``: of the new weights where the method measured it (fraction)."""
        tensors = {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()}
        if set(tensors) != set(self.state_dict):
            raise ValueError("derived weights must have the checkpoint's tensors")
        sha256 = tensors_sha256(tensors)
        return Checkpoint(
            network=self.network, dataset=self.dataset, input_shape=self.input_shape,
            num_classes=self.num_classes, layer_names=self.layer_names,
            train_config={**self.train_config, "derived_from": self.tensors_sha256,
                          "lineage": [*self.train_config.get("lineage", []),
                                      self.tensors_sha256],
                          "trained_by": trained_by},
            state_dict=tensors, val_accuracy=val_accuracy,
            float_val_accuracy=self.float_val_accuracy, digest=f"derived-{sha256[:16]}",
            tensors_sha256=sha256, tensors_verified=True)


def lr_at(step: int, total_steps: int, peak_lr: float) -> float:
    """Cosine decay from ``peak_lr`` to 0 over ``total_steps``."""
    return 0.5 * peak_lr * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


@torch.no_grad()
def evaluate(model: nn.Module, bundle: DataBundle, split: str, *, device: str,
             batch_size: int = 256) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    correct = correctness(model, bundle, split, device=device, batch_size=batch_size)
    return float(correct.mean()) if len(correct) else 0.0


def correctness(model: nn.Module, bundle: DataBundle, split: str, *, device: str,
                batch_size: int = 256) -> np.ndarray:
    """Per image of ``split`` (in its fixed order): whether the top-1 class is right."""
    was_training = model.training
    model.eval()
    parts = []
    with torch.no_grad():
        for images, labels in bundle.batches(split, batch_size, shuffle=False, device=device):
            parts.append((model(images).argmax(dim=1) == labels).cpu().numpy())
    model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def train_baseline(network: str, bundle: DataBundle, config: TrainConfig, *, device: str,
                   progress: Progress | None = None) -> Checkpoint:
    """Train ``network`` on ``bundle`` (float, then quantisation-aware); return the checkpoint."""
    torch.manual_seed(config.seed)
    spec = bundle.spec
    float_model = build_network(network, spec)
    table = extract_layer_table(float_model, spec.input_shape,
                                num_classes=spec.num_classes)
    qat_epochs = round(config.epochs * config.qat_fraction)
    float_epochs = config.epochs - qat_epochs
    steps_per_epoch = bundle.num_batches("train", config.batch_size)
    total = config.epochs * steps_per_epoch
    report = progress or (lambda done, all_, status: None)
    float_model.to(device)
    watch = _Watch(bundle, device, report, total, steps_per_epoch)
    report(0, total, "float")  # the start: a display's clock starts here
    _fit(float_model, bundle, config, epochs=float_epochs, peak_lr=config.lr, device=device,
         on_step=watch.step("float"))
    float_accuracy = evaluate(float_model, bundle, "val", device=device)
    model = to_diana(float_model.cpu(), table.name)
    calibrate(model, next(bundle.batches("train", 256, shuffle=False))[0])
    model.to(device)
    splitter = _RandomSplits(table, config)
    watch.offset = float_epochs * steps_per_epoch
    _fit(model, bundle, config, epochs=qat_epochs, peak_lr=config.lr * config.qat_lr_scale,
         device=device, before_step=splitter, on_step=watch.step("DIANA"))
    model.set_split([0] * table.n_layers)
    model.clear_errors()
    accuracy = evaluate(model, bundle, "val", device=device)
    report(total, total, f"val accuracy {accuracy:.4f}")
    return Checkpoint(
        network=network, dataset=spec.name, input_shape=spec.input_shape,
        num_classes=spec.num_classes, layer_names=table.name,
        train_config={**asdict(config), "threads": torch.get_num_threads(), "device": device},
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        val_accuracy=accuracy, float_val_accuracy=float_accuracy)


class _Watch:
    """Progress after every step; validation accuracy (all digital, no errors) per epoch."""

    def __init__(self, bundle: DataBundle, device: str, report: Progress, total: int,
                 steps_per_epoch: int) -> None:
        self.bundle, self.device, self.report = bundle, device, report
        self.total, self.steps_per_epoch = total, steps_per_epoch
        self.offset = 0
        self.last_accuracy = ""

    def step(self, stage: str) -> Callable[[nn.Module, int, float], None]:
        def on_step(model: nn.Module, step: int, loss: float) -> None:
            if step % self.steps_per_epoch == 0:
                self.last_accuracy = f", val {self._accuracy(model):.1%}"
            self.report(self.offset + step, self.total,
                        f"{stage} loss {loss:.3f}{self.last_accuracy}")
        return on_step

    def _accuracy(self, model: nn.Module) -> float:
        if not isinstance(model, DianaModel):
            return evaluate(model, self.bundle, "val", device=self.device)
        layers, adds = model.layers(), model.adds()
        layer_errors = [layer.errors for layer in layers]
        add_errors = [add.errors for add in adds]
        split = [int(layer.analog.sum()) for layer in model.layers()]
        model.clear_errors()
        model.set_split([0] * len(split))
        accuracy = evaluate(model, self.bundle, "val", device=self.device)
        model.set_split(split)
        for layer, errors in zip(layers, layer_errors):
            layer.set_errors(errors)
        for add, errors in zip(adds, add_errors):
            add.set_errors(errors)
        return accuracy


_M = TypeVar("_M", bound=nn.Module)


def _fit(model: _M, bundle: DataBundle, config: TrainConfig, *, epochs: int,
         peak_lr: float, device: str, on_step: Callable[[nn.Module, int, float], None],
         before_step: Callable[[_M, int], None] | None = None) -> None:
    weights, quantizers = split_parameters(model)
    optimizer = torch.optim.SGD(weights, lr=peak_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    # the clips and weight scales: their own plain SGD, as ODiMO trains its quantised
    # networks (image_classification/cifar10/main_r20.py:308-325)
    quantizer_optimizer = (torch.optim.SGD(quantizers, lr=QUANTIZER_LR) if quantizers
                           else None)
    steps = epochs * bundle.num_batches("train", config.batch_size)
    model.train()
    step = 0
    for epoch in range(epochs):
        for images, labels in bundle.batches("train", config.batch_size, shuffle=True,
                                             seed=config.seed * 100_003 + epoch, augment=True,
                                             device=device):
            if before_step is not None:
                before_step(model, step)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, peak_lr)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            if quantizer_optimizer is not None:
                quantizer_optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):  # a rare error-injected batch must not wreck the weights
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_NORM)
                optimizer.step()
                if quantizer_optimizer is not None:
                    quantizer_optimizer.step()
            step += 1
            on_step(model, step, float(loss.detach()))


class _RandomSplits:
    """Before each QAT step, draw what the batch trains: half the batches the all-digital,
    error-free network (it anchors the shared weights, as the largest sub-network does in
    slimmable-network training); the others a random analog share per layer (none, all or
    uniform) and, half of those, a bit error rate log-uniform in [1e-6, max_train_ber]."""

    def __init__(self, table, config: TrainConfig) -> None:
        self.cout = table.cout
        self.capable = table.analog_capable
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def __call__(self, model: DianaModel, step: int) -> None:
        model.clear_errors()
        if self.rng.random() < 0.5:
            model.set_split([0] * len(self.cout))
            return
        mode = self.rng.integers(0, 3, size=len(self.cout))  # 0 digital, 1 analog, 2 mixed
        share = np.where(mode == 0, 0.0, np.where(mode == 1, 1.0,
                                                  self.rng.random(len(self.cout))))
        model.set_split(np.where(self.capable, np.round(share * self.cout), 0).astype(int))
        if self.rng.random() < 0.5:
            ber = float(10 ** self.rng.uniform(-6, math.log10(self.config.max_train_ber)))
            bers = [ber] * len(self.cout)
            model.set_errors(bers, bers, model=0, params=ErrorModelParams(), row_bytes=2048,
                             seed=int(self.rng.integers(2**31)), shortcut_ber=bers)


class DamagedCheckpoint(ConfigError):
    """A checkpoint whose tensors do not match the digest stored with them."""


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: for each tensor in name order, its name, dtype and shape
    (length-prefixed) and its bytes in row-major order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        header = json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode()
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        for part in (header, data):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()


def checkpoint_path(results_dir: Path, network: str, dataset: str, config: TrainConfig,
                    data_key: str | None = None) -> Path:
    """Where the checkpoint of ``network`` trained on ``dataset`` with ``config`` is cached.
    ``data_key`` names the data (``networks.data_identity.data_key``: its digest); None for
    a built-in dataset's fixed data, whose checkpoints keep the names of dse 0.3.0."""
    safe_network = network.replace(":", "_").replace("/", "_")
    data = "" if data_key is None else f"-{data_key[:DATA_KEY_CHARS]}"
    return (Path(results_dir) / "checkpoints"
            / f"{safe_network}-{dataset}-{config.key()}{data}.pt")


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> Checkpoint:
    """Write atomically (temp file, then rename) with the digest of the tensors; return the
    checkpoint as read back (digests set, tensors verified)."""
    payload = {"format": CHECKPOINT_FORMAT, **asdict(checkpoint),
               "tensors_sha256": tensors_sha256(checkpoint.state_dict)}
    payload.pop("digest")
    payload.pop("tensors_verified")
    temporary = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, temporary)
        temporary.replace(path)
    except OSError as exc:  # callers check the folder first; this is the last word
        raise ConfigError(f"cannot write checkpoint {path}: {exc.strerror}") from None
    return load_checkpoint(path)


def load_checkpoint(path: Path, *, network: str | None = None,
                    spec: DatasetSpec | None = None, remedy: str | None = None) -> Checkpoint:
    """Read a checkpoint; check its tensors against their stored digest (a file written
    before digests, format 1, loads unverified) and that it matches ``network`` and the
    dataset's shape and classes. ``remedy`` ends the message for a damaged file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        file_format = payload.pop("format")
        if file_format == CHECKPOINT_FORMAT:
            stored = payload.pop("tensors_sha256")
            if not isinstance(stored, str):
                raise ValueError("no tensor digest")
        elif file_format in LEGACY_FORMATS:
            stored = None
        else:
            raise ValueError("unknown format")
        actual = tensors_sha256(payload["state_dict"])
        checkpoint = Checkpoint(**{**payload, "input_shape": tuple(payload["input_shape"]),
                                   "layer_names": tuple(payload["layer_names"]),
                                   "digest": digest, "tensors_sha256": actual,
                                   "tensors_verified": stored is not None})
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ConfigError(f"checkpoint {path} is corrupt or not a dse checkpoint "
                          f"({type(exc).__name__})") from None
    if stored is not None and stored != actual:
        raise DamagedCheckpoint(
            f"checkpoint {path} is damaged (its tensors do not match their digest); "
            + (remedy or "restore an intact copy of the file or train a new one "
                         "(dse train)"))
    if network is not None and checkpoint.network != network:
        raise ConfigError(f"checkpoint {path} is of network '{checkpoint.network}', "
                          f"not '{network}'")
    if spec is not None and (checkpoint.num_classes != spec.num_classes
                             or checkpoint.input_shape != spec.input_shape):
        raise ConfigError(f"checkpoint {path} was trained for {checkpoint.num_classes} classes "
                          f"and input {checkpoint.input_shape}, the dataset has "
                          f"{spec.num_classes} and {spec.input_shape}")
    return checkpoint
