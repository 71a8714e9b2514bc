"""``dse train`` and ``dse probe``: checkpoints on demand and one candidate's accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.accuracy import accuracy_change_pp, error_free
from dse.accuracy.defaults import ProbeConfig, check_probe_counts, retired_seeds_message
from dse.accuracy.probe_estimator import (
    DataRequest,
    ProbeEstimator,
    obtain_checkpoint,
    probe_setup,
)
from dse.accuracy.stats import LEVEL, check_level
from dse.commands.catalogue import CostRequest, dram_setting
from dse.commands.reports import ProbeReport, TrainReport
from dse.evaluate import probe_candidate
from dse.space import Candidate
from dse.workload import load_workload
from hw_models import ConfigError, load_soc
from hw_models.mapping import resolve_split
from hw_models.system import system_cost
from networks.train import Progress


def train_report(request: DataRequest, *, progress: Progress | None = None,
                 retrain: bool = False) -> TrainReport:
    checkpoint, path, trained = obtain_checkpoint(request, progress=progress, retrain=retrain)
    return TrainReport(network=checkpoint.network, dataset=checkpoint.dataset,
                       checkpoint=str(path), trained=trained,
                       tensors_sha256=checkpoint.tensors_sha256,
                       tensors_verified=checkpoint.tensors_verified,
                       val_accuracy=checkpoint.val_accuracy,
                       float_val_accuracy=checkpoint.float_val_accuracy,
                       train_config=checkpoint.train_config)


@dataclass(frozen=True)
class ProbeRequest:
    data: DataRequest
    cost: CostRequest
    config: ProbeConfig


def probe_report(request: ProbeRequest, *, progress: Progress | None = None,
                 step_progress: Progress | None = None) -> ProbeReport:
    """Accuracy of one mapping at one DRAM operating point, with the all-digital baseline
    (``progress``: the checkpoint's training if needed; ``step_progress``: the fine-tune
    steps of both probes)."""
    cost_request = request.cost
    soc = load_soc(cost_request.hw)
    table = load_workload(cost_request.network, cost_request.dataset).table
    n_analog, channels = resolve_split(cost_request.mapping, table, soc)
    dram = dram_setting(cost_request, table, soc)
    cost = system_cost(table, soc, n_analog, dram)
    estimator = ProbeEstimator(probe_setup(request.data, request.config,
                                           None if dram is None else dram.device,
                                           progress=progress), on_step=step_progress)
    mapping = Candidate(tuple(int(n) for n in n_analog), None, None, (), (),
                        analog_channels=channels)
    result = estimator(probe_candidate(mapping, cost))
    baseline = estimator(error_free(table.n_layers))
    low, high = result.interval()
    baseline_low, baseline_high = baseline.interval()
    change, change_low, change_high = accuracy_change_pp(baseline, result)
    config = request.config
    return ProbeReport(
        network=cost_request.network, dataset=request.data.dataset,
        mapping=cost_request.mapping,
        dram=None if dram is None else {"device": dram.device.name, "vendor": dram.vendor,
                                        "ber_quantile": dram.ber_quantile,
                                        "layout": dram.placement.layout},
        max_weight_ber=float(np.max(cost.weight_ber)),
        max_activation_ber=float(np.max(cost.activation_ber)),
        error_model=config.error_model,
        accuracy=result.accuracy_mean, accuracy_std=result.accuracy_std,
        accuracy_ci_low=low, accuracy_ci_high=high,
        baseline_accuracy=baseline.accuracy_mean, baseline_accuracy_ci_low=baseline_low,
        baseline_accuracy_ci_high=baseline_high,
        accuracy_change_pp=change, accuracy_change_ci_low_pp=change_low,
        accuracy_change_ci_high_pp=change_high,
        images=int(result.correct.shape[2]) if result.correct is not None else None,
        split=config.split, steps=config.steps, finetune_seeds=config.finetune_seeds,
        error_seeds=config.error_seeds, interval_level=config.interval_level,
        seconds=result.seconds, cached=result.cached,
    )


def probe_request(*, network: str, dataset: str, mapping: str, hw: str, dram: str | None,
                  vendor: str, ber_quantile: str, vdd_v: float | None, trcd_ns: float | None,
                  partition_layout: str,
                  error_model: int, steps: int, finetune_seeds: int, error_seeds: int,
                  seeds: int | None = None, interval_level: float = LEVEL,
                  **data: Any) -> ProbeRequest:
    """``dse probe``'s options as a request, checked."""
    if seeds is not None:
        raise ConfigError(retired_seeds_message("--seeds", "--finetune-seeds",
                                                "--error-seeds"))
    check_level(interval_level)
    check_probe_counts(steps, {"--finetune-seeds": finetune_seeds,
                               "--error-seeds": error_seeds}, steps_option="--steps")
    return ProbeRequest(
        data=DataRequest(network=network, dataset=dataset, **data),
        cost=CostRequest(network=network, dataset=dataset, mapping=mapping, hw=hw, dram=dram,
                         vendor=vendor, ber_quantile=ber_quantile, vdd_v=vdd_v,
                         trcd_ns=trcd_ns, partition_layout=partition_layout),
        config=ProbeConfig(steps=steps, finetune_seeds=finetune_seeds,
                           error_seeds=error_seeds, error_model=error_model,
                           interval_level=interval_level))
