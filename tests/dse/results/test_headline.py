"""The summary's headline and next commands, on constructed claims and summaries."""
from __future__ import annotations

from dse.results.headline import headline, next_commands, trade_off
from dse.results.location import study_target


def claim(baseline, metric, change, trial, accuracy=(-0.4, -1.1, 0.3), verdict="inconclusive"):
    record = {"kind": "front", "baseline": baseline, "metric": metric, "trial": trial,
              "change_percent": change}
    if accuracy is not None:
        record.update(level=0.95, test_accuracy_change_pp=accuracy[0],
                      test_accuracy_change_ci_low_pp=accuracy[1],
                      test_accuracy_change_ci_high_pp=accuracy[2], verdict=verdict,
                      equivalence_margin_pp=1.0, holm_tests=6)
    return record


def test_one_sentence_per_baseline_with_every_number_its_interval_and_verdict():
    claims = [claim("all-digital", "energy", -38.04, 17),
              claim("all-digital", "latency", -5.0, 9, (0.25, 0.0, 1.11)),
              claim("all-analog", "dram_energy", -12.0, 17, (-1.5, -2.6, -0.4),
                    "significant decrease"),
              {**claim("all-analog", "compute_energy", -50.0, 3), "kind": "odimo"}]
    lines = headline(claims)
    assert [line["baseline"] for line in lines] == ["all-digital", "all-analog"]
    assert lines[0]["trials"] == [17, 9]
    assert lines[0]["text"] == (
        "Against all-digital: 38.0 % less energy at a test-accuracy change of -0.40 pp "
        "[95% CI -1.10, +0.30] (inconclusive, Holm-adjusted over 6 tests), trial 17; 5.0 % "
        "less latency at a test-accuracy change of +0.25 pp [95% CI +0.00, +1.11] "
        "(inconclusive, Holm-adjusted over 6 tests), trial 9.")
    assert lines[1]["text"].startswith("Against all-analog: 12.0 % less DRAM energy at a "
                                       "test-accuracy change of -1.50 pp")
    assert "(significant decrease, Holm-adjusted over 6 tests), trial 17." in lines[1]["text"]
    # the ODiMO metric is no headline


def test_only_an_equivalent_change_is_worded_as_no_cost_and_a_test_failure_is_named():
    equivalent = trade_off(claim("all-digital", "energy", -20.0, 4, (0.0, -0.3, 0.3),
                                 "equivalent"))
    assert "(equivalent within ±1 pp: no measurable accuracy cost at that margin, " in equivalent
    for verdict in ("inconclusive", "significant decrease", "significant increase"):
        assert "no measurable" not in trade_off(claim("all-digital", "energy", -20.0, 4,
                                                      verdict=verdict))
    over = {**claim("all-digital", "energy", -20.0, 4), "test_within_limit": False}
    assert trade_off(over).endswith("over the accuracy limit on test, trial 4")


def test_a_study_without_accuracy_states_the_cost_alone():
    assert trade_off(claim("min-latency", "latency", -12.34, 4, accuracy=None)) == (
        "12.3 % less latency, trial 4")
    assert headline([]) == []


SUMMARY = {
    "objectives": ["accuracy", "latency", "energy"],
    "headline": [{"baseline": "all-digital", "trials": [17, 9], "text": "..."},
                 {"baseline": "all-analog", "trials": [17], "text": "..."}],
    "front": [{"trial": 9, "test_accuracy": 0.9}, {"trial": 17, "test_accuracy": 0.9},
              {"trial": 21, "test_accuracy": None}],
    "baselines": [{"trial": 0, "test_accuracy": None}, {"trial": 1, "test_accuracy": 0.8}],
}


def test_next_commands_show_the_headline_trials_another_view_and_the_confirmation():
    commands = [item["command"] for item in next_commands(SUMMARY, "results/s",
                                                          confirmable=True)]
    assert commands == ["dse show results/s --trial 17", "dse show results/s --trial 9",
                        "dse pareto results/s --x dram_energy --y accuracy",
                        "dse confirm results/s"]
    why = next_commands(SUMMARY, "results/s", confirmable=True)[-1]["why"]
    assert why.startswith("2 of the front's points and baselines are not confirmed")
    assert "dse confirm" not in str(next_commands(SUMMARY, "s", confirmable=False))


def test_without_a_headline_the_first_front_point_is_shown():
    summary = {**SUMMARY, "headline": [], "objectives": ["latency", "energy"]}
    commands = [item["command"] for item in next_commands(summary, "s", confirmable=True)]
    assert commands == ["dse show s --trial 9", "dse pareto s --x dram_energy --y latency"]


def test_the_study_is_named_by_its_folder_or_by_its_storage(tmp_path):
    folder = tmp_path / "my results" / "s"
    assert study_target(folder, "sqlite:///x.db", "s") == (
        "--storage sqlite:///x.db --study s")  # no settings in the folder
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert study_target(folder, "sqlite:///x.db", "s") == f"'{folder}'"
    target = study_target(folder, "postgresql://me:secret@db/dse", "s")
    assert "secret" not in target and target.startswith("--storage ") and "--study s" in target
