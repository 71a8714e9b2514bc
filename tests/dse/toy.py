"""A toy network and search context for the search tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dse.objectives import Context, Limits, parse_objectives
from dse.search import Prepared, SearchConfig
from dse.space import build_space
from hw_models import load_soc
from hw_models.dram import load_dram
from hw_models.traffic import layer_traffic
from networks.probe import ProbeCandidate, ProbeResult

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


def toy_context(table, *, objectives="accuracy,latency,energy", dram="lpddr4-3200",
                limits=Limits(), calls=None) -> Context:
    soc = load_soc("diana")
    device = None if dram == "none" else load_dram(dram)
    spilled = layer_traffic(table, soc, np.zeros(table.n_layers, dtype=int)).spilled
    names = parse_objectives(objectives)
    return Context(space=build_space(table, spilled, device, "B"), soc=soc, vendor="B",
                   objectives=names, limits=limits,
                   probe=stub_probe(calls) if "accuracy" in names else None,
                   baseline_accuracy=0.95 if "accuracy" in names else None)


def toy_prepared(table, tmp_path: Path, *, trials=8, study="toy", sampler="tpe",
                 identity_extra=None, **context_kw) -> Prepared:
    context = toy_context(table, **context_kw)
    config = SearchConfig(trials=trials, sampler=sampler, study=study,
                          results_dir=str(tmp_path))
    identity = {"network": "toy", "objectives": ",".join(context.objectives),
                **(identity_extra or {})}
    return Prepared(config, context, study, f"sqlite:///{tmp_path / study / 'study.db'}",
                    tmp_path / study, identity, None)
