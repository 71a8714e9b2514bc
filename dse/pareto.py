"""Pareto fronts and hypervolume: pure numpy on a value matrix.

Values are first turned into losses (maximised objectives negated), then masked. Rows with a
non-finite value never belong to the front.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def to_losses(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """(n, k) values -> (n, k) losses to minimise."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean (n,): rows that no other row dominates (ties: equal rows are all kept)."""
    losses = to_losses(values, directions)
    valid = np.isfinite(losses).all(axis=1)
    mask = np.zeros(len(losses), dtype=bool)
    for i in np.flatnonzero(valid):
        others = losses[valid]
        dominated = ((others <= losses[i]).all(axis=1) & (others < losses[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``losses`` (n, k) and bounded by ``reference`` (k,), exact.

    Slices along the last objective recursively (fine for fronts of tens of points and up
    to five objectives).
    """
    points = np.asarray(losses, dtype=float)
    points = points[(points < reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    order = np.argsort(points[:, -1])
    points = points[order]
    volume = 0.0
    for i, point in enumerate(points):
        upper = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        if upper > point[-1]:
            volume += (upper - point[-1]) * hypervolume(points[:i + 1, :-1], reference[:-1])
    return volume
