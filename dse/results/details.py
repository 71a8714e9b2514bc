"""One trial in full, as ``dse show`` prints it and the report lists it: the per-layer split,
where each tensor lives, each DRAM partition's point, costs and accuracies (no torch for
studies that store their layer table)."""
from __future__ import annotations

from typing import Any

import optuna

from dse.accuracy.stats import LEVEL
from dse.evaluate import candidate_cost, placement
from dse.metrics import ACCURACY_STATS, DRAM_BYTES, NOMINAL_DRAM_ENERGY, with_accuracy_change
from dse.problem import Problem, build_problem
from dse.results.confirmation import confirmed_columns
from dse.results.ledger import (
    BASELINE_ATTR,
    CONFIG_ATTR,
    DELIVERED_WEIGHTS_ATTR,
    ENGINE_ATTR,
    ENGINE_LABEL_ATTR,
    LEGACY_ENGINE,
    TEST_ACCURACY_ATTR,
    constraints_of,
    metrics_of,
    objectives_of,
    stored_table,
    trial_candidate,
)
from dse.space import Candidate
from hw_models.system import SystemCost
from hw_models.traffic import LEVEL_NAMES

SHOWN_METRICS = ("accuracy", *ACCURACY_STATS, "latency_s", "energy_j", "dram_energy_j",
                 "compute_energy_j", "compute_latency_s", NOMINAL_DRAM_ENERGY, DRAM_BYTES,
                 "probed")


def problem_of(study: optuna.Study) -> Problem:
    """The study's problem, from its stored settings and layer table (no torch; studies
    made before the table was stored rebuild the network)."""
    config = study.user_attrs[CONFIG_ATTR]
    return build_problem(network=config["network"], dataset=config["dataset"],
                         hw=config["hw"], dram=config["dram"], vendor=config["vendor"],
                         # studies made before the choice existed used the mean BER(VDD)
                         ber_quantile=config.get("ber_quantile", "mean"),
                         objectives=tuple(objectives_of(study)) or ("latency",),
                         table=stored_table(study), partitions=config.get("partitions", 1))


def trial_details(study: optuna.Study, trial: optuna.trial.FrozenTrial, problem: Problem, *,
                  confirmed: dict[int, dict[str, float]] | None = None) -> dict[str, Any]:
    """Everything ``dse show`` gives about a complete ``trial``; ``confirmed`` is the study's
    ``confirmed_columns`` when the caller has them already."""
    config = study.user_attrs[CONFIG_ATTR]
    candidate = trial_candidate(trial, problem.space)
    cost = candidate_cost(candidate, problem)
    confirmed = confirmed_columns(study) if confirmed is None else confirmed
    return {
        "study": study.study_name, "trial": trial.number,
        "baseline": trial.user_attrs.get(BASELINE_ATTR, ""),
        "engine": (trial.user_attrs.get(ENGINE_LABEL_ATTR)
                   or trial.user_attrs.get(ENGINE_ATTR, LEGACY_ENGINE)),
        "delivered_weights": delivered_record(trial.user_attrs.get(DELIVERED_WEIGHTS_ATTR)),
        "network": config["network"], "dataset": config["dataset"], "dram": config["dram"],
        "partitions": [] if problem.device is None else [
            {"name": p.name, "capacity_bytes": p.capacity_bytes, "vdd_v": p.vdd_v,
             "trcd_ns": p.trcd_ns}
            for p in placement(candidate, problem.device).partitions],
        "metrics": {key: with_accuracy_change(metrics_of(trial)).get(key)
                    for key in SHOWN_METRICS},
        "constraints": constraints_of(trial),
        "test": confirmed.get(trial.number),
        "interval_level": config.get("interval_level", LEVEL),
        "test_accuracy": study.user_attrs.get(TEST_ACCURACY_ATTR, {}).get(str(trial.number)),
        "layers": layer_rows(candidate, cost, problem),
    }


def delivered_record(record: Any) -> dict[str, Any] | None:
    """What ``dse show`` says of the weights an engine delivered with the trial: their
    SHA-256, file and the training samples that made them (None: the study's checkpoint)."""
    if not isinstance(record, dict):
        return None
    return {key: record.get(key) for key in ("tensors_sha256", "file", "samples")}


def layer_rows(candidate: Candidate, cost: SystemCost, problem: Problem
               ) -> list[dict[str, Any]]:
    """Per layer: its split, where its weights and input live, its costs and BERs."""
    table, traffic = problem.table, cost.traffic
    names = ([p.name for p in placement(candidate, problem.device).partitions]
             if problem.device is not None else [])

    def where_weights(i: int) -> str:
        if not names:
            return "no DRAM"
        if traffic.weights_resident[i]:
            return "resident in L2"
        return names[candidate.weight_partition[i]]

    def where_input(i: int) -> str:
        if i == 0:
            return "from the host"
        if not names or not traffic.input_in_dram[i]:
            return "on chip"
        return names[candidate.activation_partition[i]]

    def where_shortcut(i: int) -> str | None:
        slot = int(table.shortcut_tensor[i])
        if slot < 0:
            return None
        if not names or not traffic.shortcut_in_dram[i]:
            return "on chip"
        return names[candidate.activation_partition[slot]]  # placed with its source

    return [{
        "name": table.name[i], "kind": table.kind[i], "cout": int(table.cout[i]),
        "n_digital": int(table.cout[i] - candidate.n_analog[i]),
        "n_analog": int(candidate.n_analog[i]),
        "weights_partition": where_weights(i),
        "activations_partition": where_input(i),
        "working_set": LEVEL_NAMES[int(traffic.level[i])],
        "latency_s": float(cost.latency_s[i]),
        "compute_energy_j": float(cost.compute.energy_j[i]),
        "dram_energy_j": float(cost.dram_energy_j[i]),
        "weight_ber": float(cost.weight_ber[i]),
        "activation_ber": float(cost.activation_ber[i]),
        "shortcut_partition": where_shortcut(i),
        "shortcut_ber": float(0.0 if cost.shortcut_ber is None else cost.shortcut_ber[i]),
    } for i in range(table.n_layers)]
