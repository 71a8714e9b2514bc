"""Tables of a study: improvements over baselines."""
from __future__ import annotations

import pandas as pd
import pytest


def test_improvements_are_iso_accuracy_over_the_studys_own_objectives():
    from dse.results.tables import improvements
    rows = [  # trial, baseline, accuracy, latency_s, energy_j, is_pareto
        (0, "all-digital", 0.99, 10.0, 8.0, False),
        (1, "all-analog", None, 4.0, 2.0, False),   # over a budget: accuracy unknown
        (2, "", 0.98, 6.0, 5.0, True),
        (3, "", 0.99, 6.0, 5.5, True),             # as fast as 2, and as accurate as 0
        (4, "", 0.90, 3.0, 1.0, True),             # fastest, but far less accurate
    ]
    frame = pd.DataFrame(rows, columns=["trial", "baseline", "accuracy", "latency_s",
                                        "energy_j", "is_pareto"])
    frame["accuracy"] = frame["accuracy"].astype(float)
    frame["is_baseline"] = frame["baseline"] != ""
    frame["state"] = "COMPLETE"
    found = improvements(frame, 1.0, ["accuracy", "latency"])
    assert found == [{"baseline": "all-digital", "metric": "latency", "change_percent":
                      pytest.approx(-40.0), "accuracy_change_pp": pytest.approx(0.0),
                      "trial": 3}]
    both = improvements(frame, 1.0, None)
    assert [(f["metric"], f["trial"]) for f in both] == [("latency", 3), ("energy", 2)]


def test_an_empty_front_says_why():
    from dse.results.tables import empty_front_reason
    frame = pd.DataFrame({"state": ["COMPLETE", "COMPLETE", "FAIL"],
                          "constraint:latency_over_budget_s": [1e-3, 2e-3, None],
                          "constraint:energy_over_budget_j": [-1.0, 1.0, None]})
    assert empty_front_reason(frame) == ("none of the 2 complete trials meets every "
                                         "constraint (latency_over_budget_s by 2, "
                                         "energy_over_budget_j by 1)")
    assert empty_front_reason(frame.iloc[2:]) == "no trial has completed yet"
