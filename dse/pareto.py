"""Pareto fronts and hypervolume on a value matrix, exact.

Values are first turned into losses (maximised objectives negated), then masked. Rows with a
non-finite value never belong to the front. Hypervolumes are in the product of the losses'
units (dimensionless for the normalised losses the plots use).

Two objectives sort and take a running minimum; three sweep the rows in order while keeping
a 2-D staircase in sorted lists (O(n log n)); four or more compare blocks of rows with numpy
broadcasting (mask) and slice along the last objective (hypervolume). Every public function
is pure: the lists a sweep updates are its own.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Sequence

import numpy as np

# Booleans one broadcast comparison may allocate (about 4 MiB): bounds memory on big fronts.
_CELLS = 1 << 22
_BLOCK = 1024  # rows compared at once with the front found so far


def to_losses(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Values to losses to minimise (maximised objectives negated).

    Args:
        values: (n, k) objective values, each column in its own unit.
        directions: k entries, "minimize" or "maximize".

    Returns:
        (n, k) losses in the same units as ``values``.
    """
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Rows that no other row dominates.

    Args:
        values: (n, k) objective values, each column in its own unit.
        directions: k entries, "minimize" or "maximize".

    Returns:
        Boolean (n,). Equal rows are all kept; a row with a non-finite value is never kept.
    """
    losses = to_losses(values, directions)
    valid = np.isfinite(losses).all(axis=1)
    mask = np.zeros(len(losses), dtype=bool)
    if valid.any():
        rows, inverse = _sorted_distinct(losses[valid])
        mask[valid] = _distinct_front(rows)[inverse]
    return mask


def _sorted_distinct(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows in lexicographic order, and where each input row went.

    Args:
        losses: (n, k) finite losses.

    Returns:
        (m, k) distinct rows sorted by the first column, then the second, ...; and (n,)
        indices into them, one per input row (equal rows share one index).
    """
    order = np.lexsort(losses.T[::-1])
    ranked = losses[order]
    starts = np.zeros(len(ranked), dtype=bool)
    starts[:1] = True
    for j in range(ranked.shape[1]):  # column by column: see ``_leq_everywhere``
        starts[1:] |= ranked[1:, j] != ranked[:-1, j]
    inverse = np.empty(len(ranked), dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return ranked[starts], inverse


def _distinct_front(rows: np.ndarray) -> np.ndarray:
    """Boolean (m,): the non-dominated rows among distinct, lexicographically sorted ``rows``.

    In that order a row can only be dominated by an earlier one, and since rows are distinct,
    "<= in every column" already means "dominates".
    """
    if rows.shape[1] == 1:
        return np.arange(len(rows)) == 0
    if rows.shape[1] == 2:
        # earlier rows have a smaller or equal first loss: dominated iff one has a second
        # loss <= this one's
        best_before = np.minimum.accumulate(np.concatenate(([np.inf], rows[:-1, 1])))
        return rows[:, 1] < best_before
    if rows.shape[1] == 3:
        return _swept_front(rows)
    return _blocked_front(rows)


def _swept_front(rows: np.ndarray) -> np.ndarray:
    """``_distinct_front`` for k = 3 in O(m log m).

    Earlier rows have a smaller or equal first loss, so a row is dominated iff the 2-D
    staircase of the earlier rows' last two losses covers it.
    """
    xs: list[float] = []
    ys: list[float] = []
    kept = []
    for x, y in rows[:, 1:].tolist():
        covered = _covered(xs, ys, x, y)
        if not covered:
            left, stop = _hidden_steps(xs, ys, x, y)
            xs[left:stop] = [x]
            ys[left:stop] = [y]
        kept.append(not covered)
    return np.array(kept, dtype=bool)


def _blocked_front(rows: np.ndarray) -> np.ndarray:
    """``_distinct_front`` for any k: blocks of rows against the front found so far."""
    mask = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start:start + _BLOCK]
        alive = ~_weakly_dominated(block, rows[mask])
        candidates = block[alive]
        # a candidate dominated only by a dominated row is dominated by a front row
        # (transitivity), so comparing with the block's own candidates suffices
        inner = _leq_everywhere(candidates[None, :, :], candidates[:, None, :])
        np.fill_diagonal(inner, False)
        alive[alive] = ~inner.any(axis=1)
        mask[start:start + len(block)] = alive
    return mask


def _weakly_dominated(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Boolean (m,): points that some row of ``front`` is <= in every column.

    Args:
        points: (m, k) losses.
        front: (f, k) losses in the same units.
    """
    found = np.zeros(len(points), dtype=bool)
    step = max(1, _CELLS // max(1, points.size))
    for start in range(0, len(front), step):
        part = front[start:start + step]
        found |= _leq_everywhere(part[None, :, :], points[:, None, :]).any(axis=1)
    return found


def _leq_everywhere(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``(lower <= upper).all(axis=-1)`` for broadcastable arrays, one column at a time.

    numpy reduces a short last axis several times slower than it compares whole columns.
    """
    result = lower[..., 0] <= upper[..., 0]
    for j in range(1, lower.shape[-1]):
        result &= lower[..., j] <= upper[..., j]
    return result


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``losses`` and bounded by ``reference``, exact.

    Args:
        losses: (n, k) losses to minimise; rows need not be non-dominated.
        reference: (k,) upper corner, in the units of ``losses``.

    Returns:
        The volume, in the product of the k units (dimensionless for normalised losses).
        A point not strictly below ``reference`` in every column adds nothing.
    """
    reference = np.asarray(reference, dtype=float)
    points = np.asarray(losses, dtype=float).reshape(-1, reference.size)
    points = points[(points < reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    if reference.size == 1:
        return float(reference[0] - points[:, 0].min())
    if reference.size == 2:
        return _area(points, reference)
    if reference.size == 3:
        return _volume_3d(points, reference)
    rows, _ = _sorted_distinct(points)
    return _sliced(rows[_distinct_front(rows)], reference)


def _area(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact 2-D hypervolume of (n, 2) points strictly inside ``reference``: sort and sweep."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    xs, ys = points[order, 0], points[order, 1]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], ys[:-1])))
    steps = ys < best_before  # the staircase: x ascending, y strictly descending
    xs, ys = xs[steps], ys[steps]
    widths = np.diff(np.append(xs, reference[0]))
    return float(np.sum(widths * (reference[1] - ys)))


def _volume_3d(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact 3-D hypervolume of (n, 3) points strictly inside ``reference``.

    Sweeps the third loss upwards, keeping the 2-D staircase of the points passed so far and
    its area: each point's added area costs O(log n) plus the steps it hides (each hidden
    once), and the list shifts are memory moves, so O(n log n) in practice.
    """
    # plain lists: the sets clipped in ``hypervolume_history`` are a few points, where
    # numpy's per-call overhead would dominate
    rows = sorted(points.tolist(), key=itemgetter(2))
    uppers = [row[2] for row in rows[1:]] + [float(reference[2])]
    corner = (float(reference[0]), float(reference[1]))
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    for (x, y, z), upper in zip(rows, uppers):
        area += _add_step(xs, ys, x, y, corner)
        volume += area * (upper - z)
    return volume


def _add_step(xs: list[float], ys: list[float], x: float, y: float,
              corner: tuple[float, float]) -> float:
    """Insert (x, y) into the staircase ``xs`` (ascending) / ``ys`` (strictly descending).

    Updates both lists in place (they are the sweep's own state) and returns the area the
    point adds below ``corner``, in the product of the two units.
    """
    if _covered(xs, ys, x, y):
        return 0.0
    left, stop = _hidden_steps(xs, ys, x, y)
    top = ys[left - 1] if left else corner[1]
    edge = xs[stop] if stop < len(xs) else corner[0]
    hidden = 0.0
    for i in range(left, stop):
        hidden += ((xs[i + 1] if i + 1 < stop else edge) - xs[i]) * (top - ys[i])
    xs[left:stop] = [x]
    ys[left:stop] = [y]
    return (edge - x) * (top - y) - hidden


def _covered(xs: list[float], ys: list[float], x: float, y: float) -> bool:
    """Whether a step of the staircase is <= (x, y) in both coordinates."""
    below = bisect_right(xs, x)
    # ys descends, so the last step at or left of x is the lowest of those
    return below > 0 and ys[below - 1] <= y


def _hidden_steps(xs: list[float], ys: list[float], x: float, y: float) -> tuple[int, int]:
    """The slice of steps that an uncovered (x, y) covers (those >= it in both coordinates)."""
    left = bisect_left(xs, x)
    stop = left
    while stop < len(xs) and ys[stop] >= y:
        stop += 1  # each step is hidden once per sweep, so this loop is amortised O(1)
    return left, stop


def _sliced(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume for k >= 4: slabs along the last loss, each a (k-1)-D volume."""
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    uppers = np.append(points[1:, -1], reference[-1])
    volume = 0.0
    for i in np.flatnonzero(uppers > points[:, -1]):
        volume += (uppers[i] - points[i, -1]) * hypervolume(points[:i + 1, :-1],
                                                            reference[:-1])
    return volume


def hypervolume_history(losses: np.ndarray, eligible: np.ndarray, reference: np.ndarray
                        ) -> np.ndarray:
    """Hypervolume of the eligible rows seen so far, after each row.

    Adds each new front point's exclusive contribution, so a row that is ineligible,
    outside the reference box, or weakly dominated by the front so far costs one comparison
    with the front and no volume computation. k = 1 is a running minimum and k = 2 a 2-D
    staircase (O(n log n)); k >= 3 keeps the front and clips it to each new front point.

    Args:
        losses: (n, k) losses to minimise, rows in trial order (dimensionless when
            normalised; any consistent units otherwise).
        eligible: Boolean (n,); rows with a non-finite loss are never eligible.
        reference: (k,) upper corner, in the units of ``losses``.

    Returns:
        (n,) non-decreasing volumes: entry i is the hypervolume of the non-dominated
        eligible rows among rows 0..i, in the product of the k units.
    """
    reference = np.asarray(reference, dtype=float)
    losses = np.asarray(losses, dtype=float).reshape(-1, reference.size)
    # a point outside the box cannot dominate one inside it, so it never matters
    inside = (np.asarray(eligible, dtype=bool) & np.isfinite(losses).all(axis=1)
              & (losses < reference).all(axis=1))
    if reference.size == 1:
        best = np.minimum.accumulate(np.where(inside, losses[:, 0], reference[0]))
        return reference[0] - best
    gains = (_staircase_gains if reference.size == 2 else _front_gains)(
        losses, inside, reference)
    # each gain is exactly positive or zero; clamping keeps rounding from making the
    # history decrease
    return np.cumsum(np.maximum(gains, 0.0))


def _staircase_gains(losses: np.ndarray, inside: np.ndarray, reference: np.ndarray
                     ) -> np.ndarray:
    """(n,) area each row of (n, 2) ``losses`` adds to the rows before it (0 unless inside)."""
    gains = np.zeros(len(losses))
    xs: list[float] = []
    ys: list[float] = []
    corner = (float(reference[0]), float(reference[1]))
    for row in np.flatnonzero(inside).tolist():
        x, y = losses[row].tolist()
        gains[row] = _add_step(xs, ys, x, y, corner)
    return gains


def _front_gains(losses: np.ndarray, inside: np.ndarray, reference: np.ndarray
                 ) -> np.ndarray:
    """(n,) volume each row of (n, k) ``losses`` adds to the rows before it, k >= 3."""
    gains = np.zeros(len(losses))
    # stored (k, f): comparisons reduce over the first axis, much faster than over a short
    # last one
    front = np.empty((reference.size, 0))
    rows = np.flatnonzero(inside)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start:start + _BLOCK]
        # the covered region only grows: rows the front covers now stay covered, so one
        # broadcast comparison settles most rows without a Python iteration
        for row in block[~_weakly_dominated(losses[block], front.T)].tolist():
            point = losses[row][:, None]
            below = front <= point
            if below.all(axis=0).any():
                continue
            gains[row] = _exclusive_volume(point, front, below, reference)
            front = np.concatenate((front[:, ~(front >= point).all(axis=0)], point), axis=1)
    return gains


def _exclusive_volume(point: np.ndarray, front: np.ndarray, below: np.ndarray,
                      reference: np.ndarray) -> float:
    """Volume ``point`` (k, 1) adds to ``front`` (k, f), no column of which is <= it.

    ``below`` is ``front <= point``. The front's share of the point's box is the
    hypervolume of the front clipped to that box (each column raised to at least
    ``point``); ``_clipped_front`` keeps that set small.
    """
    box = float(np.prod(reference - point[:, 0]))
    if front.shape[1] == 0:
        return box
    return box - hypervolume(_clipped_front(point, front, below).T, reference)


def _clipped_front(point: np.ndarray, front: np.ndarray, below: np.ndarray) -> np.ndarray:
    """The front clipped to ``point``'s box, less most columns that cannot change its volume.

    A column worse than ``point`` along one loss j only clips to ``point`` with loss j
    raised; the least of those, ``corner_j``, covers every clipped column at or above it
    along j. On a dense front that leaves only the columns near ``point``.

    Args:
        point: (k, 1) losses.
        front: (k, f) losses, no column <= ``point`` in every loss.
        below: Boolean (k, f), ``front <= point``.

    Returns:
        (k, g) clipped columns with the same hypervolume as all f clipped columns.
    """
    single = below.sum(axis=0) == point.size - 1  # worse along exactly one loss
    bounds = np.where(~below & single, front, np.inf).min(axis=1)
    corners = np.repeat(point, point.size, axis=1)
    np.fill_diagonal(corners, bounds)
    # ``point`` is below every finite bound, so a column clips below the bounds iff it is
    # below them itself: select first, clip only the few selected
    kept = np.maximum(front[:, (front < bounds[:, None]).all(axis=0)], point)
    return np.concatenate((kept, corners[:, np.isfinite(bounds)]), axis=1)


def dominated_by(values: np.ndarray, others: np.ndarray, directions: Sequence[str]
                 ) -> np.ndarray:
    """Rows of ``values`` that some row of ``others`` dominates (no worse in every
    objective, better in one).

    Args:
        values: (n, k) objective values; others: (m, k), in the same columns.
        directions: k entries, "minimize" or "maximize".

    Returns:
        Boolean (n,); a row with a non-finite value counts as dominated when ``others`` has
        any row, rows of ``others`` with one are ignored.
    """
    losses = to_losses(values, directions)
    rivals = to_losses(others, directions)
    rivals = rivals[np.isfinite(rivals).all(axis=1)]
    out = ~np.isfinite(losses).all(axis=1) & (len(rivals) > 0)
    if not len(rivals):
        return out
    block = max(1, _CELLS // max(1, len(rivals) * losses.shape[1]))
    for start in range(0, len(losses), block):
        part = losses[start:start + block, None, :]
        no_worse = (rivals[None] <= part).all(axis=2)
        better = (rivals[None] < part).any(axis=2)
        out[start:start + block] |= (no_worse & better).any(axis=1)
    return out


def pareto_sums(options: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The exact Pareto set of sums: every non-dominated ``sum(options[l][j_l] for l)`` over
    all choices (j_0, ..., j_{L-1}), losses minimised.

    A dynamic programme over the stages: after stage l it keeps the non-dominated partial
    sums of stages 0..l, one choice per distinct sum. Dropping a dominated partial sum is
    exact because a later stage adds the same vector to both, and rounding to nearest is
    monotone, so in floating point too no sum of the space beats the set: each point is
    added in stage order, as ``sum`` of the chosen rows in that order gives it.

    Args:
        options: per stage, (k_l, d) finite losses (k_l >= 1), each column in its own unit.

    Returns:
        (m, d) distinct non-dominated sums, sorted lexicographically, and (m, L) the option
        index chosen at each stage for each of them.
    """
    if not options:
        raise ValueError("pareto_sums needs at least one stage")
    width = np.asarray(options[0]).shape[1]
    sums = np.zeros((1, width))
    choices = np.zeros((1, 0), dtype=np.intp)
    for stage, table in enumerate(options):
        table = np.asarray(table, dtype=float)
        if table.ndim != 2 or table.shape[1] != width or len(table) == 0:
            raise ValueError(f"stage {stage}: options must be (k >= 1, {width}), "
                             f"got {table.shape}")
        if not np.isfinite(table).all():
            raise ValueError(f"stage {stage}: options must be finite")
        grown = (sums[:, None, :] + table[None, :, :]).reshape(-1, width)
        picked = np.repeat(choices, len(table), axis=0)
        option = np.tile(np.arange(len(table)), len(sums))
        rows, first = _sorted_distinct_first(grown)
        kept = _distinct_front(rows)
        sums = rows[kept]
        choices = np.column_stack([picked[first[kept]], option[first[kept]]])
    return sums, choices


def _sorted_distinct_first(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows in lexicographic order and, for each, the first input row equal to it."""
    order = np.lexsort(losses.T[::-1])
    ranked = losses[order]
    starts = np.zeros(len(ranked), dtype=bool)
    starts[:1] = True
    for j in range(ranked.shape[1]):
        starts[1:] |= ranked[1:, j] != ranked[:-1, j]
    return ranked[starts], order[starts]
