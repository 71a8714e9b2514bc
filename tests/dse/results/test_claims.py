"""The summary's claims, on constructed studies with a known answer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dse.accuracy import ProbeResult
from dse.results.claims import adjust, describe, eden_claims, front_claims, odimo_claims

IMAGES = 400


def result(wrong: range | list[int]) -> ProbeResult:
    """A confirmation whose given test images are wrong (one seed of each)."""
    correct = np.ones(IMAGES, dtype=bool)
    correct[list(wrong)] = False
    return ProbeResult.from_correct(correct[None, None], seconds=0.0)


def frame_of(rows: list[tuple], validation: dict[int, float] | None = None) -> pd.DataFrame:
    """The trials; their validation accuracy change against all-digital (trial 0) as the
    search stores it, by default the test one's (``validation``: by trial, in pp), with an
    interval of +-0.5 pp (none for a change of 0: the same answers)."""
    frame = pd.DataFrame(rows, columns=["trial", "baseline", "latency_s", "energy_j",
                                        "is_pareto"])
    frame["is_baseline"] = frame["baseline"] != ""
    frame["state"] = "COMPLETE"
    frame["compute_latency_s"] = frame["latency_s"] / 2
    frame["compute_energy_j"] = frame["energy_j"] / 2
    reference = RESULTS[0].accuracy_mean
    changes = {trial: (validation or {}).get(trial, (RESULTS[trial].accuracy_mean - reference)
                                                   * 100)
               for trial in frame["trial"]}
    frame["accuracy"] = [reference + changes[t] / 100 for t in frame["trial"]]
    frame["accuracy_change_pp"] = [changes[t] for t in frame["trial"]]
    half = [0.0 if changes[t] == 0 else 0.5 for t in frame["trial"]]
    frame["accuracy_change_ci_low_pp"] = frame["accuracy_change_pp"] - half
    frame["accuracy_change_ci_high_pp"] = frame["accuracy_change_pp"] + half
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


def front(frame=None, results=None, **options):
    """The front claims with their verdicts (tested as one family)."""
    claims = front_claims(frame_of(ROWS) if frame is None else frame,
                          RESULTS if results is None else results,
                          objectives=options.pop("objectives", ["accuracy", "latency"]),
                          **{"max_drop_pp": None, "drop_rule": "mean", **options})
    adjust(claims)
    return claims


def test_iso_accuracy_claims_are_paired_and_identical_answers_are_equivalent():
    claims = front()
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 3  # 2 is faster, but one image less accurate; 4 far less
    assert latency["change_percent"] == pytest.approx(-50.0)
    assert latency["test_accuracy_change_pp"] == 0.0  # the same answers on every image
    assert latency["verdict"] == "inconclusive" and latency["holm_tests"] == 4
    assert latency["validation_accuracy_change_pp"] == 0.0
    assert all(claim["trial"] not in (0, 1) for claim in claims)  # never baseline vs baseline
    # no image differs, yet 400 images cannot rule out a drop of 1.40 pp either way: not
    # equivalent within 1 pp
    assert describe(latency) == (
        "-50.0 % latency at +0.00 pp test accuracy (95% CI -1.40 to +1.40 pp: inconclusive, "
        "Holm-adjusted over 4 tests) vs all-digital (trial 3), chosen at +0.00 pp validation "
        "accuracy")


def test_the_baselines_own_model_is_equivalent_by_construction_and_not_tested():
    """The safe DRAM point of a baseline is its split at BER 0: the same model, so its
    change is 0 on any split, with no test spent on it."""
    frame = frame_of(ROWS)
    frame["safe_dram_of"] = ["", "", "", "all-digital", ""]
    claims = front(frame, max_drop_pp=0.1)  # trial 2 (one image below) is out
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 3 and latency["same_model"] is True
    assert latency["verdict"] == "equivalent" and latency["p_value"] is None
    assert "holm_tests" not in latency
    assert describe(latency) == (
        "-50.0 % latency at +0.00 pp test accuracy (95% CI +0.00 to +0.00 pp: equivalent: the "
        "same model as the baseline, every tensor at BER 0: no measurable accuracy cost by "
        "construction, not tested) vs all-digital (trial 3), chosen at +0.00 pp validation "
        "accuracy")
    frame["safe_dram_of"] = ["", "", "", "all-analog", ""]  # another baseline's model
    (latency,) = by(front(frame, max_drop_pp=0.1), "all-digital", "latency")
    assert latency["verdict"] == "inconclusive" and "same_model" not in latency


def test_a_drop_limit_admits_points_and_a_large_drop_is_a_significant_decrease():
    claims = front(max_drop_pp=20.0)
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 4 and latency["test_accuracy_change_pp"] == pytest.approx(-15.0)
    assert latency["test_accuracy_change_ci_high_pp"] < 0
    assert latency["verdict"] == "significant decrease" and latency["p_adjusted"] < 0.05
    (analog,) = by(claims, "all-analog", "latency")  # 4 is faster and 30 pp more accurate
    assert analog["trial"] == 4 and analog["verdict"] == "significant increase"
    assert analog["test_accuracy_change_pp"] == pytest.approx(30.0)


def test_one_image_is_inconclusive_never_no_cost_and_the_upper_rule_is_stricter():
    mean = front(max_drop_pp=0.25)
    (latency,) = by(mean, "all-digital", "latency")
    assert latency["trial"] == 2  # 0.25 pp below: within the limit by its estimate
    assert latency["test_accuracy_change_pp"] == pytest.approx(-0.25)
    assert latency["verdict"] == "inconclusive"  # its interval reaches below -0.25 pp ...
    assert latency["test_accuracy_change_ci_low_pp"] < -0.25  # ... toward the margin
    assert "no measurable accuracy cost" not in describe(latency)
    upper = front(max_drop_pp=0.25, drop_rule="upper")
    assert by(upper, "all-digital", "latency")[0]["trial"] == 3


def test_the_claim_is_chosen_on_validation_even_where_the_test_split_would_choose_another():
    # on test, trial 2 is one image (0.25 pp) below all-digital and 4 is 15 pp below; on
    # validation, 2 is 2 pp below (over the 1 pp limit) and 4 is 0.5 pp below
    frame = frame_of(ROWS, validation={2: -2.0, 4: -0.5})
    (latency,) = by(front(frame, max_drop_pp=1.0), "all-digital", "latency")
    assert latency["trial"] == 4  # not 2, whose test drop would pass, nor 3
    assert latency["validation_accuracy_change_pp"] == -0.5
    assert latency["test_accuracy_change_pp"] == pytest.approx(-15.0)
    assert latency["test_within_limit"] is False  # still the claim, with its test verdict
    assert latency["verdict"] == "significant decrease"
    assert describe(latency).endswith("Holm-adjusted over 4 tests), over the accuracy limit on "
                                      "test vs all-digital (trial 4), chosen at -0.50 pp "
                                      "validation accuracy")
    # against all-analog (50 % on test, 94.5 % on validation): the drop is the difference
    # of the two changes against all-digital; 4 is 20.5 pp better there, 2 is 0.5 pp worse
    frame = frame_of(ROWS, validation={1: -0.5, 4: -1.0})
    claims = front(frame, max_drop_pp=0.6)
    (analog,) = by(claims, "all-analog", "latency")
    assert analog["trial"] == 4 and analog["validation_accuracy_change_pp"] == -0.5
    assert by(claims, "all-digital", "latency")[0]["trial"] == 2  # 4: 1 pp below it
    frame = frame_of(ROWS, validation={1: -0.5, 4: -1.2})  # 0.7 pp below all-analog
    assert by(front(frame, max_drop_pp=0.6), "all-analog", "latency") == []


def test_unconfirmed_points_make_no_claim():
    results = {k: v for k, v in RESULTS.items() if k != 3}
    assert by(front(results=results), "all-digital", "latency") == []  # 3: the only one
    assert front(results={}) == []


def test_a_study_without_accuracy_claims_costs_only():
    claims = front(results={}, objectives=["latency", "energy"])
    (latency,) = by(claims, "all-digital", "latency")
    assert latency["trial"] == 4 and "verdict" not in latency
    assert describe(latency) == "-70.0 % latency vs all-digital (trial 4)"


def test_odimo_metric_is_compute_only_against_each_heuristic():
    claims = odimo_claims(frame_of(ROWS), RESULTS, max_drop_pp=1.0, drop_rule="mean")
    adjust(claims)
    (latency,) = by(claims, "all-digital", "compute_latency")
    assert latency["trial"] == 2 and latency["change_percent"] == pytest.approx(-55.0)
    assert latency["limit_pp"] == 1.0 and describe(latency).startswith("ODiMO metric: -55.0 %")


def test_eden_metric_compares_a_mapping_with_itself_at_nominal_dram():
    frame = frame_of(ROWS)
    frame["dram_energy_j"] = [2.0, 2.0, 1.0, 1.5, 0.5]
    frame["dram_energy_nominal_j"] = [2.0, 2.0, 2.0, 2.0, 2.0]
    frame["dram_bytes"] = [1e3] * 5
    claims = eden_claims(frame, RESULTS, drop_rule="mean")
    assert adjust(claims) == 2
    (claim,) = claims
    assert claim["trial"] == 2  # -50 % within 1 pp; trial 4 saves more but is 15 pp below
    assert claim["change_percent"] == pytest.approx(-50.0)
    assert describe(claim).startswith(
        "EDEN metric: -50.0 % dram_energy vs same mapping at nominal DRAM (trial 2), at "
        "-0.25 pp test accuracy vs all-digital (95% CI -1.80 to +1.15 pp: inconclusive")


def test_no_eden_claim_for_a_mapping_with_no_tensor_in_dram():
    """Its saving is background power of a DRAM the inference does not use: not EDEN's."""
    frame = frame_of(ROWS)
    frame["dram_energy_j"] = [2.0, 2.0, 1.0, 1.5, 0.5]
    frame["dram_energy_nominal_j"] = [2.0, 2.0, 2.0, 2.0, 2.0]
    frame["dram_bytes"] = [1e3, 1e3, 0.0, 1e3, 1e3]  # trial 2 holds nothing in DRAM
    (claim,) = eden_claims(frame, RESULTS, drop_rule="mean")
    assert claim["trial"] == 3  # the next best within 1 pp, which holds data in DRAM
    frame["dram_bytes"] = [1e3, 1e3, np.nan, np.nan, 1e3]  # unknown: no claim either
    assert eden_claims(frame, RESULTS, drop_rule="mean") == []  # trial 4 is 15 pp below


def test_every_claim_of_a_summary_is_one_holm_family():
    claims = front(max_drop_pp=20.0)
    count = adjust(claims)
    assert count == 2 * len(claims) == 4
    assert all(claim["p_adjusted"] >= claim["p_value"] for claim in claims)


def test_records_without_per_image_data_are_tested_on_their_interval():
    legacy = {number: ProbeResult(r.accuracy_mean, 0.0, (r.accuracy_mean,), 0.0, True,
                                  ci_low=r.accuracy_mean - 0.01, ci_high=r.accuracy_mean + 0.01)
              for number, r in RESULTS.items()}
    (latency,) = by(front(results=legacy, max_drop_pp=20.0), "all-digital", "latency")
    assert latency["verdict"] == "significant decrease"  # 15 pp, interval +-1.4 pp
    no_interval = {number: ProbeResult(r.accuracy_mean, 0.0, (r.accuracy_mean,), 0.0, True)
                   for number, r in RESULTS.items()}
    (latency,) = by(front(results=no_interval, max_drop_pp=20.0), "all-digital", "latency")
    assert latency["verdict"] == "no interval" and latency["p_value"] is None
