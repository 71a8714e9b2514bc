"""The network zoo: builders registered by name, plus user models as ``module:function``.

A builder takes ``input_shape`` (channels, height, width) and ``num_classes`` and returns a
``torch.nn.Module``; every zoo network adapts to the dataset (input channels, size, classes).
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from hw_models.errors import ConfigError
from networks.datasets import DatasetSpec, get_dataset_spec
from networks.mobilenet import MobileNetV1
from networks.resnet import ResNet

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class NetworkEntry:
    name: str
    builder: Builder
    reference_dataset: str
    description: str


_REGISTRY: dict[str, NetworkEntry] = {}


def register_network(name: str, *, reference_dataset: str,
                     description: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(input_shape, num_classes)`` under ``name``."""
    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"network '{name}' registered twice")
        _REGISTRY[name] = NetworkEntry(name, builder, reference_dataset, description)
        return builder
    return decorate


def list_networks() -> list[NetworkEntry]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def is_user_model(name: str) -> bool:
    return ":" in name


def reference_dataset(name: str) -> str:
    """The dataset a zoo network is defined for (the default ``--dataset``)."""
    if is_user_model(name):
        raise ConfigError(f"give --dataset for the user model '{name}'")
    return _entry(name).reference_dataset


def build_network(name: str, dataset: DatasetSpec | str) -> nn.Module:
    """Build a zoo network or a user's ``package.module:function`` for ``dataset``."""
    spec = get_dataset_spec(dataset) if isinstance(dataset, str) else dataset
    builder = _import_user_builder(name) if is_user_model(name) else _entry(name).builder
    try:
        model = builder(input_shape=spec.input_shape, num_classes=spec.num_classes)
    except (Exception, SystemExit) as exc:  # a user's builder may fail in any way
        raise ConfigError(f"building '{name}' for {spec.name} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"'{name}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _entry(name: str) -> NetworkEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown network '{name}' (known: {known}; or package.module:function)"
                          ) from None


def _import_user_builder(reference: str) -> Builder:
    return import_callable(reference, what="user model")


def import_callable(reference: str, *, what: str) -> Callable[..., Any]:
    """The function named by ``package.module:function`` (the working directory is on the
    path, as with ``python -m``); ConfigError if it cannot be had."""
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"{what} '{reference}' must look like package.module:function")
    if os.getcwd() not in sys.path:  # as `python -m` does: models next to the user are found
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # ImportError, or anything raised while importing
        raise ConfigError(f"cannot import '{module_name}' for {what} '{reference}': "
                          f"{type(exc).__name__}: {exc}") from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ConfigError(f"'{module_name}' has no callable '{function_name}'")
    return builder


@register_network("resnet8", reference_dataset="cifar10",
                  description="MLPerf Tiny image-classification ResNet-8 (16-32-64, 3 blocks)")
def resnet8(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return ResNet(input_shape[0], num_classes, 16, [(16, 1, 1), (32, 1, 2), (64, 1, 2)])


@register_network("resnet20", reference_dataset="cifar10",
                  description="CIFAR ResNet-20 as in ODiMO (1x1 conv downsample shortcuts)")
def resnet20(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return ResNet(input_shape[0], num_classes, 16, [(16, 3, 1), (32, 3, 2), (64, 3, 2)])


@register_network("resnet18", reference_dataset="tiny-imagenet",
                  description="ResNet-18 for 64x64 inputs (3x3 stride-1 stem, no max-pool)")
def resnet18(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    stages = [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]
    return ResNet(input_shape[0], num_classes, 64, stages)


@register_network("mobilenetv1", reference_dataset="vww",
                  description="MobileNetV1 width 0.25 (MLPerf Tiny Visual Wake Words)")
def mobilenetv1(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return MobileNetV1(input_shape[0], num_classes, width=0.25)
