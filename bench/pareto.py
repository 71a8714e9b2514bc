"""Pareto benchmark: seconds for the front mask, the final front's hypervolume and the full
hypervolume history, on synthetic losses (dimensionless, in [0, 1]; reference 1.1 per
objective, every row eligible, as the plots normalise them).

Two kinds of data: "uniform" (independent objectives, a small front) and "trade-off" (rows
scattered just above a curved front, so a large share of them is on it). The second table
compares the history with the former per-prefix method (a front mask and a hypervolume
recomputed after every row, both as they were before the vectorised versions) on 500 rows,
measured in the same run (about three minutes, most of it the former method).

Run: python bench/pareto.py [--seed 0] [--repeats 3] [--old-rows 500]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

from dse.pareto import hypervolume, hypervolume_history, pareto_mask, to_losses

SIZES = (1_000, 10_000)
OBJECTIVES = (2, 3)
KINDS = ("uniform", "trade-off")


def synthetic_losses(kind: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, k) dimensionless losses in [0, 1]."""
    if kind == "uniform":
        return rng.random((n, k))
    directions = np.abs(rng.normal(size=(n, k)))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distance = 1.0 - np.abs(rng.normal(0.0, 0.05, size=(n, 1)))  # 1: on the front
    return 1.0 - directions * distance


def seconds(function: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def old_pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """The former mask: one Python iteration per row against all rows."""
    losses = to_losses(values, directions)
    valid = np.isfinite(losses).all(axis=1)
    mask = np.zeros(len(losses), dtype=bool)
    for i in np.flatnonzero(valid):
        others = losses[valid]
        dominated = ((others <= losses[i]).all(axis=1) & (others < losses[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def old_hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """The former hypervolume: recursive slicing along the last objective."""
    points = np.asarray(losses, dtype=float)
    points = points[(points < reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    points = points[np.argsort(points[:, -1])]
    volume = 0.0
    for i, point in enumerate(points):
        upper = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        if upper > point[-1]:
            volume += (upper - point[-1]) * old_hypervolume(points[:i + 1, :-1], reference[:-1])
    return volume


def old_history(losses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The former history: mask and volume recomputed on every prefix."""
    directions = ["minimize"] * losses.shape[1]
    return np.array([old_hypervolume(losses[:count][old_pareto_mask(losses[:count], directions)],
                                     reference) for count in range(1, len(losses) + 1)])


def timing_rows(rng: np.random.Generator, repeats: int) -> list[tuple]:
    rows = []
    for kind in KINDS:
        for k in OBJECTIVES:
            for n in SIZES:
                losses = synthetic_losses(kind, n, k, rng)
                reference, eligible = np.full(k, 1.1), np.ones(n, dtype=bool)
                mask = pareto_mask(losses, ["minimize"] * k)
                rows.append((kind, k, n, int(mask.sum()),
                             seconds(lambda: pareto_mask(losses, ["minimize"] * k), repeats),
                             seconds(lambda: hypervolume(losses[mask], reference), repeats),
                             seconds(lambda: hypervolume_history(losses, eligible, reference),
                                     repeats)))
    return rows


def speedup_rows(rng: np.random.Generator, n: int, repeats: int) -> list[tuple]:
    rows = []
    for kind in KINDS:
        for k in OBJECTIVES:
            losses = synthetic_losses(kind, n, k, rng)
            reference, eligible = np.full(k, 1.1), np.ones(n, dtype=bool)
            new = hypervolume_history(losses, eligible, reference)
            start = time.perf_counter()
            old = old_history(losses, reference)
            old_s = time.perf_counter() - start
            assert np.allclose(new, old, rtol=1e-9, atol=1e-12), "histories differ"
            new_s = seconds(lambda: hypervolume_history(losses, eligible, reference), repeats)
            rows.append((kind, k, old_s, new_s, old_s / new_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--old-rows", type=int, default=500,
                        help="rows for the comparison with the former method")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'data':<10} {'k':>2} {'n':>7} {'front':>6} {'mask s':>9} {'hv(front) s':>12} "
          f"{'history s':>10}")
    for kind, k, n, front, mask_s, volume_s, history_s in timing_rows(rng, args.repeats):
        print(f"{kind:<10} {k:>2} {n:>7} {front:>6} {mask_s:>9.4f} {volume_s:>12.4f} "
              f"{history_s:>10.4f}")
    print(f"\nhistory vs the former per-prefix method, n = {args.old_rows} "
          "(same results checked)")
    print(f"{'data':<10} {'k':>2} {'old s':>9} {'new s':>9} {'speed-up':>9}")
    for kind, k, old_s, new_s, ratio in speedup_rows(rng, args.old_rows, args.repeats):
        print(f"{kind:<10} {k:>2} {old_s:>9.3f} {new_s:>9.4f} {ratio:>8.0f}x")


if __name__ == "__main__":
    main()
