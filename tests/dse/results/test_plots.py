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


@pytest.mark.plots
def test_the_accuracy_axis_gets_its_intervals_as_error_bars():
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.container import ErrorbarContainer

    from dse.results.plots import error_bars
    rows = pd.DataFrame({"accuracy": [0.9, 0.95], "accuracy_ci_low": [0.88, 0.94],
                         "accuracy_ci_high": [0.91, 0.97], "latency_s": [1e-3, 2e-3]})
    figure, axes = plt.subplots()
    error_bars(axes, rows, "latency_s", "accuracy")
    (bars,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()  # one vertical bar per point, in %
    assert [tuple(s[:, 1].round(6)) for s in segments] == [(88.0, 91.0), (94.0, 97.0)]
    plt.close(figure)
