"""``report.html``: a study's results on one page that reads offline.

The headline and the next commands, the claims and notes of the summary, every figure
written (each PNG embedded as a data URI, so the file can be mailed or copied alone), the
front and the baselines as tables, and each of their trials in full (what ``dse show``
prints), linked from the tables by anchors. Plain HTML with its style in the page: no
script, nothing fetched. Every text from the study is escaped.
"""
from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any, Callable, Sequence, TypeGuard

from dse.accuracy.stats import LEVEL
from dse.metrics import BY_NAME, METRICS
from dse.results.files import atomic_path
from dse.results.tables import point_label

Cell = Callable[[dict[str, Any]], str]  # row -> HTML (escaped already)
Column = tuple[str, Cell, bool]  # header, cell, whether it holds words (left-aligned)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 2em; }
.facts { color: #555; margin-top: 0; }
.headline { background: #f3f7ee; border-left: 4px solid #5a8f29; padding: 0.6em 1em; }
.headline p { margin: 0.3em 0; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
.wide { overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
td { white-space: nowrap; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; width: 34em;
         max-width: 100%; }
figure.whole { width: 69em; }
figure img { width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; }
"""


def write_report(summary: dict[str, Any], details: dict[int, dict[str, Any]],
                 out_dir: Path, *, facts: str) -> Path:
    """Write ``out_dir/report.html`` from the summary (with its ``plots``) and the details
    of the front's and the baselines' trials; ``facts`` is a line on what was searched."""
    sections = [headline_section(summary), commands_section(summary),
                figures_section(summary, out_dir), table_section(summary, details),
                summary_section(summary), details_section(summary, details)]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(summary['study'])}: dse results</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{escape(summary['study'])}</h1>\n<p class=\"facts\">{escape(facts)}</p>\n"
            + "\n".join(section for section in sections if section)
            + "\n</body>\n</html>\n")
    path = out_dir / "report.html"
    with atomic_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path


def headline_section(summary: dict[str, Any]) -> str:
    lines = [f"<p>{escape(line['text'])}</p>" for line in summary.get("headline", [])]
    if not lines:
        reason = summary.get("claims_note") or summary.get("front_note") or "no claim"
        lines = [f"<p>No headline: {escape(reason)}.</p>"]
    note = (f"<p class=\"note\">{escape(verdict_note(summary))}</p>"
            if "accuracy" in summary["objectives"] else "")
    return ("<h2 id=\"headline\">Headline</h2>\n<div class=\"headline\">"
            + "".join(lines) + "</div>\n" + note)


def verdict_note(summary: dict[str, Any]) -> str:
    """How the headline's points were chosen and its verdicts reached."""
    margin = summary.get("equivalence_margin_pp")
    margin_text = f"{margin if margin is not None else 1:g}"
    return ("Each point chosen on the validation split (the search's), its accuracy change "
            "reported on the test split, paired with the baseline on the same images and "
            "seeds, in percentage points (pp), negative = worse than the baseline. Verdicts, "
            f"Holm-adjusted over the summary's {summary.get('holm_tests') or 0} tests: "
            "significant decrease or increase (the test of no change rejected), equivalent "
            f"(within ±{margin_text} pp by two one-sided tests), else inconclusive: an "
            "interval that includes 0 is no proof of no cost.")


def commands_section(summary: dict[str, Any]) -> str:
    commands = summary.get("next_commands", [])
    if not commands:
        return ""
    items = "".join(f"<li><code>{escape(item['command'])}</code>: {escape(item['why'])}</li>"
                    for item in commands)
    return f"<h2 id=\"next\">Next commands</h2>\n<ul>{items}</ul>"


# what each figure shows, by file stem (``front_<x>_<y>`` by prefix); the test front, on which
# every claim rests, comes first and spans the page
FIGURE_NOTES = {
    "test_front": "the points confirmed on the test split, on which every claim rests: "
                  "validation against test accuracy, then test accuracy against each cost",
    "front_3d": "the front in three objectives over the feasible trials",
    "hypervolume": "how the front grew, trial by trial",
    "layer_splits": "the analog share of each layer's channels, for the front's best point "
                    "in each objective and its most balanced one",
}
FRONT_NOTE = "two objectives: every trial in grey, the front coloured by the third"
WHOLE_WIDTH = ("test_front",)


def figure_order(path: Path) -> int:
    return 0 if path.stem in WHOLE_WIDTH else 1


def figures_section(summary: dict[str, Any], out_dir: Path) -> str:
    figures = []
    for path in sorted((Path(name) for name in summary.get("plots", [])), key=figure_order):
        if path.suffix != ".png" or not path.is_file():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        vector = path.with_suffix(".svg")
        link = (f" (<a href=\"{escape(vector.name)}\">SVG</a>)"
                if vector.is_file() and vector.parent == out_dir else "")
        note = FIGURE_NOTES.get(path.stem, FRONT_NOTE if path.stem.startswith("front_") else "")
        whole = " class=\"whole\"" if path.stem in WHOLE_WIDTH else ""
        figures.append(f"<figure{whole}><img src=\"data:image/png;base64,{data}\" "
                       f"alt=\"{escape(path.stem)}\"><figcaption>{escape(path.name)}{link}"
                       f"{': ' + escape(note) if note else ''}</figcaption></figure>")
    if not figures:
        return ""
    return "<h2 id=\"figures\">Figures</h2>\n" + "\n".join(figures)


def table_section(summary: dict[str, Any], details: dict[int, dict[str, Any]]) -> str:
    columns = point_columns(summary, details)
    front = summary["front"]
    text = (f"<h2 id=\"front\">Pareto front ({len(front)} points)</h2>\n"
            + (html_table(front, columns) if front else
               f"<p>Empty: {escape(summary.get('front_note', 'no feasible trial'))}.</p>"))
    if summary.get("unusable_note"):
        text += f"\n<p>Note: {escape(summary['unusable_note'])}.</p>"
    if summary.get("baselines"):
        text += "\n<h2 id=\"baselines\">Baselines</h2>\n" + html_table(summary["baselines"],
                                                                       columns)
    return text


def point_columns(summary: dict[str, Any], details: dict[int, dict[str, Any]]
                  ) -> list[Column]:
    """The columns of the front and baseline tables: what the point is, its DRAM point,
    its accuracies with intervals, its costs."""
    level = f"{summary.get('interval_level', LEVEL):.0%}"
    rows = [*summary["front"], *summary.get("baselines", [])]
    columns: list[Column] = [
        ("trial", lambda r: (f"<a href=\"#trial-{r['trial']}\">{r['trial']}</a>"
                             if r["trial"] in details else str(r["trial"])), True),
        ("point", lambda r: escape(point_label(r)), True)]
    partitions = [key for key in (rows[0] if rows else {}) if key.split(":")[0] == "vdd_v"]
    for key in partitions:
        suffix = key[len("vdd_v"):]
        columns.append((f"VDD{suffix} V", cell(key, "{:g}"), False))
        columns.append((f"tRCD{suffix} ns", cell(f"trcd_ns{suffix}", "{:g}"), False))
    if any(r.get("accuracy") is not None for r in rows):
        columns += [(f"val acc % [{level} CI]",
                     lambda r: escape(percent_interval(r, "accuracy")), False),
                    ("val change pp vs all-digital",
                     lambda r: escape(change_interval(r, "accuracy")), False)]
    if any(r.get("test_accuracy") is not None for r in rows):
        columns += [(f"test acc % [{level} CI]",
                     lambda r: escape(percent_interval(r, "test_accuracy")), False),
                    ("test change pp vs all-digital",
                     lambda r: escape(change_interval(r, "test_accuracy")), False)]
    shown = {"latency", "energy", "dram_energy", *summary["objectives"]} - {"accuracy"}
    for metric in METRICS:  # the rest is in pareto.csv and each trial's details
        if metric.name in shown and any(r.get(metric.column) is not None for r in rows):
            columns.append((escape(metric.label),
                            cell(metric.column, "{:.4g}", metric.display_scale), False))
    return columns


def known(value: Any) -> TypeGuard[float]:
    """A number to show (not None, not NaN)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def cell(key: str, spec: str, scale: float = 1.0) -> Cell:
    def get(row: dict[str, Any]) -> str:
        value = row.get(key)
        return escape(spec.format(value * scale)) if known(value) else ""
    return get


def percent_interval(row: dict[str, Any], name: str) -> str:
    """'98.64 [96.4, 99.8]' (%), '' when unknown."""
    value, low, high = (row.get(key) for key in (name, f"{name}_ci_low", f"{name}_ci_high"))
    if not known(value):
        return ""
    bounds = f" [{100 * low:.1f}, {100 * high:.1f}]" if known(low) and known(high) else ""
    return f"{100 * value:.2f}{bounds}"


def change_interval(row: dict[str, Any], name: str) -> str:
    """'-0.37 [-1.11, +0.00]' (pp, negative: worse), '' when unknown."""
    value, low, high = (row.get(f"{name}_change{part}_pp") for part in ("", "_ci_low",
                                                                        "_ci_high"))
    if not known(value):
        return ""
    bounds = f" [{low:+.2f}, {high:+.2f}]" if known(low) and known(high) else ""
    return f"{value:+.2f}{bounds}"


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Rows under a header, numbers right-aligned, words left-aligned; scrolls sideways
    when wider than the page."""
    aligns = [' class="text"' if words else "" for _, _, words in columns]
    head = "".join(f"<th{align}>{header}</th>"
                   for align, (header, _, _) in zip(aligns, columns))
    body = "".join("<tr>" + "".join(f"<td{align}>{get(row)}</td>"
                                    for align, (_, get, _) in zip(aligns, columns)) + "</tr>\n"
                   for row in rows)
    return f"<div class=\"wide\"><table>\n<tr>{head}</tr>\n{body}</table></div>"


def summary_section(summary: dict[str, Any]) -> str:
    """The claims, the method metrics and the notes of the summary, as the terminal has
    them."""
    items = [*(c["text"] for c in summary.get("claims", [])),
             *(c["text"] for c in summary.get("method_metrics", []))]
    parts = ["<h2 id=\"summary\">Claims and notes</h2>"]
    if items:
        parts.append("<ul>" + "".join(f"<li>{escape(t)}</li>" for t in items) + "</ul>")
    if summary.get("claims_note"):
        parts.append(f"<p>{escape(summary['claims_note'])}.</p>")
    shift = summary.get("validation_to_test_shift")
    if shift:
        parts.append(f"<p>Validation to test: {shift['mean_pp']:+.2f} pp on average over "
                     f"{shift['points']} confirmed front points (from {shift['min_pp']:+.2f} "
                     f"to {shift['max_pp']:+.2f} pp).</p>")
    agreement = summary.get("model_agreement")
    if agreement:
        from dse.results.tables import model_agreement_text
        sentence = model_agreement_text(agreement)
        parts.append(f"<p>{escape(sentence[0].upper() + sentence[1:])}.</p>")
    robust, size = summary.get("robust_front_size", 0), len(summary["front"])
    if robust > size:
        parts.append(f"<p>{robust - size} more trials are within their accuracy interval of "
                     "the front (<code>is_pareto_robust</code> in trials.csv): the front's "
                     "order in accuracy is partly noise.</p>")
    notes = summary.get("dram_notes") or []
    if notes:
        parts.append("<p>The baselines at their lowest safe DRAM point (validation "
                      "split):</p><ul>" + "".join(f"<li>{escape(n['text'])}</li>"
                                                  for n in notes) + "</ul>")
    return "\n".join(parts) if len(parts) > 1 else ""


def details_section(summary: dict[str, Any], details: dict[int, dict[str, Any]]) -> str:
    if not details:
        return ("<h2 id=\"trials\">Trials in full</h2>\n<p class=\"note\">Not in this "
                "report (the study's layer table or presets could not be read here): "
                "<code>dse show STUDY --trial N</code> prints each.</p>"
                if summary["front"] else "")
    labels = {row["trial"]: point_label(row)
              for row in [*summary["front"], *summary.get("baselines", [])]}
    return ("<h2 id=\"trials\">Trials in full</h2>\n<p class=\"note\">What <code>dse show "
            "--trial N</code> prints, for each point of the front and each baseline.</p>\n"
            + "\n".join(trial_section(report, labels.get(number, ""))
                        for number, report in details.items()))


LAYER_COLUMNS: list[Column] = [
    ("layer", lambda r: escape(r["name"]), True),
    ("kind", lambda r: escape(r["kind"]), True),
    ("Cout", lambda r: str(r["cout"]), False),
    ("digital", lambda r: str(r["n_digital"]), False),
    ("analog", lambda r: str(r["n_analog"]), False),
    ("weights in", lambda r: escape(r["weights_partition"]), True),
    ("working set", lambda r: escape(r["working_set"]), True),
    ("input in", lambda r: escape(r["activations_partition"]), True),
    ("weight BER", lambda r: f"{r['weight_ber']:.1e}", False),
    ("input BER", lambda r: f"{r['activation_ber']:.1e}", False),
    ("latency µs", lambda r: f"{r['latency_s'] * 1e6:.2f}", False),
    ("compute µJ", lambda r: f"{r['compute_energy_j'] * 1e6:.4f}", False),
    ("DRAM µJ", lambda r: f"{r['dram_energy_j'] * 1e6:.4f}", False),
]


def trial_section(report: dict[str, Any], label: str) -> str:
    number = report["trial"]
    title = f"Trial {number}" + (f": {label}" if label else "")
    dram = ", ".join(f"{p['name']}: VDD {p['vdd_v']:g} V, tRCD {p['trcd_ns']:g} ns"
                     for p in report["partitions"]) or "no DRAM"
    lines = [f"DRAM {report['dram']}: {dram}", *accuracy_lines(report),
             cost_line(report)]
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return (f"<h3 id=\"trial-{number}\">{escape(title)}</h3>\n{body}\n"
            f"{html_table(report['layers'], LAYER_COLUMNS)}\n"
            "<p><a href=\"#front\">back to the front</a></p>")


def accuracy_lines(report: dict[str, Any]) -> list[str]:
    metrics, test = report["metrics"], report.get("test") or {}
    if metrics.get("accuracy") is None:
        return []
    level = f"{report.get('interval_level', LEVEL):.0%}"
    lines = [f"validation accuracy {percent_interval(metrics, 'accuracy')} % ({level} CI); "
             f"change vs all-digital {change_interval(metrics, 'accuracy')} pp"]
    if test.get("test_accuracy") is not None:
        lines.append(f"test accuracy (confirmed) {percent_interval(test, 'test_accuracy')} % "
                     f"({level} CI); change vs all-digital "
                     f"{change_interval(test, 'test_accuracy')} pp")
    return lines


def cost_line(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    shown = [f"{BY_NAME[name].label.split(' (')[0]} "
             f"{BY_NAME[name].shown(metrics[BY_NAME[name].column]):.4g} "
             f"{BY_NAME[name].display_unit}"
             for name in ("latency", "energy", "dram_energy", "compute_energy")
             if metrics.get(BY_NAME[name].column) is not None]
    return ", ".join(shown)
