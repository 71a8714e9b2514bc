"""Small shared test helpers (plain functions; fixtures live in conftest.py)."""
from __future__ import annotations

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
