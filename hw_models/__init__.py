"""Analytical cost models for DNN layers on a heterogeneous SoC (numpy only, no torch)."""
from hw_models.cost_lookup import CostLookup, CostTotals, build_cost_lookup
from hw_models.diana import ComputeCost, check_mapping, compute_cost
from hw_models.errors import ConfigError
from hw_models.layer_table import LAYER_KINDS, LayerTable
from hw_models.soc import Soc, list_soc_presets, load_soc

__all__ = [
    "ComputeCost", "ConfigError", "CostLookup", "CostTotals", "LAYER_KINDS", "LayerTable",
    "Soc", "build_cost_lookup", "check_mapping", "compute_cost", "list_soc_presets",
    "load_soc",
]
