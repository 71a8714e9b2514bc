"""A toy network and search problem for the search tests."""
from __future__ import annotations

from pathlib import Path

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult, error_free
from dse.commands.search import Prepared
from dse.config import SearchConfig
from dse.engines.optuna_engine import OptunaSettings
from dse.engines.testing import TOY_LAYERS, StubEstimator  # noqa: F401 (TOY_LAYERS: conftest)
from dse.problem import Limits, Problem, build_problem


def stub_probe(calls: list | None = None):
    """The contract's stub estimator (accuracy falls with the analog share and the weight
    BER), recording the candidates it was asked about in ``calls``."""
    estimator = StubEstimator()

    def probe(candidate: ProbeCandidate) -> ProbeResult:
        if calls is not None:
            calls.append(candidate)
        return estimator(candidate)
    return probe


def toy_problem(table, *, objectives="accuracy,latency,energy", dram="lpddr4-3200",
                limits=Limits(), ber_quantile="max", partitions=1, hw="diana") -> Problem:
    return build_problem(network="toy", dataset=None, hw=hw, dram=dram, vendor="B",
                         ber_quantile=ber_quantile, objectives=objectives, limits=limits,
                         table=table, partitions=partitions)


def toy_accuracy(problem: Problem, calls=None) -> AccuracyModel | None:
    """The stub with its all-digital baseline measured (drops are paired with it)."""
    if not problem.needs_accuracy:
        return None
    baseline = StubEstimator()(error_free(problem.table.n_layers))
    return AccuracyModel(stub_probe(calls), baseline.accuracy_mean, baseline)


def toy_prepared(table, tmp_path: Path, *, trials=8, study="toy", sampler="tpe",
                 identity_extra=None, calls=None, confirm=True, **problem_kw) -> Prepared:
    problem = toy_problem(table, **problem_kw)
    config = SearchConfig.from_options(
        trials=trials, engine_settings=OptunaSettings(sampler=sampler), study=study,
        results_dir=str(tmp_path), confirm=confirm)
    identity = {"network": "toy", "dataset": None, "hw": "diana",
                "dram": problem_kw.get("dram", "lpddr4-3200"), "vendor": "B",
                "ber_quantile": problem.ber_quantile, "partitions": problem.space.partitions,
                "objectives": ",".join(problem.objectives), **(identity_extra or {})}
    accuracy = toy_accuracy(problem, calls)
    return Prepared(config, problem, accuracy, study,
                    f"sqlite:///{tmp_path / study / 'study.db'}", tmp_path / study, identity,
                    StubEstimator(split="test") if accuracy is not None else None)
