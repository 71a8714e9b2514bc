"""Plots of a study (PNG and SVG): pairwise fronts, 3-D front, hypervolume, per-layer splits."""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dse import pareto  # noqa: E402
from dse.metrics import BY_COLUMN, BY_NAME, objective_columns  # noqa: E402
from dse.results.files import atomic_path, write_csv  # noqa: E402

# column -> (axis label, factor from the stored unit to the shown one)
AXES = {column: (m.label, m.display_scale) for column, m in BY_COLUMN.items()}


def save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=150, bbox_inches="tight", format=path.suffix[1:])
    plt.close(figure)
    return paths


def scaled(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype=float) * AXES[column][1]


def pairwise_front(frame: pd.DataFrame, x: str, y: str, color: str | None, out_dir: Path
                   ) -> list[Path]:
    """All complete trials, the front coloured by ``color``, baselines starred and named."""
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    done = frame[frame["state"] == "COMPLETE"]
    feasible = done[done["feasible"]]
    engines = by_engine(done)
    for engine, part in engines:  # thousands of points: one image in the SVG
        axes.scatter(scaled(part, x), scaled(part, y), s=10, c="0.8", rasterized=True,
                     marker=ENGINE_MARKERS.get(engine, "P"),
                     label="trials" if len(engines) == 1 else f"trials ({engine})")
    front = feasible[feasible["is_pareto"]].sort_values(x)
    if "is_pareto_robust" in feasible:
        near = feasible[feasible["is_pareto_robust"] & ~feasible["is_pareto"]]
        if len(near):
            axes.scatter(scaled(near, x), scaled(near, y), s=30, facecolors="none",
                         edgecolors="tab:blue", linewidths=0.8, zorder=2,
                         label="within the accuracy interval of the front")
    error_bars(axes, front, x, y)
    shade = scaled(front, color) if color else None
    points = None
    for engine, part in by_engine(front):
        style = ({"c": scaled(part, color), "cmap": "viridis", "vmin": np.nanmin(shade),
                  "vmax": np.nanmax(shade)} if color and shade is not None and len(shade)
                 else {"c": "tab:blue"})
        points = axes.scatter(scaled(part, x), scaled(part, y), s=36, edgecolors="k",
                              marker=ENGINE_MARKERS.get(engine, "P"), zorder=3,
                              label="Pareto front" if len(engines) == 1
                              else f"Pareto front ({engine})", **style)
    if color and len(front) and points is not None:
        figure.colorbar(points, ax=axes, label=AXES[color][0])
    for _, base in done[done["is_baseline"]].iterrows():
        axes.scatter(base[x] * AXES[x][1], base[y] * AXES[y][1], marker="*", s=160,
                     c="tab:red", edgecolors="k", zorder=4)
        axes.annotate(base["baseline"], (base[x] * AXES[x][1], base[y] * AXES[y][1]),
                      textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xlabel(AXES[x][0])
    axes.set_ylabel(AXES[y][0])
    axes.legend(loc="best", fontsize=8)
    axes.grid(alpha=0.3)
    return save(figure, out_dir, f"front_{x}_{y}")


ENGINE_MARKERS = {"optuna": "o", "odimo": "s", "eden": "^", "odimo+eden": "D"}


def by_engine(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows grouped by the engine that proposed them (all one group in studies that
    predate the column)."""
    if "engine" not in rows or not len(rows):
        return [("optuna", rows)]
    return [(str(engine), part) for engine, part in rows.groupby("engine", sort=True)]


def error_bars(axes: plt.Axes, rows: pd.DataFrame, x: str, y: str) -> None:
    """95 % intervals of the accuracy axis (validation, or test where confirmed)."""
    for column, horizontal in ((x, True), (y, False)):
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column != "accuracy" or low not in rows or not len(rows):
            continue
        centre = scaled(rows, column)
        spread = np.vstack([centre - rows[low].to_numpy(float) * AXES[column][1],
                            rows[high].to_numpy(float) * AXES[column][1] - centre])
        spread = np.where(np.isfinite(spread), np.maximum(spread, 0), 0)
        axes.errorbar(scaled(rows, x), scaled(rows, y), xerr=spread if horizontal else None,
                      yerr=None if horizontal else spread, fmt="none", ecolor="0.35",
                      elinewidth=0.8, capsize=2, zorder=2.5)


CLOUD_3D_POINTS = 2000  # depth-sorting more grey points costs seconds and shows nothing new


def front_3d(frame: pd.DataFrame, columns: list[str], out_dir: Path) -> list[Path]:
    """The front in 3-D over a grey cloud of the feasible trials (a seeded sample of
    ``CLOUD_3D_POINTS`` when there are more; the title says so)."""
    figure = plt.figure(figsize=(6.4, 5.2))
    axes = figure.add_subplot(projection="3d")
    done = frame[(frame["state"] == "COMPLETE") & frame["feasible"]]
    front = done[done["is_pareto"]]
    cloud = done if len(done) <= CLOUD_3D_POINTS else done.sample(CLOUD_3D_POINTS,
                                                                   random_state=0)
    if len(cloud) < len(done):
        axes.set_title(f"grey: {len(cloud):,} of {len(done):,} feasible trials", fontsize=8)
    axes.scatter(*(scaled(cloud, c) for c in columns), s=6, c="0.75", rasterized=True)
    axes.scatter(*(scaled(front, c) for c in columns), s=30, c="tab:blue", edgecolors="k")
    bases = done[done["is_baseline"]]
    axes.scatter(*(scaled(bases, c) for c in columns), marker="*", s=120, c="tab:red")
    axes.set_xlabel(AXES[columns[0]][0])
    axes.set_ylabel(AXES[columns[1]][0])
    axes.set_zlabel(AXES[columns[2]][0])
    return save(figure, out_dir, "front_3d")


def hypervolume_history(frame: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Hypervolume of the feasible front after each trial, on losses normalised to [0, 1]
    by the range seen over all complete trials (reference: 1.1 in every dimension)."""
    columns, directions = objective_columns(objectives)
    done = frame[frame["state"] == "COMPLETE"].sort_values("trial")
    losses = pareto.to_losses(done[columns].to_numpy(dtype=float), directions)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of unknowns (all NaN)
        low, high = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
    normalised = (losses - low) / np.where(high > low, high - low, 1.0)
    volumes = pareto.hypervolume_history(normalised, done["feasible"].to_numpy(bool),
                                         np.full(len(columns), 1.1))
    return pd.DataFrame({"trial": done["trial"].to_numpy(), "hypervolume": volumes})


def plot_hypervolume(history: pd.DataFrame, out_dir: Path) -> list[Path]:
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    axes.plot(history["trial"], history["hypervolume"], drawstyle="steps-post")
    axes.set_xlabel("trial")
    axes.set_ylabel("hypervolume (normalised)")
    axes.grid(alpha=0.3)
    return save(figure, out_dir, "hypervolume")


def selected_points(front: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Up to four front points: the best in each objective and the most balanced one."""
    chosen = []
    for name in objectives[:3]:
        column = BY_NAME[name].column
        maximise = BY_NAME[name].direction == "maximize"
        chosen.append(front[column].idxmax() if maximise else front[column].idxmin())
    columns, directions = objective_columns(objectives)
    losses = pareto.to_losses(front[columns].to_numpy(float), directions)
    spread = np.ptp(losses, axis=0)
    balanced = ((losses - losses.min(axis=0)) / np.where(spread > 0, spread, 1)).sum(axis=1)
    chosen.append(front.index[int(np.argmin(balanced))])
    return front.loc[list(dict.fromkeys(chosen))]


def layer_splits(front: pd.DataFrame, objectives: list[str], layers: list[tuple[str, int]],
                 out_dir: Path) -> list[Path]:
    """Share of each layer's output channels on the analog array, for selected points."""
    points = selected_points(front, objectives)
    figure, axes = plt.subplots(figsize=(max(6.4, 0.3 * len(layers)), 3.8))
    width = 0.8 / max(len(points), 1)
    positions = np.arange(len(layers))
    for offset, (_, row) in enumerate(points.iterrows()):
        shares = [row.get(f"n_analog:{name}", 0) / cout if f"n_analog:{name}" in row else 0.0
                  for name, cout in layers]
        axes.bar(positions + offset * width, np.nan_to_num(shares), width,
                 label=f"trial {int(row['trial'])}")
    axes.set_xticks(positions + 0.4 - width / 2, [name for name, _ in layers], rotation=90,
                    fontsize=7)
    axes.set_ylabel("analog share of output channels")
    axes.set_ylim(0, 1.05)
    axes.legend(fontsize=8)
    return save(figure, out_dir, "layer_splits")


def write_plots(frame: pd.DataFrame, objectives: list[str], layers: list[tuple[str, int]],
                out_dir: Path, *, x: str | None = None, y: str | None = None,
                color: str | None = None) -> list[Path]:
    """Every plot the study supports; ``x``/``y``/``color`` add one chosen view."""
    if frame.empty or not (frame["state"] == "COMPLETE").any():
        return []
    columns = [BY_NAME[name].column for name in objectives]
    paths: list[Path] = []
    for first, second in itertools.combinations(columns, 2):
        third = next((c for c in columns if c not in (first, second)), None)
        paths += pairwise_front(frame, first, second, third, out_dir)
    if x and y and (x, y) not in itertools.combinations(columns, 2):
        paths += pairwise_front(frame, x, y, color, out_dir)
    if len(columns) >= 3:
        paths += front_3d(frame, columns[:3], out_dir)
    if len(columns) >= 2:
        history = hypervolume_history(frame, objectives)
        write_csv(out_dir / "hypervolume.csv", history)
        paths += plot_hypervolume(history, out_dir)
    front = frame[frame["is_pareto"]]
    if len(front):
        paths += layer_splits(front, objectives, layers, out_dir)
    return paths
