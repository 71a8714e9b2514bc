"""The summary's headline and the commands to run next.

The headline is one sentence per baseline: the front's best trade-offs against it, one per
cost objective, taken from the ``front`` claims (``claims.py``: each point chosen on the
validation split, its accuracy change reported on the test split, paired, with its interval
and its verdict, Holm-adjusted over the summary's tests; negative = worse than the
baseline). The next commands name the study as a user passes it on the command line
(``location.study_target``): the headline's trials in full, the trials by a cost the study
did not search on, and the confirmation when front points or baselines are not confirmed on
the test split.
"""
from __future__ import annotations

from typing import Any

from dse.accuracy.stats import LEVEL
from dse.metrics import BY_NAME, METRICS
from dse.results.claims import verdict_words


def headline(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per baseline, in the claims' order: {baseline, trials, text}."""
    by_baseline: dict[str, list[dict[str, Any]]] = {}
    for claim in claims:
        if claim.get("kind", "front") == "front":
            by_baseline.setdefault(claim["baseline"], []).append(claim)
    return [{"baseline": baseline,
             "trials": list(dict.fromkeys(claim["trial"] for claim in items)),
             "text": f"Against {baseline}: " + "; ".join(map(trade_off, items)) + "."}
            for baseline, items in by_baseline.items()]


def trade_off(claim: dict[str, Any]) -> str:
    """e.g. '8.7 % less energy at a test-accuracy change of -0.37 pp [95% CI -1.11, +0.00]
    (inconclusive, Holm-adjusted over 6 tests), trial 4'."""
    text = f"{-claim['change_percent']:.1f} % less {metric_words(claim['metric'])}"
    if "test_accuracy_change_pp" in claim:
        text += (f" at a test-accuracy change of {claim['test_accuracy_change_pp']:+.2f} pp "
                 f"[{claim.get('level', LEVEL):.0%} CI "
                 f"{claim['test_accuracy_change_ci_low_pp']:+.2f}, "
                 f"{claim['test_accuracy_change_ci_high_pp']:+.2f}] ({verdict_words(claim)})")
        if not claim.get("test_within_limit", True):
            text += ", over the accuracy limit on test"
    return f"{text}, trial {claim['trial']}"


def metric_words(name: str) -> str:
    """'DRAM energy' for ``dram_energy``: the metric's label without its unit."""
    found = BY_NAME.get(name)
    return found.label.split(" (")[0] if found is not None else name.replace("_", " ")


def next_commands(summary: dict[str, Any], target: str, *, confirmable: bool
                  ) -> list[dict[str, str]]:
    """{command, why} for what to look at next (see the module)."""
    commands = []
    trials = list(dict.fromkeys(t for line in summary.get("headline", []) for t in line["trials"]))
    if not trials:
        trials = [row["trial"] for row in summary["front"]][:1]
    for trial in trials:
        commands.append({"command": f"dse show {target} --trial {trial}",
                         "why": f"trial {trial} in full: its split per layer, where each "
                                "tensor lives, its DRAM point"})
    objectives = summary["objectives"]
    # a cost the study measured but did not search on (accuracy is measured only then)
    extra = next((m.name for m in METRICS if m.name not in (*objectives, "accuracy")), None)
    if summary["front"] and extra is not None:
        names = ", ".join(m.name for m in METRICS
                          if m.name != "accuracy" or "accuracy" in objectives)
        commands.append({"command": f"dse pareto {target} --x {extra} --y {objectives[0]}",
                         "why": f"another view: the trials by {metric_words(extra)}, not an "
                                f"objective (--x and --y take any of {names})"})
    unconfirmed = [row["trial"] for row in [*summary["front"], *summary["baselines"]]
                   if row.get("test_accuracy") is None]
    if confirmable and "accuracy" in objectives and unconfirmed:
        count = len(set(unconfirmed))
        commands.append({"command": f"dse confirm {target}",
                         "why": f"{count} of the front's points and baselines "
                                f"{'are' if count > 1 else 'is'} not confirmed on the test "
                                "split, on which every claim rests"})
    return commands
