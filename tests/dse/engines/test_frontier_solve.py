"""The frontier engine's exact solve: per-layer cost tables that add up to the cost model,
and a front that no candidate of the space beats (brute force)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dse.engines.frontier import (
    cost_tables,
    dram_points,
    fixed_regime,
    solve,
    split_grid,
)
from dse.engines.testing import TOY_LAYERS, toy_problem
from dse.evaluate import candidate_cost
from dse.pareto import pareto_mask
from dse.problem import Limits, build_problem
from dse.space import at_point
from hw_models import LayerTable

ON_CHIP = [layer for layer in TOY_LAYERS if layer["name"] != "big"]


def problem_of(layers, **kwargs):
    return build_problem(network="toy", dataset=None, objectives="accuracy,latency,energy",
                         limits=Limits(max_accuracy_drop_pp=None),
                         table=LayerTable.from_records(layers), **kwargs)


@pytest.mark.parametrize("layers", [TOY_LAYERS, ON_CHIP], ids=["spilling", "on-chip"])
def test_the_tables_add_up_to_the_cost_model(layers):
    """At several DRAM points, random mappings' latency and energy are the sums of the
    per-layer tables (to rounding: the model sums compute and DRAM energy apart)."""
    problem = problem_of(layers)
    assert fixed_regime(problem)
    grid = split_grid(problem.space)
    rng = np.random.default_rng(0)
    points = dram_points(problem.space)
    for point in [points[0], points[len(points) // 2], points[-1]]:
        tables = cost_tables(problem, point, grid)
        for _ in range(20):
            choice = [int(rng.integers(len(g))) for g in grid]
            n_analog = [int(g[c]) for g, c in zip(grid, choice)]
            cost = candidate_cost(at_point(problem.space, n_analog, point), problem)
            latency = sum(t[c] for t, c in zip(tables.latency_s, choice))
            energy = sum(t[c] for t, c in zip(tables.energy_j, choice))
            assert latency == pytest.approx(float(cost.total_latency_s()), rel=1e-12)
            assert energy == pytest.approx(float(cost.total_energy_j()), rel=1e-12)


def test_a_split_that_moves_tensors_is_refused():
    """A layer whose weights alone overflow L2 when digital but fit as ternary codes: the
    split decides residency, and the tables would not add up."""
    soc_l2 = problem_of(ON_CHIP).soc.memory
    big = dict(name="huge", kind="linear", cin=1024, cout=1024, kx=1, ky=1, ox=1, oy=1)
    problem = problem_of(ON_CHIP[:-1] + [big])
    digital_bytes = 1024 * 1024
    if not 1024 * 1024 / 4 < soc_l2.l2_bytes < digital_bytes:
        pytest.skip("this SoC preset's L2 does not sit between the two")
    assert not fixed_regime(problem)
    with pytest.raises(ValueError, match="move"):
        solve(problem, [np.zeros(len(g)) for g in split_grid(problem.space)], lambda p: 0.0)


def test_partitions_are_not_solved_yet():
    problem = problem_of(TOY_LAYERS, partitions=2)
    with pytest.raises(ValueError, match="whole-device"):
        solve(problem, [np.zeros(len(g)) for g in split_grid(problem.space)], lambda p: 0.0)


@pytest.mark.parametrize("seed", range(3))
def test_no_candidate_of_the_space_beats_the_solved_front(seed):
    """Brute force over every split and every DRAM point of the toy space: the model's
    (drop, latency, energy) of each, summed layer by layer as the solve sums them; its
    front is the solve's, point for point."""
    problem = problem_of(TOY_LAYERS)
    grid = split_grid(problem.space)
    rng = np.random.default_rng(seed)
    split_drop = [np.sort(rng.uniform(0, 2, len(g))) * (len(g) > 1) for g in grid]
    points = dram_points(problem.space)
    dram_drop = {p: float(rng.uniform(0, 3)) for p in points}
    solved = solve(problem, split_drop, dram_drop.__getitem__)
    rows, labels = [], []
    for point in points:
        tables = cost_tables(problem, point, grid)
        for choice in itertools.product(*(range(len(g)) for g in grid)):
            total = np.zeros(3)
            for layer, c in enumerate(choice):
                total = total + [split_drop[layer][c], tables.latency_s[layer][c],
                                 tables.energy_j[layer][c]]
            rows.append(total + [dram_drop[point], 0.0, 0.0])
            labels.append(point)
    rows = np.array(rows)
    expected = np.unique(rows[pareto_mask(rows, ["minimize"] * 3)], axis=0)
    found = np.column_stack([solved.drop_pp, solved.latency_s, solved.energy_j])
    assert np.array_equal(np.unique(found, axis=0), expected)
    assert len(rows) == len(points) * np.prod([len(g) for g in grid])


def test_one_candidate_per_split_and_objectives_at_the_lowest_ber():
    """On-chip toy: no tensor in DRAM, so every DRAM point of one VDD costs the same and is
    predicted the same; the front keeps each split once, at its lowest-BER point."""
    problem = problem_of(ON_CHIP)
    grid = split_grid(problem.space)
    drops = [np.linspace(0, 1, len(g)) for g in grid]
    points = dram_points(problem.space)
    bers = {p: float(i) for i, p in enumerate(reversed(points))}  # the last point lowest
    solved = solve(problem, drops, lambda point: 0.0, bers)
    table = np.column_stack([solved.drop_pp, solved.latency_s, solved.energy_j,
                             solved.n_analog])
    assert len(np.unique(table, axis=0)) == len(table)
    every = solve(problem, drops, lambda point: 0.0)  # without BERs: the grid's order
    assert np.array_equal(np.unique(table[:, :3], axis=0),
                          np.unique(np.column_stack([every.drop_pp, every.latency_s,
                                                     every.energy_j]), axis=0))
    keys = {p: cost_tables(problem, p, grid).key() for p in points}
    for point in solved.points:  # no point of equal tables has a lower BER
        assert bers[point] == min(bers[p] for p in points if keys[p] == keys[point])
    assert len(solved.points) < len(points)


def frontier_run(tmp_path, trials, estimator=None, verify=3, retrain=0, retrainer=None):
    from dse.engines.frontier import FrontierEngine
    from dse.engines.testing import EngineContract, StubRetrainer

    class Contract(EngineContract):
        def make_engine(self, problem, study):
            return FrontierEngine(verify=verify, retrain=retrain,
                                  retrainer=retrainer or StubRetrainer())
    return Contract()._run(tmp_path, trials=trials, estimator=estimator)


def test_the_characterisation_covers_every_layer_before_its_second_fraction():
    """A budget that stops the characterisation part way still has every layer's term at
    its largest count (and the DRAM's), not some layers at both counts and others at
    none."""
    from dse.engines.frontier import characterisation, point_bers

    problem = toy_problem()
    probes = characterisation(problem, (0.5, 1.0), point_bers(problem))
    roles = [p.info["role"] for p in probes]
    layers = [p.info["layer"] for p in probes if p.info["role"] == "layer"]
    first = layers[:len(set(layers))]
    assert len(set(first)) == len(first)  # each layer once before any twice
    assert roles.index("dram") == len(first) and "layer" in roles[roles.index("dram"):]
    for layer in set(layers):
        counts = [p.info["n_analog"] for p in probes if p.info.get("layer") == layer]
        assert counts == sorted(counts, reverse=True)


@pytest.mark.slow
def test_the_engine_characterises_then_verifies_its_predicted_front(tmp_path):
    """On the toy study: each searchable layer probed alone, the DRAM at distinct BERs
    (the toy's big layer spills to DRAM), then rounds of verified points, each with the
    drop the model predicted; the stub's drop is nearly additive, so the prediction holds."""
    from dse.engines.frontier import FRONTIER_ATTR
    from dse.results.ledger import METRICS_ATTR

    study, _ = frontier_run(tmp_path, trials=40)
    records = [t.user_attrs[FRONTIER_ATTR] for t in study.trials
               if FRONTIER_ATTR in t.user_attrs and t.state.name == "COMPLETE"]
    roles = [r["role"] for r in records]
    assert roles.count("layer") == 6  # first, mid (3 options: 1 count), big (2), fc (1)...
    assert "dram" in roles and "verify" in roles
    assert roles.index("verify") > max(i for i, r in enumerate(roles) if r != "verify")
    verified = [t for t in study.trials if t.user_attrs.get(FRONTIER_ATTR, {}).get("role")
                == "verify" and t.state.name == "COMPLETE"]
    for trial in verified:
        predicted = trial.user_attrs[FRONTIER_ATTR]["predicted_drop_pp"]
        measured = -trial.user_attrs[METRICS_ATTR]["accuracy_change_pp"]
        assert abs(predicted - measured) < 1.5, (predicted, measured)
    from dse.results.tables import trials_frame
    frame = trials_frame(study)  # trials.csv: the engine's own columns
    verify_rows = frame[frame["frontier_role"] == "verify"]
    assert len(verify_rows) == len(verified) and verify_rows["predicted_drop_pp"].notna().all()
    low, high = verify_rows["predicted_drop_low_pp"], verify_rows["predicted_drop_high_pp"]
    assert (low <= verify_rows["predicted_drop_pp"]).all()
    assert (verify_rows["predicted_drop_pp"] <= high).all()
    # no accuracy limit: the whole front is verified, with no margin to record
    assert not any("margin_pp" in t.user_attrs[FRONTIER_ATTR] for t in verified)
    methods = [t.user_attrs[FRONTIER_ATTR]["interval"] for t in verified]
    assert methods[0] == "terms"  # too few verified points yet for the conformal one
    assert all(m == "terms" or m.startswith("conformal") for m in methods)


@pytest.mark.slow
def test_a_resumed_engine_probes_no_point_again(tmp_path):
    """A rerun with a larger budget measures only new trials, and none of the engine's
    trials holds the parameters of another trial (on the toy two baselines coincide)."""
    from dse.engines.testing import StubEstimator

    frontier_run(tmp_path, trials=20)
    again = StubEstimator()
    study, _ = frontier_run(tmp_path, trials=26, estimator=again)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 26 and again.calls == 6
    own = [tuple(sorted(t.params.items())) for t in complete if "fixed_params"
           not in t.system_attrs]
    queued = {tuple(sorted(t.params.items())) for t in complete if "fixed_params"
              in t.system_attrs}
    assert len(set(own)) == len(own) and not set(own) & queued


@pytest.mark.slow
def test_what_the_engine_cannot_solve_is_one_line_before_training(tmp_path):
    from click.testing import CliRunner

    from cli import cli
    result = CliRunner().invoke(cli, ["search", "--engine", "frontier", "--partitions", "2",
                                      "--results-dir", str(tmp_path), "--trials", "9"])
    assert result.exit_code == 2
    assert "whole-device" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "checkpoints").exists()  # refused before any training
    result = CliRunner().invoke(cli, ["search", "--engine", "frontier",
                                      "--frontier-fractions", "0,1",
                                      "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "(0, 1]" in result.output
    result = CliRunner().invoke(cli, ["search", "--engine", "frontier", "--objectives",
                                      "accuracy,dram_energy", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not for dram_energy" in result.output


@pytest.mark.slow
@pytest.mark.plots
def test_the_study_shows_how_well_the_model_ranked_its_points(toy_table, tmp_path):
    """A frontier search's outputs: the predicted-against-measured figure, and the
    summary's rank correlation beside its noise ceiling (printed and in the report)."""
    import dataclasses
    import json

    from toy import toy_prepared

    from dse.commands.reports import StudySummary
    from dse.commands.search import run_search
    from dse.commands.text import model_agreement_line
    from dse.engines.frontier import FrontierSettings

    prepared = toy_prepared(toy_table, tmp_path, trials=40, confirm=False)
    prepared = dataclasses.replace(prepared, config=prepared.config.replace(
        engine="frontier", engine_settings=FrontierSettings(verify=3, retrain=0)))
    run_search(prepared)
    out = prepared.out_dir
    summary = json.loads((out / "summary.json").read_text())
    agreement = summary["model_agreement"]
    assert agreement["points"] >= 3 and -1 <= agreement["spearman"] <= 1
    assert 0 < agreement["noise_ceiling"] <= 1
    assert (out / "model_drop.png").is_file() and (out / "model_drop.svg").is_file()
    assert "rank correlation" in model_agreement_line(agreement)
    assert "drop model" in (out / "report.html").read_text()
    assert StudySummary(**summary).model_agreement == agreement  # dse pareto reads it


def test_a_batch_of_units_claims_no_more_than_the_budget_has_room_for(tmp_path):
    """The characterisation is claimed a batch at a time: never past the budget (a claim
    beyond it would be pruned as surplus)."""
    from dse.engines.testing import BatchedStub

    study, stub = frontier_run(tmp_path, trials=13, estimator=BatchedStub(8))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 13 and "PRUNED" not in states
    assert max(stub.groups) > 1  # measured together
