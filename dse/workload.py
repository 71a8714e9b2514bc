"""Resolve a network and dataset into a layer table (the torch side runs once here)."""
from __future__ import annotations

from dataclasses import dataclass

from hw_models.layer_table import LayerTable
from networks import (
    DatasetSpec,
    build_network,
    extract_layer_table,
    get_dataset_spec,
    reference_dataset,
)


@dataclass(frozen=True)
class Workload:
    network: str
    dataset: DatasetSpec
    table: LayerTable
    parameters: int


def load_workload(network: str, dataset: str | None = None) -> Workload:
    """Build ``network`` for ``dataset`` (default: the network's reference dataset) and
    extract its layer table."""
    spec = get_dataset_spec(reference_dataset(network) if dataset is None else dataset)
    model = build_network(network, spec)
    table = extract_layer_table(model, spec.input_shape,
                                num_classes=spec.num_classes)
    parameters = sum(p.numel() for p in model.parameters())
    return Workload(network=network, dataset=spec, table=table, parameters=parameters)
