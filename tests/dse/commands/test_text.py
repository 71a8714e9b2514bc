"""Terminal text: aligned tables, worker threads in the status."""
from __future__ import annotations

from dse.commands.reports import StatusReport, StudyReport, ToleranceReport
from dse.commands.text import format_table, status_text


def test_columns_align_and_text_is_left_aligned():
    text = format_table([{"n": "a", "v": 1.5}, {"n": "bbb", "v": 10.25}],
                        [("name", "s", lambda r: r["n"]), ("value", ".2f", lambda r: r["v"])])
    assert text.splitlines() == ["name  value", "----  -----", "a      1.50", "bbb   10.25"]


def test_status_shows_threads_per_worker():
    report = StatusReport(
        study="s", storage="journal:j.log", trials={"COMPLETE": 3}, front_size=2,
        last_completion=None, confirmed=0, confirm_settings=None,
        complete_by_worker={"node1:11": 2, "node1:12": 1},
        threads_by_worker={"node1:11": 1, "node1:12": 1},
        running=[{"trial": 3, "worker": "node1:12", "running_s": 5.0, "threads": 1}])
    text = status_text(report)
    assert "node1:11  2  (1 threads)" in text
    assert "trial 3 on node1:12 for 0 min 05 s (1 threads)" in text



def test_tolerance_text_orders_data_by_tolerance_and_says_when_none_is_in_dram():
    from dse.commands.text import tolerance_text
    report = ToleranceReport(study="s", splits=[
        {"mapping": "all-digital", "coarse_ber": 1.3e-3, "trial": 8, "target_met": True,
         "tightened": 1, "fine_ber": {"weights/fc": 0.03, "weights/stem.conv": 8.6e-3}},
        {"mapping": "all-analog", "coarse_ber": None, "trial": 9, "target_met": True,
         "tightened": 0, "fine_ber": {}}])
    lines = tolerance_text(report).splitlines()
    assert lines[1] == "all-digital: coarse 1.30e-03; mapped in trial 8, tightened 1x"
    assert lines[2:4] == ["  8.60e-03  weights/stem.conv", "  3.00e-02  weights/fc"]
    assert lines[4:] == ["all-analog: coarse n/a; mapped in trial 9",
                         "  (no data of this split lives in DRAM)"]
    report.splits[0].update(mapped_with="fine", retrain_epochs=5)
    assert tolerance_text(report).splitlines()[1] == (
        "all-digital: coarse 1.30e-03; mapped in trial 8, tightened 1x; mapped with the fine "
        "tolerance; retrained 5 epochs")


def test_a_summary_without_claims_says_why_in_place_of_the_headline():
    from dse.commands.text import search_text
    summary = StudyReport(
        study="s", objectives=["accuracy", "latency"], trials={"COMPLETE": 5},
        front=[{"trial": 4, "baseline": "", "safe_dram_of": "", "engine": "optuna",
                "analog_channel_fraction": 0.25, "vdd_v:p0": 1.0, "trcd_ns:p0": 15.0,
                "vdd_v:p1": 1.1, "trcd_ns:p1": 18.125, "accuracy": 0.9,
                "accuracy_ci_low": 0.88, "accuracy_ci_high": 0.92,
                "latency_s": 1e-3, "energy_j": 2e-6, "dram_energy_j": 1e-6}],
        robust_front_size=1, baselines=[], interval_level=0.95, drop_rule="mean",
        claims=[], headline=[], dram_notes=[], plots=[], eden_files=[], report="",
        claims_note="no claim: the front and the baselines are not confirmed on the test "
                    "split yet (run `dse confirm`)",
        next_commands=[{"command": "dse confirm r/s", "why": "5 points"}],
        results_dir="r/s", storage="sqlite:///r/s/study.db")
    lines = search_text(summary).splitlines()
    assert lines[:4] == ["study s: 5 complete",
                         "no headline: the front and the baselines are not confirmed on the "
                         "test split yet (run `dse confirm`)", "", "Pareto front (1 point):"]
    assert lines[6].split()[:4] == ["4", "25%", "analog", "1/15,"]  # both partitions' points
    assert "1.1/18.125" in lines[6]
    assert sum("not confirmed" in line for line in lines) == 1
    assert lines[-3:] == ["next:", "  5 points:", "    dse confirm r/s"]
