"""Plots of a study (PNG and SVG), all in one style (``STYLE``): the front in each pair of
objectives, the 3-D front, the front confirmed on the test split, the hypervolume after
each trial and the analog share of each layer of a few front points.

Legends sit below the axes, never on the data; each baseline has its own marker and legend
entry. Times and energies are shown in the SI prefix that keeps their ticks short.
"""
from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ParamSpec, Sequence, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dse import pareto  # noqa: E402
from dse.accuracy.stats import LEVEL  # noqa: E402
from dse.metrics import BY_NAME, PLOTTED, TEST_ACCURACY, objective_columns  # noqa: E402
from dse.results.files import atomic_path, write_csv  # noqa: E402

# ---- one style for every figure --------------------------------------------------------

STYLE: dict[str, Any] = {  # matplotlib settings while a figure is drawn and saved
    "font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9, "figure.titlesize": 10,
    "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "axes.formatter.useoffset": False,  # ticks read 54.5, not 0.5 with "+54" at the corner
    "legend.frameon": False, "savefig.dpi": 150, "svg.hashsalt": "dse",  # stable SVG ids
}
SIZES = {  # inches
    "front": (6.4, 5.2), "front_3d": (6.4, 6.2), "test_panel": (3.6, 4.4),
    "hypervolume": (6.4, 3.8), "layer_splits": (6.4, 4.6), "model": (5.2, 5.2),
}
TRIAL_COLOUR = "0.78"
FRONT_COLOUR = "tab:blue"
COLOUR_MAP = "viridis"
ERROR_COLOUR = "0.35"
# the engines of a study, in the order they first wrote a trial (most studies: one engine)
ENGINE_MARKERS = ("o", "s", "^", "D", "P", "d")
MARKER_COLUMN = "_marker"  # the figures' own column: each row's engine marker
# Baselines, in the study's order: shapes and colours none of the above uses, each smaller
# than the one before, so that baselines at one point show as nested markers.
BASELINE_MARKERS = (("*", 240), ("X", 140), ("p", 110), ("h", 60), ("v", 50), ("<", 45),
                    (">", 40), ("8", 35))
BASELINE_COLOURS = ("tab:red", "tab:orange", "tab:pink", "tab:brown", "black", "tab:cyan",
                    "tab:olive", "tab:purple")
HV_REFERENCE = 1.1  # the hypervolume's reference point, in every normalised loss
INTERVAL_COLUMNS = ("accuracy", "test_accuracy")  # stored with <column>_ci_low/_ci_high

Params = ParamSpec("Params")
Drawn = TypeVar("Drawn")


def styled(draw: Callable[Params, Drawn]) -> Callable[Params, Drawn]:
    """``draw`` run under ``STYLE``."""
    @functools.wraps(draw)
    def in_style(*args: Params.args, **kwargs: Params.kwargs) -> Drawn:
        with plt.style.context(STYLE):
            return draw(*args, **kwargs)
    return in_style


def new_figure(kind: str, *, panels: int = 1) -> plt.Figure:
    width, height = SIZES[kind]
    return plt.figure(figsize=(width * panels, height), layout="constrained")


def legend_below(figure: plt.Figure, *axes: Any, columns: int = 3) -> Legend | None:
    """One legend for ``axes``, below them (outside every axes, so it covers nothing)."""
    entries: dict[str, Any] = {}
    for one in axes:
        for handle, label in zip(*one.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if not entries:
        return None
    return figure.legend(list(entries.values()), list(entries), loc="outside lower center",
                         ncols=min(columns, len(entries)))


@styled
def save(figure: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """``stem``.png and ``stem``.svg in ``out_dir``; closes ``figure``."""
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, bbox_inches="tight", format=path.suffix[1:])
    plt.close(figure)
    return paths


# ---- axes and units ---------------------------------------------------------------------

PREFIXES = ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p"))


@dataclass(frozen=True)
class Axis:
    """A plotted quantity: its column, its label in the unit shown and the factor from the
    stored unit to that one."""

    column: str
    label: str
    scale: float

    def of(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[self.column].to_numpy(dtype=float) * self.scale


def axis(column: str, rows: pd.DataFrame) -> Axis:
    """``column``'s axis for ``rows``: a time or an energy in the SI prefix that puts the
    largest value in [1, 1000) (54 µs, not 0.054 ms), a fraction in %."""
    shown = PLOTTED[column]
    values = np.abs(rows[column].to_numpy(dtype=float)) if column in rows else np.empty(0)
    largest = float(np.max(values[np.isfinite(values)], initial=0.0))
    if shown.unit not in ("s", "J") or largest == 0:
        return Axis(column, shown.label, shown.display_scale)
    scale, prefix = next(((s, p) for s, p in PREFIXES if largest * s >= 1), PREFIXES[-1])
    return Axis(column, f"{shown.quantity} ({prefix}{shown.unit})", scale)


def interval(rows: pd.DataFrame, shown: Axis) -> np.ndarray | None:
    """(2, n) distances in the shown unit from each value down and up to the ends of its
    interval (0 where unknown); None for a quantity without intervals."""
    low, high = f"{shown.column}_ci_low", f"{shown.column}_ci_high"
    if shown.column not in INTERVAL_COLUMNS or low not in rows or not len(rows):
        return None
    centre = shown.of(rows)
    spread = np.vstack([centre - rows[low].to_numpy(float) * shown.scale,
                        rows[high].to_numpy(float) * shown.scale - centre])
    return np.where(np.isfinite(spread), np.maximum(spread, 0), 0)


def error_bars(axes: plt.Axes, rows: pd.DataFrame, x: Axis, y: Axis) -> None:
    """The intervals of the accuracy axes (validation or test) as error bars."""
    xerr, yerr = interval(rows, x), interval(rows, y)
    if xerr is None and yerr is None:
        return
    axes.errorbar(x.of(rows), y.of(rows), xerr=xerr, yerr=yerr, fmt="none",
                  ecolor=ERROR_COLOUR, elinewidth=0.8, capsize=2, zorder=2.5)


# ---- what every figure draws alike -------------------------------------------------------

def with_engine_markers(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials with each one's engine marker: the engines in the order they first wrote
    a trial take ``ENGINE_MARKERS`` in turn, so that one study's figures agree whatever
    engines (registered anywhere) filled it."""
    if "engine" not in frame:
        return frame.assign(**{MARKER_COLUMN: ENGINE_MARKERS[0]})
    ordered = frame.sort_values("trial") if "trial" in frame else frame
    order = list(dict.fromkeys(ordered["engine"].astype(str)))
    markers = {engine: ENGINE_MARKERS[i % len(ENGINE_MARKERS)]
               for i, engine in enumerate(order)}
    return frame.assign(**{MARKER_COLUMN: frame["engine"].astype(str).map(markers)})


def by_engine(rows: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The rows grouped by the engine that proposed them, with its marker (all one group
    in studies that predate the column)."""
    if "engine" not in rows or not len(rows):
        return [("", ENGINE_MARKERS[0], rows)]
    return [(str(engine), str(part[MARKER_COLUMN].iloc[0]) if MARKER_COLUMN in part
             else ENGINE_MARKERS[0], part)
            for engine, part in rows.groupby("engine", sort=True)]


def named(what: str, engine: str, engines: int) -> str:
    return what if engines == 1 else f"{what} ({engine})"


def draw_trials(axes: Any, rows: pd.DataFrame, shown: Sequence[Axis], label: str,
                engines: int) -> None:
    """``rows`` as small grey points (one image in the SVG: there may be thousands)."""
    if not len(rows):
        return
    for engine, marker, part in by_engine(rows):
        axes.scatter(*(a.of(part) for a in shown), s=8, c=TRIAL_COLOUR, rasterized=True,
                     marker=marker,
                     label=named(label, engine, engines))


def draw_front(axes: Any, front: pd.DataFrame, shown: Sequence[Axis], tint: Axis | None,
               engines: int, label: str = "Pareto front") -> Any:
    """The front points, coloured by ``tint`` when given (the legend's marker then in the
    middle colour, the legend naming the quantity); returns the last scatter (for a colour
    bar)."""
    points = None
    colours = tint.of(front) if tint is not None and len(front) else None
    for engine, marker, part in by_engine(front):
        style: dict[str, Any] = {"c": FRONT_COLOUR, "label": named(label, engine, engines)}
        if tint is not None and colours is not None:
            style = {"c": tint.of(part), "cmap": COLOUR_MAP, "vmin": np.nanmin(colours),
                     "vmax": np.nanmax(colours)}
            axes.scatter([], [], s=36, c=[plt.get_cmap(COLOUR_MAP)(0.5)], edgecolors="k",
                         linewidths=0.6, marker=marker, label=named(label, engine, engines))
        points = axes.scatter(*(a.of(part) for a in shown), s=36, edgecolors="k",
                              linewidths=0.6, zorder=3, marker=marker, **style)
    return points


def baseline_styles(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """A marker and a colour per baseline, in trial order (the same in every figure)."""
    rows = frame[frame["is_baseline"]].sort_values("trial") if len(frame) else frame
    names = list(dict.fromkeys(str(name) for name in rows.get("baseline", [])))
    styles = {}
    for i, name in enumerate(names):
        marker, size = BASELINE_MARKERS[i % len(BASELINE_MARKERS)]
        styles[name] = {"marker": marker, "s": size,
                        "c": BASELINE_COLOURS[i % len(BASELINE_COLOURS)]}
    return styles


def draw_baselines(axes: Any, rows: pd.DataFrame, shown: Sequence[Axis],
                   styles: dict[str, dict[str, Any]]) -> None:
    """Each baseline of ``rows`` with its marker, named in the legend (not on the axes,
    where names collide with points and each other)."""
    for _, base in rows[rows["is_baseline"]].sort_values("trial").iterrows():
        name = str(base["baseline"])
        axes.scatter(*([base[a.column] * a.scale] for a in shown), edgecolors="k",
                     linewidths=0.6, zorder=4, label=f"baseline: {name}", **styles[name])


# ---- the figures -------------------------------------------------------------------------

@styled
def front_figure(frame: pd.DataFrame, x: str, y: str, color: str | None) -> plt.Figure:
    """All complete trials, the front coloured by ``color``, the baselines, the intervals
    of both on an accuracy axis. The test accuracy on an axis (or as colour) limits the
    figure to the points confirmed on the test split."""
    confirmed_only = TEST_ACCURACY.column in (x, y, color)
    done = confirmed_rows(frame) if confirmed_only else frame[frame["state"] == "COMPLETE"]
    shown = [axis(x, done), axis(y, done)]
    tint = axis(color, done) if color else None
    engines = len(by_engine(done))
    figure = new_figure("front")
    axes = figure.add_subplot()
    if confirmed_only:
        axes.set_title(f"the {len(done)} points confirmed on the test split")
        draw_trials(axes, done[~done["is_pareto"] & ~done["is_baseline"]], shown,
                    "confirmed, no longer on the front", engines)
    else:
        draw_trials(axes, done, shown, "trials", engines)
    near = done[done["feasible"] & done.get("is_pareto_robust", False) & ~done["is_pareto"]]
    if len(near):
        axes.scatter(shown[0].of(near), shown[1].of(near), s=30, facecolors="none",
                     edgecolors=FRONT_COLOUR, linewidths=0.8, zorder=2,
                     label="within the accuracy interval of the front")
    error_bars(axes, done[done["is_pareto"] | done["is_baseline"]], *shown)
    front = done[done["is_pareto"]]
    points = draw_front(axes, front, shown, tint, engines)
    if tint is not None and len(front) and points is not None:
        figure.colorbar(points, ax=axes, label=tint.label)
    draw_baselines(axes, done, shown, baseline_styles(frame))
    axes.set_xlabel(shown[0].label)
    axes.set_ylabel(shown[1].label)
    legend_below(figure, axes)
    return figure


CLOUD_3D_POINTS = 2000  # depth-sorting more grey points costs seconds and shows nothing new


@styled
def front_3d_figure(frame: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """The front in 3-D over a grey cloud of the feasible trials (a seeded sample of
    ``CLOUD_3D_POINTS`` when there are more; the legend says so), with the baselines; the
    limits hold every point drawn."""
    done = frame[frame["state"] == "COMPLETE"]
    feasible = done[done["feasible"]]
    front = feasible[feasible["is_pareto"]]
    cloud = (feasible if len(feasible) <= CLOUD_3D_POINTS
             else feasible.sample(CLOUD_3D_POINTS, random_state=0))
    bases = done[done["is_baseline"]]
    shown = [axis(column, done) for column in columns]
    engines = len(by_engine(done))
    figure = new_figure("front_3d")
    axes = figure.add_subplot(projection="3d")
    label = ("feasible trials" if len(cloud) == len(feasible)
             else f"feasible trials ({len(cloud):,} of {len(feasible):,})")
    draw_trials(axes, cloud, shown, label, engines)
    draw_front(axes, front, shown, None, engines)
    draw_baselines(axes, done, shown, baseline_styles(frame))
    drawn = pd.concat([cloud, front, bases])
    for set_limits, one in zip((axes.set_xlim, axes.set_ylim, axes.set_zlim), shown):
        set_limits(*padded(one.of(drawn)))
    for ticks in (axes.xaxis, axes.yaxis, axes.zaxis):  # foreshortened: fewer ticks fit
        ticks.set_major_locator(MaxNLocator(5))
    axes.set_xlabel(shown[0].label)
    axes.set_ylabel(shown[1].label)
    axes.set_zlabel(shown[2].label)
    axes.set_box_aspect(None, zoom=0.85)  # room for the z label
    legend_below(figure, axes)
    return figure


def padded(values: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """The range of the finite ``values`` widened by ``margin`` of it on each side."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    pad = (high - low) * margin or abs(high) * margin or 1.0
    return low - pad, high + pad


def confirmed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The complete trials confirmed on the test split."""
    if TEST_ACCURACY.column not in frame or frame.empty:
        return frame.iloc[0:0]
    done = frame[frame["state"] == "COMPLETE"]
    return done[np.isfinite(done[TEST_ACCURACY.column].to_numpy(float))]


@styled
def confirmed_figure(frame: pd.DataFrame, objectives: list[str], level: float = LEVEL
                     ) -> plt.Figure:
    """What the claims rest on: the points confirmed on the test split (the front and the
    baselines), their validation against their test accuracy with both intervals and the
    line where they agree, and their test accuracy against each cost objective."""
    confirmed = confirmed_rows(frame)
    costs = [BY_NAME[name].column for name in objectives if name != "accuracy"]
    test = axis(TEST_ACCURACY.column, confirmed)
    pairs = [(axis("accuracy", confirmed), test),
             *((axis(column, confirmed), test) for column in costs)]
    figure = new_figure("test_panel", panels=len(pairs))
    panels = figure.subplots(1, len(pairs), squeeze=False)[0]
    styles = baseline_styles(frame)
    front = confirmed[confirmed["is_pareto"]]
    other = confirmed[~confirmed["is_pareto"] & ~confirmed["is_baseline"]]
    engines = len(by_engine(confirmed))
    for panel, shown in zip(panels, pairs):
        if len(other):
            draw_trials(panel, other, shown, "confirmed, no longer on the front", engines)
        error_bars(panel, confirmed, *shown)
        draw_front(panel, front, shown, None, engines)
        draw_baselines(panel, confirmed, shown, styles)
        panel.set_xlabel(shown[0].label)
        panel.set_ylabel(shown[1].label)
    agreement_line(panels[0])
    figure.suptitle(f"Confirmed on the test split: {len(front)} front points, "
                    f"{int(confirmed['is_baseline'].sum())} baselines "
                    f"(error bars: {level:.0%} confidence intervals)")
    legend_below(figure, *panels)
    return figure


def agreement_line(axes: plt.Axes) -> None:
    """The line test = validation over square axes holding every point."""
    limits = [*axes.get_xlim(), *axes.get_ylim()]
    low, high = min(limits), max(limits)
    axes.plot([low, high], [low, high], ls="--", lw=0.8, c="0.4", zorder=1,
              label="test = validation")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_aspect("equal", adjustable="box")


def hypervolume_history(frame: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Hypervolume of the feasible front after each trial, on losses normalised to [0, 1]
    by the range seen over all complete trials (reference: ``HV_REFERENCE`` in every
    dimension)."""
    columns, directions = objective_columns(objectives)
    done = frame[frame["state"] == "COMPLETE"].sort_values("trial")
    losses = pareto.to_losses(done[columns].to_numpy(dtype=float), directions)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of unknowns (all NaN)
        low, high = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
    normalised = (losses - low) / np.where(high > low, high - low, 1.0)
    volumes = pareto.hypervolume_history(normalised, done["feasible"].to_numpy(bool),
                                         np.full(len(columns), HV_REFERENCE))
    return pd.DataFrame({"trial": done["trial"].to_numpy(), "hypervolume": volumes})


@styled
def hypervolume_figure(history: pd.DataFrame, objectives: list[str]) -> plt.Figure:
    """The hypervolume after each trial, its normalisation and reference point stated."""
    figure = new_figure("hypervolume")
    axes = figure.add_subplot()
    axes.plot(history["trial"], history["hypervolume"], drawstyle="steps-post",
              c=FRONT_COLOUR)
    axes.set_xlabel("trial")
    axes.set_ylabel("hypervolume of the feasible front")
    axes.set_title(f"losses ({', '.join(objectives)}) normalised to [0, 1] over the "
                   f"{len(history):,} complete trials;\nreference point {HV_REFERENCE:g} in "
                   f"each, so at most {HV_REFERENCE ** len(objectives):.3g}")
    return figure


def selected_points(front: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Up to four front points: the best in each objective and the most balanced one (the
    least sum of its losses normalised over the front), with why each (``selected_for``)."""
    reasons: dict[Any, list[str]] = {}
    for name in objectives[:3]:
        shown = BY_NAME[name]
        maximise = shown.direction == "maximize"
        best = front[shown.column].idxmax() if maximise else front[shown.column].idxmin()
        quantity = shown.quantity.removeprefix("validation ")
        reasons.setdefault(best, []).append(f"{'highest' if maximise else 'lowest'} "
                                            f"{quantity}")
    columns, directions = objective_columns(objectives)
    losses = pareto.to_losses(front[columns].to_numpy(float), directions)
    spread = np.ptp(losses, axis=0)
    balanced = ((losses - losses.min(axis=0)) / np.where(spread > 0, spread, 1)).sum(axis=1)
    reasons.setdefault(front.index[int(np.argmin(balanced))], []).append("most balanced")
    chosen = front.loc[list(reasons)].copy()
    chosen["selected_for"] = [", ".join(why) for why in reasons.values()]
    return chosen


@styled
def layer_splits_figure(front: pd.DataFrame, objectives: list[str],
                        layers: list[tuple[str, int]]) -> plt.Figure:
    """Share of each layer's output channels on the analog array, for the front's best
    point in each objective and its most balanced one."""
    points = selected_points(front, objectives)
    width, height = SIZES["layer_splits"]
    figure = plt.figure(figsize=(max(width, 0.35 * len(layers)), height), layout="constrained")
    axes = figure.add_subplot()
    bar = 0.8 / max(len(points), 1)
    positions = np.arange(len(layers))
    for offset, (_, row) in enumerate(points.iterrows()):
        shares = np.nan_to_num([row.get(f"n_analog:{name}", 0) / cout for name, cout in layers])
        label = f"trial {int(row['trial'])} ({row['selected_for']})"
        if not shares.any():
            label += ": every layer digital"
        axes.bar(positions + offset * bar, shares, bar, label=label, zorder=2)
    axes.set_xticks(positions + 0.4 - bar / 2, [name for name, _ in layers], rotation=90,
                    fontsize=7)
    axes.set_xlabel("layer")
    axes.set_ylabel("analog share of output channels")
    axes.set_ylim(0, 1.05)
    axes.grid(axis="x", visible=False)
    axes.set_title("Pareto points: the best in each objective and the most balanced "
                   "(least sum of normalised losses)")
    legend_below(figure, axes, columns=2)
    return figure


@styled
def model_figure(frame: pd.DataFrame, agreement: dict[str, Any], level: float = LEVEL
                 ) -> plt.Figure:
    """An engine's predicted accuracy drop against the measured one (pp, positive = worse)
    for every trial it predicted, with the measured drop's interval and the line where they
    agree; its rank correlation and noise ceiling (``tables.model_agreement``) in the
    title."""
    from dse.metrics import ACCURACY_CHANGE
    from dse.results.tables import PREDICTED_DROP

    done = frame[(frame["state"] == "COMPLETE") & frame[PREDICTED_DROP].notna()
                 & frame[ACCURACY_CHANGE[0]].notna()]
    predicted = done[PREDICTED_DROP].to_numpy(float)
    measured = -done[ACCURACY_CHANGE[0]].to_numpy(float)
    figure = new_figure("model")
    axes = figure.subplots()
    spread = np.vstack([measured + done[ACCURACY_CHANGE[2]].to_numpy(float),
                        -done[ACCURACY_CHANGE[1]].to_numpy(float) - measured])
    axes.errorbar(predicted, measured, yerr=np.abs(spread), fmt="o", ms=4, lw=0.8,
                  label=f"probed ({level:.0%} interval of the measured drop)")
    agreement_line(axes)
    axes.set_xlabel("predicted accuracy drop (pp)")
    axes.set_ylabel("measured accuracy drop, validation (pp)")
    rho, ceiling = agreement.get("spearman"), agreement.get("noise_ceiling")
    told = (f"rank correlation {rho:.2f}" if rho is not None else "too few points to rank")
    if ceiling is not None:
        told += f", noise ceiling {ceiling:.2f}"
    axes.set_title(f"The engine's model on {agreement['points']} probed points: {told}")
    legend_below(figure, axes, columns=1)
    return figure


def write_plots(frame: pd.DataFrame, objectives: list[str], layers: list[tuple[str, int]],
                out_dir: Path, *, x: str | None = None, y: str | None = None,
                color: str | None = None, level: float = LEVEL) -> list[Path]:
    """Every plot the study supports; ``x``/``y``/``color`` add one chosen view; ``level``
    is the coverage of the study's accuracy intervals."""
    if frame.empty or not (frame["state"] == "COMPLETE").any():
        return []
    frame = with_engine_markers(frame)
    columns = [BY_NAME[name].column for name in objectives]
    paths: list[Path] = []
    for first, second in itertools.combinations(columns, 2):
        third = next((c for c in columns if c not in (first, second)), None)
        paths += save(front_figure(frame, first, second, third), out_dir,
                      f"front_{first}_{second}")
    if x and y and (x, y) not in itertools.combinations(columns, 2):
        paths += save(front_figure(frame, x, y, color), out_dir, f"front_{x}_{y}")
    if len(columns) >= 3:
        paths += save(front_3d_figure(frame, columns[:3]), out_dir, "front_3d")
    if "accuracy" in objectives and len(confirmed_rows(frame)):
        paths += save(confirmed_figure(frame, objectives, level), out_dir, "test_front")
    if len(columns) >= 2:
        history = hypervolume_history(frame, objectives)
        write_csv(out_dir / "hypervolume.csv", history)
        paths += save(hypervolume_figure(history, objectives), out_dir, "hypervolume")
    front = frame[frame["is_pareto"]]
    if len(front):
        paths += save(layer_splits_figure(front, objectives, layers), out_dir, "layer_splits")
    from dse.results.tables import model_agreement
    agreement = model_agreement(frame, level)
    if agreement is not None:
        paths += save(model_figure(frame, agreement, level), out_dir, "model_drop")
    return paths
