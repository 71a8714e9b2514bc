"""report.html: one page with the headline, the figures, the front and each front trial,
that reads offline; and the summary that points to it."""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from toy import toy_prepared

from cli import cli
from dse.commands.search import run_search
from dse.problem import Limits
from dse.results.report import write_report

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                       "hgGAWjR9awAAAABJRU5ErkJggg==")  # one pixel


class Page(HTMLParser):
    """The anchors, links, sources and tags of a page, and whether every tag closes."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.sources: list[str] = []
        self.tags: set[str] = set()
        self.open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.ids.update([attrs["id"]] if "id" in attrs else [])
        self.links += [attrs["href"]] if "href" in attrs else []
        self.sources += [attrs["src"]] if "src" in attrs else []
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open.pop() == tag


def fake_plots(frame, objectives, layers, out_dir, **kwargs):
    """One figure as the plots write it (PNG and SVG), without drawing."""
    (out_dir / "front_latency_s_energy_j.png").write_bytes(PNG)
    (out_dir / "front_latency_s_energy_j.svg").write_text("<svg/>")
    return [out_dir / "front_latency_s_energy_j.png", out_dir / "front_latency_s_energy_j.svg"]


@pytest.fixture
def confirmed(toy_table, tmp_path, monkeypatch):
    monkeypatch.setattr("dse.results.outputs.write_plots", fake_plots)
    prepared = toy_prepared(toy_table, tmp_path, trials=25, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=5.0), ber_quantile="median")
    return prepared, run_search(prepared)


def test_the_report_has_the_headline_figures_front_and_every_front_trial(confirmed):
    prepared, summary = confirmed
    path = prepared.out_dir / "report.html"
    assert summary.report == str(path)
    assert json.loads((prepared.out_dir / "summary.json").read_text())["report"] == str(path)
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert page.open == []  # every tag closed
    assert summary.headline and all(line["text"] in text for line in summary.headline)
    for item in summary.next_commands:
        assert item["command"] in text
    numbers = [row["trial"] for row in [*summary.front, *summary.baselines]]
    assert {f"trial-{n}" for n in numbers} <= page.ids
    assert {f"#trial-{n}" for n in numbers} <= set(page.links)
    assert all(link[1:] in page.ids for link in page.links if link.startswith("#"))
    assert "big" in text and "whole-device: VDD" in text  # a layer, a DRAM point
    # offline: the figure inside the page, nothing fetched, no script
    assert page.sources == [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"]
    assert [link for link in page.links if not link.startswith("#")] == [
        "front_latency_s_energy_j.svg"]
    assert "script" not in page.tags and "http" not in text


def test_pareto_prints_the_headline_report_and_next_commands(confirmed):
    prepared, summary = confirmed
    result = CliRunner().invoke(cli, ["pareto", str(prepared.out_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith(f"Against {summary.headline[0]['baseline']}: ")
    assert "(each point chosen on the validation split, its accuracy change on the test" \
        in result.stdout
    assert "verdicts Holm-adjusted over" in result.stdout
    assert "within noise" not in result.stdout and "within noise" not in (
        prepared.out_dir / "report.html").read_text()
    assert f"report: {prepared.out_dir / 'report.html'}" in result.stdout
    header = lines[[line.startswith("Pareto front (") for line in lines].index(True) + 1]
    assert header.split()[:4] == ["trial", "point", "DRAM", "V/ns"]  # every row says what
    assert "analog" in result.stdout
    trial = summary.headline[0]["trials"][0]
    assert lines[lines.index("next:") + 2] == f"    dse show {prepared.out_dir} --trial {trial}"
    shown = CliRunner().invoke(cli, ["show", str(prepared.out_dir), "--trial", str(trial)])
    assert shown.exit_code == 0, shown.output


def test_every_text_is_escaped(tmp_path):
    summary = {"study": "<b>s&t</b>", "objectives": ["latency", "energy"],
               "trials": {"COMPLETE": 1}, "interval_level": 0.95,
               "headline": [{"baseline": "<i>", "trials": [0], "text": "Against <i>: x."}],
               "next_commands": [{"command": "dse show '<s>' --trial 0", "why": "a & b"}],
               "front": [{"trial": 0, "baseline": "", "engine": "<script>", "latency_s": 1.0,
                          "energy_j": 2.0}],
               "baselines": [], "claims": [{"text": "<claim>"}], "plots": []}
    text = write_report(summary, {}, tmp_path, facts="<facts>").read_text()
    for raw in ("<b>", "<i>", "<s>", "<script>", "<claim>", "<facts>", "s&t", "a & b"):
        assert raw not in text, raw
    assert "&lt;b&gt;s&amp;t&lt;/b&gt;" in text and "&lt;script&gt;" in text
    assert Path(tmp_path / "report.html").is_file() and Page(text).open == []


def test_a_study_whose_presets_are_gone_still_gets_its_report(toy_table, tmp_path,
                                                              monkeypatch):
    import optuna

    from dse.results.outputs import write_outputs
    from hw_models import ConfigError

    def gone(study):
        raise ConfigError("unknown hardware 'gone.toml'")
    prepared = toy_prepared(toy_table, tmp_path, trials=5, sampler="random", confirm=False)
    run_search(prepared)
    monkeypatch.setattr("dse.results.outputs.problem_of", gone)  # as dse pareto finds it
    study = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage_url)
    summary = write_outputs(study, prepared.out_dir)
    text = Path(summary["report"]).read_text()
    assert "Not in this report" in text and 'id="front"' in text
    assert "dse confirm" in text  # nothing is confirmed yet: the next command says so


def test_the_test_front_comes_first_across_the_page_and_each_figure_says_what_it_shows(
        tmp_path):
    from dse.results.report import figures_section
    names = ["front_latency_s_energy_j", "hypervolume", "test_front"]
    for name in names:
        (tmp_path / f"{name}.png").write_bytes(PNG)
    text = figures_section({"plots": [str(tmp_path / f"{n}.png") for n in names]}, tmp_path)
    order = [text.index(f"alt=\"{name}\"") for name in ("test_front", "front_latency_s_energy_j",
                                                         "hypervolume")]
    assert order == sorted(order)
    assert text.count("<figure class=\"whole\">") == 1
    assert "on which every claim rests" in text and "how the front grew" in text
    assert "every trial in grey" in text


def test_the_equivalence_margin_kept_by_a_search_or_confirm_is_used_by_pareto(confirmed):
    import optuna

    from dse.results.outputs import keep_margin
    from dse.storage.storage import open_storage
    prepared, summary = confirmed
    assert summary.equivalence_margin_pp == 1.0  # the toy's identity records no limit
    study = optuna.load_study(study_name=prepared.study_name,
                              storage=open_storage(prepared.storage_url))
    keep_margin(study, 0.5)
    assert prepared.identity == study.user_attrs["dse_config"]  # not the identity
    kept = CliRunner().invoke(cli, ["pareto", str(prepared.out_dir), "--json"])
    assert kept.exit_code == 0, kept.output
    document = json.loads(kept.stdout)
    assert document["equivalence_margin_pp"] == 0.5
    assert all(item["equivalence_margin_pp"] == 0.5 for item in document["claims"])
    given = CliRunner().invoke(cli, ["pareto", str(prepared.out_dir), "--json",
                                     "--equivalence-margin", "2"])
    assert json.loads(given.stdout)["equivalence_margin_pp"] == 2.0
    assert study.user_attrs["dse:equivalence-margin"] == 0.5  # pareto only reads
