"""The summary's claims, on constructed studies with a known answer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dse.accuracy import ProbeResult
from dse.results.claims import describe, eden_claims, front_claims, odimo_claims

IMAGES = 400


def result(wrong: range | list[int]) -> ProbeResult:
    """A confirmation whose given test images are wrong (one seed of each)."""
    correct = np.ones(IMAGES, dtype=bool)
    correct[list(wrong)] = False
    return ProbeResult.from_correct(correct[None, None], seconds=0.0)


def frame_of(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["trial", "baseline", "latency_s", "energy_j",
                                        "is_pareto"])
    frame["is_baseline"] = frame["baseline"] != ""
    frame["state"] = "COMPLETE"
    frame["compute_latency_s"] = frame["latency_s"] / 2
    frame["compute_energy_j"] = frame["energy_j"] / 2
    return frame


ROWS = [  # trial, baseline, latency_s, energy_j, on the front
    (0, "all-digital", 10.0, 8.0, True),  # a baseline on the front is still not a peer
    (1, "all-analog", 4.0, 2.0, False),
    (2, "", 4.5, 5.0, True),
    (3, "", 5.0, 7.0, True),
    (4, "", 3.0, 1.0, True),
]
RESULTS = {
    0: result(range(20)),            # 95.0 %
    1: result(range(200)),           # 50.0 %
    2: result(range(21)),            # 94.75 %: one image below all-digital
    3: result(range(20)),            # the same images as all-digital
    4: result(range(80)),            # 80.0 %: 60 images below
}


def by(claims, baseline, metric):
    return [c for c in claims if c["baseline"] == baseline and c["metric"] == metric]


def test_iso_accuracy_claims_are_paired_and_say_when_they_are_noise():
    claims = front_claims(frame_of(ROWS), RESULTS, objectives=["accuracy", "latency"],
                          max_drop_pp=None, drop_rule="mean")
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 3  # 2 is faster, but one image less accurate; 4 far less
    assert latency["change_percent"] == pytest.approx(-50.0)
    assert latency["test_accuracy_change_pp"] == 0.0  # the same answers on every image
    assert latency["verdict"] == "within noise"
    assert all(claim["trial"] not in (0, 1) for claim in claims)  # never baseline vs baseline
    # no image differs, yet 400 images cannot rule out a drop of 1.40 pp either way
    assert describe(latency) == ("-50.0 % latency at +0.00 pp test accuracy (95% CI -1.40 to "
                                 "+1.40 pp: within noise) vs all-digital (trial 3)")


def test_a_drop_limit_admits_points_and_a_large_drop_is_significant():
    claims = front_claims(frame_of(ROWS), RESULTS, objectives=["accuracy", "latency"],
                          max_drop_pp=20.0, drop_rule="mean")
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 4 and latency["test_accuracy_change_pp"] == pytest.approx(-15.0)
    assert latency["test_accuracy_change_ci_high_pp"] < 0
    assert latency["verdict"] == "significant"
    (analog,) = by(claims, "all-analog", "latency")  # 4 is faster and 30 pp more accurate
    assert analog["trial"] == 4 and analog["verdict"] == "significant"
    assert analog["test_accuracy_change_pp"] == pytest.approx(30.0)


def test_one_image_is_within_noise_and_the_upper_rule_is_stricter():
    mean = front_claims(frame_of(ROWS), RESULTS, objectives=["accuracy", "latency"],
                        max_drop_pp=0.25, drop_rule="mean")
    (latency,) = by(mean, "all-digital", "latency")
    assert latency["trial"] == 2  # 0.25 pp below: within the limit by its estimate
    assert latency["test_accuracy_change_pp"] == pytest.approx(-0.25)
    assert latency["verdict"] == "within noise"
    assert latency["test_accuracy_change_ci_low_pp"] < -0.25  # its interval reaches lower
    upper = front_claims(frame_of(ROWS), RESULTS, objectives=["accuracy", "latency"],
                         max_drop_pp=0.25, drop_rule="upper")
    # 400 images bound no drop below 1.40 pp with 97.5 % confidence, not even no change
    assert by(upper, "all-digital", "latency") == []
    upper = front_claims(frame_of(ROWS), RESULTS, objectives=["accuracy", "latency"],
                         max_drop_pp=1.5, drop_rule="upper")
    assert by(upper, "all-digital", "latency")[0]["trial"] == 3  # 2's upper end: 1.80 pp


def test_unconfirmed_points_make_no_claim():
    results = {k: v for k, v in RESULTS.items() if k != 3}
    claims = front_claims(frame_of(ROWS), results, objectives=["accuracy", "latency"],
                          max_drop_pp=None, drop_rule="mean")
    assert by(claims, "all-digital", "latency") == []  # 3 was the only iso-accuracy point
    assert front_claims(frame_of(ROWS), {}, objectives=["accuracy", "latency"],
                        max_drop_pp=None, drop_rule="mean") == []


def test_a_study_without_accuracy_claims_costs_only():
    claims = front_claims(frame_of(ROWS), {}, objectives=["latency", "energy"],
                          max_drop_pp=None, drop_rule="mean")
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 4 and "verdict" not in latency
    assert describe(latency) == "-70.0 % latency vs all-digital (trial 4)"


def test_odimo_metric_is_compute_only_against_each_heuristic():
    claims = odimo_claims(frame_of(ROWS), RESULTS, max_drop_pp=1.0, drop_rule="mean")
    (latency,) = by(claims, "all-digital", "compute_latency")
    assert latency["trial"] == 2 and latency["change_percent"] == pytest.approx(-55.0)
    assert latency["limit_pp"] == 1.0 and describe(latency).startswith("ODiMO metric: -55.0 %")


def test_eden_metric_compares_a_mapping_with_itself_at_nominal_dram():
    frame = frame_of(ROWS)
    frame["dram_energy_j"] = [2.0, 2.0, 1.0, 1.5, 0.5]
    frame["dram_energy_nominal_j"] = [2.0, 2.0, 2.0, 2.0, 2.0]
    (claim,) = eden_claims(frame, RESULTS, drop_rule="mean")
    assert claim["trial"] == 2  # -50 % within 1 pp; trial 4 saves more but is 15 pp below
    assert claim["change_percent"] == pytest.approx(-50.0)
    assert describe(claim) == (
        "EDEN metric: -50.0 % dram_energy vs same mapping at nominal DRAM (trial 2), at "
        "-0.25 pp test accuracy vs all-digital (95% CI -1.80 to +1.15 pp: within noise)")
