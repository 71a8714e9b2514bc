"""Plots and outputs of a study: every figure, the layer names from the stored table."""
from __future__ import annotations

import pytest
from toy import toy_prepared

from dse.commands.search import run_search
from dse.results.outputs import layer_channels
from dse.results.plots import AXES, selected_points
from dse.results.tables import trials_frame


@pytest.mark.plots
def test_outputs_and_plots_of_a_short_study(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6, sampler="random")
    run_search(prepared)
    import optuna

    from dse.engines.optuna.storage import open_storage
    study = optuna.load_study(study_name="toy", storage=open_storage(prepared.storage_url))
    assert layer_channels(study) == [("first", 16), ("dw", 16), ("mid", 32), ("big", 64),
                                     ("fc", 10)]
    names = {p.name for p in prepared.out_dir.iterdir()}
    assert {"front_accuracy_latency_s.png", "front_3d.svg", "hypervolume.csv",
            "hypervolume.png", "layer_splits.png", "front_latency_s_energy_j.png"} <= names
    frame = trials_frame(study)
    chosen = selected_points(frame[frame["is_pareto"]], ["accuracy", "latency", "energy"])
    assert 1 <= len(chosen) <= 4
    assert AXES["latency_s"] == ("latency (ms)", 1e3)
