"""Plots and outputs of a study: every figure, the layer names from the stored table, legends
off the data, units with their symbols, the test front only where points are confirmed."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from toy import toy_prepared

from cli import cli
from dse.commands.search import run_search
from dse.metrics import plotted_metric
from dse.pareto import pareto_mask
from dse.results import plots
from dse.results.outputs import layer_channels
from dse.results.plots import axis, selected_points
from dse.results.tables import trials_frame
from hw_models import ConfigError

OBJECTIVES = ["accuracy", "latency", "energy"]
BASELINES = ["all-digital", "all-analog", "diana-heuristic", "min-latency"]
LAYERS = [("first", 16), ("mid", 32), ("fc", 10)]


def study_frame(*, confirmed: bool, trials: int = 30) -> pd.DataFrame:
    """A trials frame as ``trials_frame`` makes it: four baselines first, then trials; the
    front and the baselines confirmed on the test split when ``confirmed``."""
    rng = np.random.default_rng(0)
    accuracy = rng.uniform(0.95, 0.99, trials)
    frame = pd.DataFrame({
        "trial": np.arange(trials), "state": "COMPLETE", "feasible": True,
        "accuracy": accuracy, "accuracy_ci_low": accuracy - 0.02,
        "accuracy_ci_high": np.minimum(accuracy + 0.02, 1.0),
        "latency_s": rng.uniform(5.4e-5, 5.7e-5, trials),
        "energy_j": rng.uniform(1.8e-6, 2.3e-6, trials),
        "is_baseline": np.arange(trials) < len(BASELINES),
        "baseline": BASELINES + [""] * (trials - len(BASELINES)), "engine": "optuna",
        **{f"n_analog:{name}": rng.integers(0, cout + 1, trials) for name, cout in LAYERS}})
    frame["is_pareto"] = pareto_mask(frame[["accuracy", "latency_s", "energy_j"]].to_numpy(),
                                     ["maximize", "minimize", "minimize"])
    frame["is_pareto_robust"] = frame["is_pareto"]
    chosen = (frame["is_pareto"] | frame["is_baseline"]) & confirmed
    test = np.where(chosen, accuracy - 0.005, np.nan)
    frame["test_accuracy"] = test
    frame["test_accuracy_ci_low"] = test - 0.015
    frame["test_accuracy_ci_high"] = test + 0.015
    return frame


def figures(frame: pd.DataFrame) -> dict[str, plt.Figure]:
    front = frame[frame["is_pareto"]]
    return {"front": plots.front_figure(frame, "accuracy", "latency_s", "energy_j"),
            "front_3d": plots.front_3d_figure(frame, ["accuracy", "latency_s", "energy_j"]),
            "test_front": plots.confirmed_figure(frame, OBJECTIVES),
            "layer_splits": plots.layer_splits_figure(front, OBJECTIVES, LAYERS)}


@pytest.mark.plots
def test_outputs_and_plots_of_a_short_study(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6, sampler="random")
    run_search(prepared)
    import optuna

    from dse.storage.storage import open_storage
    study = optuna.load_study(study_name="toy", storage=open_storage(prepared.storage_url))
    assert layer_channels(study) == [("first", 16), ("dw", 16), ("mid", 32), ("big", 64),
                                     ("fc", 10)]
    names = {p.name for p in prepared.out_dir.iterdir()}
    assert {"front_accuracy_latency_s.png", "front_3d.svg", "hypervolume.csv",
            "hypervolume.png", "layer_splits.png", "front_latency_s_energy_j.png",
            "test_front.png", "test_front.svg"} <= names
    frame = trials_frame(study)
    chosen = selected_points(frame[frame["is_pareto"]], ["accuracy", "latency", "energy"])
    assert 1 <= len(chosen) <= 4


def test_times_and_energies_take_the_prefix_that_keeps_ticks_short():
    rows = pd.DataFrame({"latency_s": [5.4e-5, 5.7e-5], "energy_j": [1.9e-6, 2.3e-6],
                         "compute_latency_s": [1.5e-3, 2e-3], "accuracy": [0.9, 0.95],
                         "test_accuracy": [0.91, np.nan]})
    assert axis("latency_s", rows) == plots.Axis("latency_s", "latency (µs)", 1e6)
    assert axis("energy_j", rows) == plots.Axis("energy_j", "energy (µJ)", 1e6)
    assert axis("compute_latency_s", rows).label == "compute latency (ms)"
    assert axis("accuracy", rows) == plots.Axis("accuracy", "validation accuracy (%)", 100.0)
    assert axis("test_accuracy", rows).label == "test accuracy (%)"
    assert axis("energy_j", rows.iloc[0:0]).label == "energy (µJ)"  # nothing to size it by
    assert "uJ" not in plotted_metric("dram_energy").label
    with pytest.raises(ConfigError, match="unknown quantity 'speed'"):
        plotted_metric("speed")


@pytest.mark.plots
def test_legends_sit_outside_every_axes_and_name_each_baseline():
    for name, figure in figures(study_frame(confirmed=True)).items():
        figure.canvas.draw()
        [legend] = figure.legends
        box = legend.get_window_extent()
        for axes in figure.axes:  # the colour bar's too
            assert not box.overlaps(axes.get_window_extent()), name
            assert not axes.texts, name  # no names written over the data
        if name != "layer_splits":
            labels = [text.get_text() for text in legend.get_texts()]
            assert [f"baseline: {b}" for b in BASELINES] == [
                label for label in labels if label.startswith("baseline")], name
        plt.close(figure)


@pytest.mark.plots
def test_every_tick_label_is_short():
    for name, figure in figures(study_frame(confirmed=True)).items():
        figure.canvas.draw()
        for axes in figure.axes:
            for tick in [*axes.get_xticklabels(), *axes.get_yticklabels()]:
                text = tick.get_text().replace("−", "-")
                if text and text[0].isdigit():
                    assert len(text.split(".")[-1]) <= 2 or "." not in text, (name, text)
        plt.close(figure)


@pytest.mark.plots
def test_the_test_front_is_written_only_when_points_are_confirmed(tmp_path, monkeypatch):
    written: list[str] = []

    def record(figure, out_dir, stem):
        written.append(stem)
        plt.close(figure)
        return [out_dir / f"{stem}.png"]
    monkeypatch.setattr(plots, "save", record)
    plots.write_plots(study_frame(confirmed=False), OBJECTIVES, LAYERS, tmp_path)
    assert "test_front" not in written and "front_3d" in written
    written.clear()
    plots.write_plots(study_frame(confirmed=True), OBJECTIVES, LAYERS, tmp_path)
    assert written == ["front_accuracy_latency_s", "front_accuracy_energy_j",
                       "front_latency_s_energy_j", "front_3d", "test_front", "hypervolume",
                       "layer_splits"]


@pytest.mark.plots
def test_the_test_front_shows_validation_against_test_with_both_intervals():
    from matplotlib.container import ErrorbarContainer

    frame = study_frame(confirmed=True)
    figure = plots.confirmed_figure(frame, OBJECTIVES)
    first, *costs = figure.axes
    assert [a.get_xlabel() for a in figure.axes] == ["validation accuracy (%)",
                                                     "latency (µs)", "energy (µJ)"]
    assert {a.get_ylabel() for a in figure.axes} == {"test accuracy (%)"}
    [bars] = [c for c in first.containers if isinstance(c, ErrorbarContainer)]
    assert bars.has_xerr and bars.has_yerr
    horizontal, vertical = (lines.get_segments() for lines in bars.lines[2])
    assert len(horizontal) == len(vertical) == frame["test_accuracy"].notna().sum()
    assert [tuple(s[:, 1].round(6)) for s in vertical[:1]] == [(
        round(frame["test_accuracy_ci_low"][0] * 100, 6),
        round(frame["test_accuracy_ci_high"][0] * 100, 6))]
    [line] = [line for line in first.get_lines() if line.get_label() == "test = validation"]
    assert np.allclose(line.get_xdata(), line.get_ydata())
    assert "95% confidence intervals" in figure.get_suptitle()
    plt.close(figure)
    figure = plots.confirmed_figure(frame, OBJECTIVES, level=0.9)
    assert "90% confidence intervals" in figure.get_suptitle()
    plt.close(figure)


@pytest.mark.plots
def test_layer_splits_name_the_layers_and_why_each_trial():
    frame = study_frame(confirmed=False)
    front = frame[frame["is_pareto"]]
    chosen = selected_points(front, OBJECTIVES)
    reasons = ", ".join(chosen["selected_for"]).split(", ")
    assert {"highest accuracy", "lowest latency", "lowest energy", "most balanced"} == set(
        reasons)
    figure = plots.layer_splits_figure(front, OBJECTIVES, LAYERS)
    [axes] = figure.axes
    assert axes.get_xlabel() == "layer"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [f"trial {int(t)} ({why})" for t, why in
                      zip(chosen["trial"], chosen["selected_for"])]
    plt.close(figure)


@pytest.mark.plots
def test_the_hypervolume_states_its_normalisation_and_reference():
    frame = study_frame(confirmed=False)
    history = plots.hypervolume_history(frame, OBJECTIVES)
    figure = plots.hypervolume_figure(history, OBJECTIVES)
    title = figure.axes[0].get_title()
    assert "normalised to [0, 1] over the 30 complete trials" in title
    assert "reference point 1.1" in title and "at most 1.33" in title
    plt.close(figure)


@pytest.mark.plots
def test_the_3d_front_holds_every_baseline_within_its_limits():
    frame = study_frame(confirmed=False)
    frame.loc[1, ["accuracy", "latency_s", "feasible"]] = [0.5, 1e-4, False]  # far off
    figure = plots.front_3d_figure(frame, ["accuracy", "latency_s", "energy_j"])
    [axes] = figure.axes
    low, high = axes.get_xlim()
    assert low < 50 < high
    low, high = axes.get_ylim()
    assert low < 100 < high  # µs
    plt.close(figure)


@pytest.mark.plots
def test_the_accuracy_axis_gets_its_intervals_as_error_bars():
    from matplotlib.container import ErrorbarContainer

    from dse.results.plots import error_bars
    rows = pd.DataFrame({"accuracy": [0.9, 0.95], "accuracy_ci_low": [0.88, 0.94],
                         "accuracy_ci_high": [0.91, 0.97], "latency_s": [1e-3, 2e-3]})
    figure, axes = plt.subplots()
    error_bars(axes, rows, axis("latency_s", rows), axis("accuracy", rows))
    (bars,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()  # one vertical bar per point, in %
    assert [tuple(s[:, 1].round(6)) for s in segments] == [(88.0, 91.0), (94.0, 97.0)]
    plt.close(figure)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
@pytest.mark.plots
def test_pareto_plots_the_test_accuracy_of_confirmed_points_only(toy_table, tmp_path):
    unconfirmed = toy_prepared(toy_table, tmp_path, trials=5, sampler="random",
                               study="unconfirmed", confirm=False)
    run_search(unconfirmed)
    result = run("pareto", "unconfirmed", "--results-dir", str(tmp_path), "--x",
                 "test_accuracy", "--y", "energy")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "confirmed on the test split" in result.stderr
    assert "dse confirm unconfirmed" in result.stderr
    confirmed = toy_prepared(toy_table, tmp_path, trials=5, sampler="random",
                             study="confirmed")
    run_search(confirmed)
    out = tmp_path / "plots"
    result = run("pareto", "confirmed", "--results-dir", str(tmp_path), "--x", "energy",
                 "--y", "test_accuracy", "--color", "latency", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert (out / "front_energy_j_test_accuracy.png").is_file()
    assert (out / "test_front.png").is_file()
