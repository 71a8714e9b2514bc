"""Torch side of dse: the network zoo, dataset shapes and layer-table extraction."""
from networks.datasets import DATASETS, DatasetSpec, get_dataset_spec
from networks.extract import extract_layer_table
from networks.zoo import (
                          build_network,
                          is_user_model,
                          list_networks,
                          reference_dataset,
                          register_network,
)

__all__ = [
    "DATASETS", "DatasetSpec", "build_network", "extract_layer_table", "get_dataset_spec",
    "is_user_model", "list_networks", "reference_dataset", "register_network",
]
