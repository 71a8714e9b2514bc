"""A toy network and search problem for the search tests."""
from __future__ import annotations

from pathlib import Path

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult
from dse.commands.search import Prepared
from dse.config import SearchConfig
from dse.problem import Limits, Problem, build_problem

TOY_LAYERS = [
    dict(name="first", kind="conv", cin=3, cout=16, kx=3, ky=3, ox=16, oy=16),
    dict(name="dw", kind="depthwise", cin=16, cout=16, kx=3, ky=3, ox=16, oy=16, groups=16),
    dict(name="mid", kind="conv", cin=16, cout=32, kx=3, ky=3, ox=8, oy=8, stride=2),
    dict(name="big", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=64, oy=64),  # spills
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


def stub_probe(calls: list | None = None):
    """Accuracy falls with the analog share and with the bit error rate (deterministic)."""
    def probe(candidate: ProbeCandidate) -> ProbeResult:
        if calls is not None:
            calls.append(candidate)
        analog_share = sum(candidate.n_analog) / 138
        accuracy = 0.95 - 0.04 * analog_share - 50 * max(candidate.weight_ber)
        return ProbeResult(accuracy, 0.0, (accuracy,), 0.001, False)
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
