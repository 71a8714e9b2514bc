"""A toy network and search problem for the search tests."""
from __future__ import annotations

from pathlib import Path

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult
from dse.commands.search import Prepared
from dse.config import SearchConfig
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
                limits=Limits()) -> Problem:
    return build_problem(network="toy", dataset=None, dram=dram, vendor="B",
                         objectives=objectives, limits=limits, table=table)


def toy_accuracy(problem: Problem, calls=None) -> AccuracyModel | None:
    return AccuracyModel(stub_probe(calls), 0.95) if problem.needs_accuracy else None


def toy_prepared(table, tmp_path: Path, *, trials=8, study="toy", sampler="tpe",
                 identity_extra=None, calls=None, **problem_kw) -> Prepared:
    problem = toy_problem(table, **problem_kw)
    config = SearchConfig(trials=trials, sampler=sampler, study=study,
                          results_dir=str(tmp_path))
    identity = {"network": "toy", "dataset": None, "hw": "diana",
                "dram": problem_kw.get("dram", "lpddr4-3200"), "vendor": "B",
                "objectives": ",".join(problem.objectives), **(identity_extra or {})}
    return Prepared(config, problem, toy_accuracy(problem, calls), study,
                    f"sqlite:///{tmp_path / study / 'study.db'}", tmp_path / study, identity)
