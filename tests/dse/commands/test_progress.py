"""The command line's progress display, driven by a fake clock (no wall-clock timing)."""
from __future__ import annotations

import io

from dse.commands.progress import ProgressDisplay


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def display(interactive: bool = False) -> tuple[ProgressDisplay, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return ProgressDisplay(stream, interactive=interactive, clock=clock), stream, clock


def test_off_a_terminal_a_phase_writes_a_line_per_tenth_with_elapsed_rate_and_time_left():
    shown, stream, clock = display()
    points = shown.phase("confirming", "point")
    for done in range(21):
        points(done, 20, f"trial {done}")
        clock.now += 15
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redrawing in a log
    lines = text.splitlines()
    assert len(lines) == 11  # the start and each tenth
    assert "0/20 [00:00<?" in lines[0] and "trial 0" in lines[0]
    for fragment in ("10%", "2/20", "[00:30<04:30", "15.00s/point", "trial 2"):
        assert fragment in lines[1], (fragment, lines[1])
    assert "20/20 [05:00<00:00" in lines[-1]


def test_a_resumed_phase_is_timed_by_its_own_progress():
    shown, stream, clock = display()
    trials = shown.phase("search", "trial")
    trials(30, 50, "")  # 30 trials done before this run
    for done in range(31, 36):
        clock.now += 10
        trials(done, 50, "")
    last = stream.getvalue().splitlines()[-1]
    assert "35/50" in last and "[00:50<02:30" in last and "10.00s/trial" in last, last


def test_off_a_terminal_a_long_item_still_shows_a_line_a_minute():
    shown, stream, clock = display()
    points = shown.phase("confirming", "point")
    steps = shown.stage("fine-tune", "step")
    points(2, 18, "trial 12")
    for done in range(0, 600, 10):  # 600 steps, 10 every 5 s: 5 minutes in one point
        steps(done, 600, f"seed {done // 200 + 1}/3, step {done % 200}/200")
        clock.now += 5
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 4  # the phase's line, then one a minute
    beat = lines[1]
    assert beat.startswith("confirming:") and " | fine-tune:" in beat
    assert "2/18" in beat and "trial 12" in beat
    for fragment in ("120/600 [01:00<04:00", "2.00step/s", "seed 1/3, step 120/200"):
        assert fragment in beat, (fragment, beat)


def test_a_stage_starts_afresh_when_its_count_goes_back_and_ends_with_its_item():
    shown, _, clock = display()
    trials = shown.phase("search", "trial")
    steps = shown.stage("fine-tune", "step")
    trials(0, 5, "")
    steps(0, 40, "")
    clock.now += 4
    steps(40, 40, "")
    steps(0, 40, "")  # the next probe
    assert [(r.label, r.initial, r.start_s) for r in shown.rows] == [
        ("search", 0, 1000.0), ("fine-tune", 0, 1004.0)]
    trials(1, 5, "")  # the next trial: its stages anew
    assert [r.label for r in shown.rows] == ["search"]


def test_a_phase_ends_once():
    shown, stream, _ = display()
    training = shown.phase("training", "step")
    training(8, 8, "loss 0.4")
    training(8, 8, "val accuracy 0.97")  # a last word after the end: not repeated
    assert len(stream.getvalue().splitlines()) == 1 and shown.rows == []


def test_on_a_terminal_bars_are_redrawn_in_place_with_their_meter():
    shown, stream, _ = display(interactive=True)
    points = shown.phase("confirming on the test split", "point")
    steps = shown.stage("fine-tune", "step")
    points(3, 18, "trial 12")
    steps(140, 600, "seed 1/3, step 140/200")
    assert len(shown.rows) == 2 and all(row.bar is not None for row in shown.rows)
    points(18, 18, "done")
    shown.close()
    text = stream.getvalue()
    assert "\r" in text  # redrawn in place
    for fragment in ("confirming on the test split:", "3/18", "trial 12", "fine-tune:",
                     "140/600", "seed 1/3, step 140/200", "18/18", "point"):
        assert fragment in text, fragment
    assert shown.rows == []


def test_text_written_between_bars_is_its_own_line():
    for interactive in (False, True):
        shown, stream, _ = display(interactive)
        shown.phase("search", "trial")(1, 4, "")
        shown.write("study s in sqlite:///s.db")
        shown.close()
        assert "study s in sqlite:///s.db\n" in stream.getvalue()
