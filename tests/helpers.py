"""Small shared test helpers (plain functions; fixtures live in conftest.py)."""
from __future__ import annotations

import functools

from hw_models import LayerTable


def resnet20_records() -> list[dict]:
    """ResNet20 / CIFAR-10 layer shapes written out by hand (independent of torch)."""
    rows = [dict(name="stem", kind="conv", cin=3, cout=16, kx=3, ky=3, ox=32, oy=32)]
    cin = 16
    for stage, (channels, size) in enumerate([(16, 32), (32, 16), (64, 8)]):
        for block in range(3):
            stride = 2 if block == 0 and stage > 0 else 1
            prefix = f"s{stage}.b{block}"
            rows.append(dict(name=f"{prefix}.conv1", kind="conv", cin=cin, cout=channels,
                             kx=3, ky=3, ox=size, oy=size, stride=stride))
            rows.append(dict(name=f"{prefix}.conv2", kind="conv", cin=channels,
                             cout=channels, kx=3, ky=3, ox=size, oy=size))
            if stride == 2:
                rows.append(dict(name=f"{prefix}.shortcut", kind="conv", cin=cin,
                                 cout=channels, kx=1, ky=1, ox=size, oy=size, stride=2))
            cin = channels
    rows.append(dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1))
    return rows


def one_layer(**shape) -> LayerTable:
    """A one-row table; shape keys as in LayerTable.from_records."""
    return LayerTable.from_records([dict(name="layer", kind="conv", **shape)])


def tiny_checkpoint(path=None, *, seed: int = 0, results_dir=None):
    """An untrained resnet8 / synthetic checkpoint (weights drawn with ``seed``, calibrated),
    saved at ``path``, or with ``results_dir`` where ``dse train --dataset synthetic --epochs
    1`` caches it; returns the file. No training; built once per seed and process
    (``_tiny_weights``), each call saving a fresh copy."""
    from pathlib import Path

    from networks.datasets import get_dataset_spec
    from networks.train import Checkpoint, TrainConfig, checkpoint_path, save_checkpoint

    spec = get_dataset_spec("synthetic")
    names, state = _tiny_weights(seed)
    if results_dir is not None:
        path = checkpoint_path(Path(results_dir), "resnet8", "synthetic", TrainConfig(epochs=1))
    checkpoint = Checkpoint(
        network="resnet8", dataset="synthetic", input_shape=spec.input_shape,
        num_classes=spec.num_classes, layer_names=names,
        train_config={"epochs": 1, "seed": seed},
        state_dict={k: v.clone() for k, v in state.items()},
        val_accuracy=0.5, float_val_accuracy=0.5)
    save_checkpoint(checkpoint, Path(path))
    return Path(path)


@functools.lru_cache(maxsize=None)
def _tiny_weights(seed: int):
    """``tiny_checkpoint``'s layer names and state (its calibration takes a second or
    more: 17 uses in the suite)."""
    import torch

    from networks.datasets import load_dataset
    from networks.diana_model import calibrate, to_diana
    from networks.extract import extract_layer_table
    from networks.zoo import build_network

    bundle = load_dataset("synthetic")
    torch.manual_seed(seed)
    float_model = build_network("resnet8", bundle.spec)
    table = extract_layer_table(float_model, bundle.spec.input_shape)
    model = to_diana(float_model, table.name)
    calibrate(model, next(bundle.batches("train", 256, shuffle=False))[0])
    return table.name, {k: v.detach().clone() for k, v in model.state_dict().items()}


def small_bundle(name: str = "synthetic", *, train: int = 128, val: int = 64):
    """``name``'s data bundle cut to its first ``train`` training and ``val`` validation
    images (the test split whole): for tests of what a training loop does, not of how
    well it trains."""
    import dataclasses

    from networks.datasets import Split, load_dataset

    bundle = load_dataset(name)
    return dataclasses.replace(
        bundle, train=Split(bundle.train.images[:train], bundle.train.labels[:train]),
        val=Split(bundle.val.images[:val], bundle.val.labels[:val]))


def flip_tensor_bytes(source, target, count: int = 64) -> None:
    """Copy checkpoint ``source`` to ``target`` with ``count`` bytes inverted inside the data
    of its largest tensor (the zip structure stays intact: torch still loads it)."""
    from pathlib import Path

    import torch

    payload = torch.load(source, map_location="cpu", weights_only=True)
    tensor = max(payload["state_dict"].values(), key=lambda t: t.numel())
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    data = bytearray(Path(source).read_bytes())
    start = data.find(raw)
    assert start >= 0 and len(raw) > count + 16, "the tensor's bytes are not in the file"
    for offset in range(start + 16, start + 16 + count):
        data[offset] ^= 0xFF
    Path(target).write_bytes(bytes(data))
