"""The command line's progress display: how far each long phase is, how fast it goes and how
long it has left, written to the stream it is given (``cli.py`` gives it stderr; nothing
else in ``dse`` makes one, so library code stays quiet).

A *phase* (training, the search's trials, the confirmation's points) is one bar. A *stage*
is long work inside the phase's current item (a probe's fine-tune steps, ODiMO's DNAS,
EDEN's characterisation probes): a bar under the phase's, closed when the phase moves on
to its next item. Every bar shows done/total, elapsed time, rate and time left (tqdm's
meter; the rate is the mean since the bar started, so a resumed phase's count does not
inflate it).

On a terminal the bars are tqdm's, redrawn in place. Elsewhere (a log file, CI, a cluster
job's output) nothing is redrawn and no carriage return is written: a phase writes a line
when it starts, at each further tenth and when it ends; and while anything moves, a line at
most every ``HEARTBEAT_S`` with the phase and its stages, so that a long item still shows
it is alive.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, TextIO

from tqdm import tqdm

Progress = Callable[[int, int, str], None]  # (done, total, status)
HEARTBEAT_S = 60.0  # off a terminal: a line at most this often while a phase runs
REDRAW_S = 0.2      # on a terminal: a bar is redrawn at most this often
TICK_S = 1.0        # on a terminal: a bar not told anything is redrawn this often


class _Bar(tqdm):
    monitor_interval = 0  # no monitor thread: the display redraws on every report


@dataclass
class _Row:
    """One bar: a phase (level 0) or a stage (level 1)."""

    label: str
    unit: str
    level: int
    start_s: float
    initial: int = 0        # the count when the bar started (a resumed phase's)
    done: int = 0
    total: int = 0
    status: str = ""
    tenth: int = -1         # off a terminal: the last tenth written
    drawn_s: float = -math.inf
    bar: tqdm | None = None

    def meter(self, now: float, *, with_bar: bool) -> str:
        return tqdm.format_meter(self.done, self.total or None, now - self.start_s,
                                 prefix=self.label, unit=self.unit,
                                 postfix=self.status or None, initial=self.initial,
                                 ascii=True, ncols=None if with_bar else 0)


class ProgressDisplay:
    """Phases and stages on ``stream`` (see the module docstring).

    Args:
        stream: where the bars go (stderr).
        interactive: redraw in place; default: whether ``stream`` is a terminal.
        clock: seconds, monotonic (tests pass a fake one).
        heartbeat_s: off a terminal, the most often a line is written between tenths.
    """

    def __init__(self, stream: TextIO, *, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.stream = stream
        self.interactive = _is_terminal(stream) if interactive is None else interactive
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.rows: list[_Row] = []
        self.ended: set[str] = set()  # phases that reached their total
        self.line_s = clock()     # off a terminal: when the last line was written

    def __enter__(self) -> "ProgressDisplay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def phase(self, label: str, unit: str = "it") -> Progress:
        """The progress of a phase: told (done, total, status); it ends at done >= total."""
        return lambda done, total, status: self._report(label, unit, 0, done, total, status)

    def stage(self, label: str, unit: str = "it") -> Progress:
        """The progress of work inside the current phase's item; a count that goes back
        starts it afresh (the next probe's steps)."""
        return lambda done, total, status: self._report(label, unit, 1, done, total, status)

    def write(self, text: str) -> None:
        """A line of text that does not tear the bars."""
        if self.interactive and any(row.bar is not None for row in self.rows):
            tqdm.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Close every bar (a phase's stays on screen)."""
        self._close_from(0)

    # ---- bookkeeping ----------------------------------------------------------------------

    def _report(self, label: str, unit: str, level: int, done: int, total: int,
                status: str) -> None:
        ends = total > 0 and done >= total
        if level == 0 and label in self.ended and ends:
            return  # a last word after the phase's end would only repeat it
        now = self.clock()
        row = next((r for r in self.rows if r.label == label and r.level == level), None)
        if row is None:
            row = self._open(label, unit, level, done, total, now)
        elif level > 0 and done < row.done:
            self._restart(row, done, total, now)
        elif level == 0 and done != row.done:
            self._close_from(self.rows.index(row) + 1)  # the next item: its stages anew
        row.done, row.total, row.status = done, total, status
        if self.interactive:
            self._draw(row, now)
            self._tick(now)
        else:
            self._log(row, now)
        if level == 0 and ends:  # the phase and its stages end; its last line stays
            self.ended.add(label)
            self._close_from(self.rows.index(row))

    def _open(self, label: str, unit: str, level: int, done: int, total: int,
              now: float) -> _Row:
        """A new bar: a phase replaces every bar; a stage replaces its own bar and those
        after it."""
        same = [i for i, r in enumerate(self.rows)
                if r.level >= level and (level == 0 or r.label == label)]
        self._close_from(same[0] if same else len(self.rows))
        self.ended.discard(label)
        row = _Row(label, unit, level, start_s=now, initial=done, done=done)
        if self.interactive:
            row.bar = _Bar(total=total or None, initial=done, desc=label, unit=unit,
                           file=self.stream, position=len(self.rows), leave=level == 0,
                           dynamic_ncols=True, mininterval=REDRAW_S, smoothing=0)
        self.rows.append(row)
        return row

    def _restart(self, row: _Row, done: int, total: int, now: float) -> None:
        """A stage's next piece of work (the next probe's steps): its bar counts afresh,
        in place; the bars under it end."""
        self._close_from(self.rows.index(row) + 1)
        row.start_s, row.initial, row.drawn_s = now, done, -math.inf
        if row.bar is not None:
            row.bar.reset(total=total or None)
            row.bar.n = row.bar.initial = done

    def _close_from(self, index: int) -> None:
        for row in reversed(self.rows[index:]):
            if row.bar is not None:
                row.bar.close()
        del self.rows[index:]

    # ---- output ---------------------------------------------------------------------------

    def _draw(self, row: _Row, now: float) -> None:
        bar = row.bar
        assert bar is not None
        if bar.total != (row.total or None):
            bar.total = row.total or None
        bar.n = row.done
        bar.set_postfix_str(row.status, refresh=False)
        ended = bool(row.total) and row.done >= row.total
        if ended or now - row.drawn_s >= REDRAW_S:
            bar.refresh()
            row.drawn_s = now

    def _tick(self, now: float) -> None:
        """Redraw the bars nothing was told for a while (a phase's elapsed time moves on
        while a long item runs under it)."""
        for row in self.rows:
            if row.bar is not None and now - row.drawn_s >= TICK_S:
                row.bar.refresh()
                row.drawn_s = now

    def _log(self, row: _Row, now: float) -> None:
        if row.level == 0:
            tenth = 10 * row.done // row.total if row.total > 0 else 0
            if tenth > row.tenth:
                row.tenth = tenth
                self._line(row.meter(now, with_bar=True), now)
                return
        if now - self.line_s >= self.heartbeat_s:
            self._line(" | ".join(r.meter(now, with_bar=False) for r in self.rows), now)

    def _line(self, text: str, now: float) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self.line_s = now


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream
        return False
