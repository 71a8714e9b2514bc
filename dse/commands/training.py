"""``dse train`` and ``dse probe``: checkpoints on demand and one candidate's accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.accuracy import error_free
from dse.accuracy.defaults import check_probe_counts
from dse.accuracy.probe import DataRequest, ProbeEstimator, obtain_checkpoint, probe_setup
from dse.commands.catalogue import CostRequest, dram_setting
from dse.evaluate import probe_candidate
from dse.space import Candidate
from dse.workload import load_workload
from hw_models import load_soc
from hw_models.mapping import resolve_mapping
from hw_models.system import system_cost
from networks.probe import ProbeConfig
from networks.train import Progress


def train_report(request: DataRequest, *, progress: Progress | None = None,
                 retrain: bool = False) -> dict[str, Any]:
    checkpoint, path, trained = obtain_checkpoint(request, progress=progress, retrain=retrain)
    return {"network": checkpoint.network, "dataset": checkpoint.dataset,
            "checkpoint": str(path), "trained": trained,
            "tensors_sha256": checkpoint.tensors_sha256,
            "tensors_verified": checkpoint.tensors_verified,
            "val_accuracy": checkpoint.val_accuracy,
            "float_val_accuracy": checkpoint.float_val_accuracy,
            "train_config": checkpoint.train_config}


@dataclass(frozen=True)
class ProbeRequest:
    data: DataRequest
    cost: CostRequest
    config: ProbeConfig


def probe_report(request: ProbeRequest, *, progress: Progress | None = None) -> dict[str, Any]:
    """Accuracy of one mapping at one DRAM operating point, with the all-digital baseline."""
    cost_request = request.cost
    soc = load_soc(cost_request.hw)
    table = load_workload(cost_request.network, cost_request.dataset).table
    n_analog = resolve_mapping(cost_request.mapping, table, soc)
    dram = dram_setting(cost_request, table, soc)
    cost = system_cost(table, soc, n_analog, dram)
    estimator = ProbeEstimator(probe_setup(request.data, request.config,
                                           None if dram is None else dram.device,
                                           progress=progress))
    mapping = Candidate(tuple(int(n) for n in n_analog), None, None, (), ())
    result = estimator(probe_candidate(mapping, cost))
    baseline = estimator(error_free(table.n_layers))
    return {
        "network": cost_request.network, "dataset": request.data.dataset,
        "mapping": cost_request.mapping,
        "dram": None if dram is None else {"device": dram.device.name, "vendor": dram.vendor,
                                           "layout": dram.placement.layout},
        "max_weight_ber": float(np.max(cost.weight_ber)),
        "max_activation_ber": float(np.max(cost.activation_ber)),
        "error_model": request.config.error_model,
        "accuracy": result.accuracy_mean, "accuracy_std": result.accuracy_std,
        "baseline_accuracy": baseline.accuracy_mean,
        "steps": request.config.steps, "seeds": request.config.seeds,
        "seconds": result.seconds, "cached": result.cached,
    }


def probe_request(*, network: str, dataset: str, mapping: str, hw: str, dram: str | None,
                  vendor: str, vdd_v: float | None, trcd_ns: float | None, partitions: str,
                  error_model: int, steps: int, seeds: int, **data: Any) -> ProbeRequest:
    """``dse probe``'s options as a request, checked."""
    check_probe_counts(steps, seeds, steps_option="--steps", seeds_option="--seeds")
    return ProbeRequest(
        data=DataRequest(network=network, dataset=dataset, **data),
        cost=CostRequest(network=network, dataset=dataset, mapping=mapping, hw=hw, dram=dram,
                         vendor=vendor, vdd_v=vdd_v, trcd_ns=trcd_ns, partitions=partitions),
        config=ProbeConfig(steps=steps, seeds=seeds, error_model=error_model))
