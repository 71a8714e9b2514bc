"""The frontier engine's retraining stage: which points of the predicted front it retrains,
that their trials are measured from the retrained weights, and that the budget, a rerun
and the settings behave."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_frontier_solve import frontier_run

from dse.engines.frontier import (
    FRONTIER_ATTR,
    RETRAIN_REACH_PP,
    VERIFY_MARGIN_PP,
    FrontierSettings,
    Probed,
    Retrained,
    Solved,
    accuracy_key,
    next_retrain,
    params_key,
    retrain_reach_pp,
    round_picks,
    split_grid,
    verify_margins_pp,
)
from dse.engines.testing import StubEstimator, StubRetrainer, toy_problem
from dse.results.ledger import DELIVERED_WEIGHTS_ATTR, METRICS_ATTR
from dse.space import at_point
from hw_models.errors import ConfigError


def solved_of(drops_pp, latencies_s, energies_j=None):
    """A front of the toy problem, its points' splits all different."""
    n = len(drops_pp)
    splits = list(itertools.islice(itertools.product(*split_grid(toy_problem().space)), n))
    return Solved([None] * n, np.array(splits),
                  np.asarray(drops_pp, float), np.asarray(latencies_s, float),
                  np.ones(n) if energies_j is None else np.asarray(energies_j, float))


def test_the_first_pick_lies_beyond_the_limit_within_reach_and_is_the_cheapest():
    problem = toy_problem()
    limit = 1.0
    #             within   ------- in reach, by latency: 5 4 3 2 1 ------  beyond reach
    drops = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 1.0 + RETRAIN_REACH_PP, 9.0]
    latencies = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 1.0]
    solved = solved_of(drops, latencies)
    candidate, drop = next_retrain(problem, solved, limit)
    assert drop == 1.0 + RETRAIN_REACH_PP
    assert candidate.n_analog == tuple(solved.n_analog[6])
    assert next_retrain(problem, solved_of([0.1, 0.2], [2.0, 1.0]), limit) is None
    skip = {params_key(candidate, problem.space)}
    assert next_retrain(problem, solved, limit, skip=skip)[1] == 4.0


def test_the_cheapest_counts_energy_too():
    """Where latency barely moves, the point of least energy comes first."""
    problem = toy_problem()
    solved = solved_of([2.0, 3.0, 4.0], [1.00, 1.01, 1.00], [5.0, 1.0, 3.0])
    assert next_retrain(problem, solved, 1.0)[1] == 3.0


def test_a_measured_drop_stands_in_for_the_prediction():
    """A probed point the corrected model predicts within the limit but the probe found
    beyond it is a pick; one predicted beyond but measured within is not."""
    problem = toy_problem()
    solved = solved_of([0.5, 2.0, 0.8], [3.0, 2.0, 1.0])
    front = [at_point(problem.space, n, None) for n in solved.n_analog]
    assert next_retrain(problem, solved, 1.0)[1] == 2.0
    beyond, within = Probed(front[2], 3.3, 1.0, 1.0), Probed(front[1], 0.4, 2.0, 1.0)
    assert next_retrain(problem, solved, 1.0, probed=[beyond, within])[1] == 3.3
    assert next_retrain(problem, solved, 1.0, probed=[within]) is None


def test_a_probed_point_off_the_predicted_front_is_a_pick_by_its_measurement():
    """A probed split off the predicted front (the model can overstate a split enough to leave it
    off), measured within reach and cheaper than the front's picks, comes first. Off the
    front and beyond reach, or without a cost, it is not a pick; one that is also a front
    point counts once, by its measurement."""
    problem = toy_problem()
    solved = solved_of([0.5, 2.0, 3.0], [3.0, 2.0, 1.5])
    grid = split_grid(problem.space)
    off = at_point(problem.space, [int(options[-1]) for options in grid], None)
    front = [at_point(problem.space, n, None) for n in solved.n_analog]
    assert params_key(off, problem.space) not in {params_key(c, problem.space) for c in front}
    cheap = Probed(off, 3.4, 0.5, 0.5)
    candidate, drop = next_retrain(problem, solved, 1.0, probed=[cheap])
    assert (candidate, drop) == (off, 3.4)
    assert next_retrain(problem, solved, 1.0, probed=[Probed(off, 9.0, 0.5, 0.5)])[1] == 3.0
    assert next_retrain(problem, solved, 1.0,
                        probed=[Probed(off, 3.4, math.nan, 0.5)])[1] == 3.0
    landed = Retrained(params_key(front[2], problem.space), 3.0, 0.5, 1.5, 1.0)
    assert next_retrain(problem, solved, 1.0, retrained=[landed], probed=[cheap])[0] == off
    # a front point probed: its measurement stands in, and it is not added twice
    again = next_retrain(problem, solved, 1.0, probed=[Probed(front[1], 0.4, 2.0, 1.0)])
    assert again[1] == 3.0
    skip = {params_key(off, problem.space)}
    assert next_retrain(problem, solved, 1.0, skip=skip, probed=[cheap])[1] == 3.0


def test_a_split_measured_at_one_dram_point_stands_in_at_every_point_of_its_ber():
    """The solve keeps a split at its cheapest DRAM point; the baselines are probed at
    nominal DRAM. Where the BER is the same (0: nothing in DRAM there), the measurement
    counts; at another BER it does not."""
    problem = toy_problem()
    bers = {(1.1, 18.125): 0.0, (1.0, 18.125): 0.0, (0.9, 13.0): 1e-3}
    split = [int(options[-1]) for options in split_grid(problem.space)]
    solved = Solved([(1.0, 18.125), (0.9, 13.0)], np.array([split, split]),
                    np.array([0.5, 0.6]), np.array([1.0, 1.0]), np.array([2.0, 1.0]))
    nominal = Probed(at_point(problem.space, split, (1.1, 18.125)), 3.4, 1.0, 3.0)
    candidate, drop = next_retrain(problem, solved, 1.0, probed=[nominal], bers=bers)
    assert (drop, candidate.vdd_v[0]) == (3.4, 1.0)  # the front's cheaper point, measured
    assert next_retrain(problem, solved, 1.0, probed=[nominal]) == (nominal.candidate, 3.4)
    # retrained (or tried) at the cheaper point, it is not picked again at nominal
    cheap = Retrained("other", 3.4, 0.5, 1.0, 2.0, candidate)
    assert next_retrain(problem, solved, 1.0, retrained=[cheap], probed=[nominal],
                        bers=bers) is None
    assert next_retrain(problem, solved, 1.0, probed=[nominal], bers=bers,
                        skip_alike={accuracy_key(candidate, bers)}) is None
    # at another BER (1e-3) the nominal measurement does not stand in: the front's point
    # keeps its prediction (0.6, within the limit), and the nominal point is the pick
    assert next_retrain(problem, Solved([(0.9, 13.0)], np.array([split]), np.array([0.6]),
                                        np.array([1.0]), np.array([1.0])),
                        1.0, probed=[nominal], bers=bers)[0] == nominal.candidate


def retrained(drop_before, drop_after, latency=1.0, energy=1.0, key="k"):
    return Retrained(key, drop_before, drop_after, latency, energy)


def test_the_reach_doubles_while_retraining_lands_and_bisects_once_it_does_not():
    limit = 1.0
    assert retrain_reach_pp([], limit) == RETRAIN_REACH_PP
    # a split 4 pp beyond the limit landed within it: twice that (not below the start)
    assert retrain_reach_pp([retrained(5.0, 0.5)], limit) == 8.0
    assert retrain_reach_pp([retrained(2.0, 0.5)], limit) == RETRAIN_REACH_PP
    # one 6 pp beyond did not land: halfway to the limit; with one 2 pp beyond that did,
    # halfway between
    assert retrain_reach_pp([retrained(7.0, 2.5)], limit) == 3.0
    assert retrain_reach_pp([retrained(7.0, 2.5), retrained(3.0, 0.9)], limit) == 4.0
    assert retrain_reach_pp([retrained(7.0, math.nan)], limit) == 3.0  # not measured


def test_after_a_split_lands_the_next_is_cheaper_and_further_and_after_one_misses_nearer():
    """The bisection on a front whose drop grows as its cost falls: landing at the reach's
    end sends the next pick to a cheaper point beyond the first reach; missing sends it
    to a dearer point nearer the limit."""
    problem = toy_problem()
    limit = 1.0
    drops = [0.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 14.0]
    latencies = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    solved = solved_of(drops, latencies)
    keys = [params_key(at_point(problem.space, n, None), problem.space)
            for n in solved.n_analog]
    first = next_retrain(problem, solved, limit)
    assert first[1] == 6.0
    landed = retrained(6.0, 0.8, latency=4.0, key=keys[4])
    assert next_retrain(problem, solved, limit, retrained=[landed])[1] == 10.0
    missed = retrained(6.0, 2.0, latency=4.0, key=keys[4])
    assert next_retrain(problem, solved, limit, retrained=[missed])[1] == 3.0
    # landed, and nothing cheaper is in reach: none (a dearer split than one that landed
    # adds next to nothing: on CIFAR-10 seed 1, a 64-analog split after a 288-analog one)
    solved = solved_of([2.0, 3.0, 6.0, 30.0], [4.0, 3.0, 2.0, 1.0])
    keys = [params_key(at_point(problem.space, n, None), problem.space)
            for n in solved.n_analog]
    landed = retrained(6.0, 0.8, latency=2.0, key=keys[2])
    assert next_retrain(problem, solved, limit, retrained=[landed]) is None
    assert next_retrain(problem, solved, limit, retrained=[
        retrained(6.0, 2.5, latency=2.0, key=keys[2])])[1] == 3.0  # missed: nearer, dearer


def test_a_round_widens_its_margin_only_when_nothing_within_it_is_left():
    """Points within the limit plus 1 pp first; once each is probed, the margin doubles up
    to the retraining's first reach; beyond that nothing is verified."""
    problem = toy_problem()
    assert verify_margins_pp() == [VERIFY_MARGIN_PP, 2.0, 4.0, RETRAIN_REACH_PP]
    drops = [0.5, 1.8, 2.5, 4.5, 5.8, 7.0]
    solved = solved_of(drops, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    keys = [params_key(at_point(problem.space, n, None), problem.space)
            for n in solved.n_analog]
    seen = []
    probed: set[str] = set()
    while True:
        picks, margin = round_picks(problem, solved, 1, probed, 1.0)
        if not picks:
            break
        seen.append((picks[0][1], margin))
        probed.add(params_key(picks[0][0], problem.space))
    assert seen == [(1.8, 1.0), (0.5, 1.0), (2.5, 2.0), (4.5, 4.0), (5.8, RETRAIN_REACH_PP)]
    assert keys[5] not in probed
    # no accuracy limit: the whole front, at once
    picks, margin = round_picks(problem, solved, 10, set(), None)
    assert len(picks) == 6 and margin == math.inf


@pytest.mark.slow
def test_the_engine_retrains_its_picks_and_measures_them_from_the_retrained_weights(
        tmp_path):
    """On the toy (no accuracy limit: EDEN's 1 pp stands in), after the rounds: two
    trials, each a point of the predicted front beyond 1 pp, retrained once for its split
    and measured by the probe from the retrained weights (the stub's gain), which the
    trial names; the budget holds."""
    retrainer = StubRetrainer(gain=10.0, samples_per_epoch=100)
    estimator = StubEstimator()
    study, _ = frontier_run(tmp_path, trials=60, estimator=estimator, retrain=2,
                            retrainer=retrainer)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) <= 60
    retrained = [t for t in complete
                 if t.user_attrs.get(FRONTIER_ATTR, {}).get("role") == "retrain"]
    assert len(retrained) == 2 and len(retrainer.calls) == 2
    reach = RETRAIN_REACH_PP  # the first's; the second's, as the first landed
    for trial, (request, epochs) in zip(retrained, retrainer.calls):
        info = trial.user_attrs[FRONTIER_ATTR]
        assert epochs == 5 and info["retrain_epochs"] == 5 and info["samples"] == 500
        assert 1.0 < info["drop_before_pp"] <= 1.0 + reach
        # the stub's 10 pp gain lands it within the limit: the reach doubles
        reach = retrain_reach_pp([Retrained("", info["drop_before_pp"], 0.0, 1, 1)], 1.0)
        assert trial.user_attrs[DELIVERED_WEIGHTS_ATTR]["tensors_sha256"]
        n_analog = tuple(int(trial.params[k]) for k in sorted(trial.params)
                         if k.startswith("n_analog"))
        assert sum(request.n_analog) == sum(n_analog) > 0
        assert METRICS_ATTR in trial.user_attrs
    gains = [gain for _, _, gain, _ in estimator.measured]
    assert gains.count(10.0) == 2  # each retrained trial's probe, from its weights
    # after every verified round (the rounds left room for them)
    roles = [t.user_attrs.get(FRONTIER_ATTR, {}).get("role") for t in complete]
    assert roles.index("retrain") > max(i for i, r in enumerate(roles) if r == "verify")
    from dse.results.tables import model_agreement, trials_frame
    frame = trials_frame(study)
    assert (frame["frontier_role"] == "retrain").sum() == 2
    # the drop model is judged on its verified points only, not the retrained ones
    agreement = model_agreement(frame)
    assert agreement is not None
    assert agreement["points"] == (frame["frontier_role"] == "verify").sum()

    again = StubRetrainer(gain=10.0)
    study, _ = frontier_run(tmp_path, trials=60, retrain=2, retrainer=again)
    assert again.calls == []  # a rerun retrains nothing again


@pytest.mark.slow
def test_a_budget_the_rounds_exhaust_still_retrains_and_a_small_one_is_used_whole(tmp_path):
    retrainer = StubRetrainer()
    study, _ = frontier_run(tmp_path, trials=20, retrain=2, retrainer=retrainer)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    roles = [t.user_attrs.get(FRONTIER_ATTR, {}).get("role") for t in complete]
    assert len(complete) == 20 and roles.count("retrain") == 2
    assert roles[-2:] == ["retrain", "retrain"]


def test_bad_retrain_settings_are_one_line():
    with pytest.raises(ConfigError, match=r"--frontier-retrain must be an integer in \[0, "):
        FrontierSettings(retrain=-1)
    with pytest.raises(ConfigError, match="--frontier-retrain-epochs must be an integer"):
        FrontierSettings(retrain_epochs=0)
    assert FrontierSettings(retrain=0).retrain == 0


@pytest.mark.slow
def test_two_workers_retrain_each_split_once_and_no_more_than_asked(tmp_path, monkeypatch):
    """Worker B runs while worker A retrains its first split: B waits for that split
    rather than picking another by its own view, then both go on from the same study;
    two splits retrained in all, each once, by one worker."""
    from dse.engines.frontier import FrontierEngine
    from dse.engines.testing import TwoWorkers, Worker
    from dse.engines.units import WAITING_STATUS
    from dse.results.ledger import UNIT_ATTR

    monkeypatch.setattr("dse.engines.units.POLL_S", 0.01)
    workers = TwoWorkers(f"journal:{tmp_path / 'study.log'}", lambda p, s: None, trials=60)

    class PausingRetrainer(StubRetrainer):
        def train(self, candidate, epochs, progress):
            if not self.calls:
                workers.pause()
            return super().train(candidate, epochs, progress)

    a, b = PausingRetrainer(), StubRetrainer()
    worker_b = Worker(engine=FrontierEngine(verify=3, retrain=2, retrainer=b))
    study = workers.run(Worker(engine=FrontierEngine(verify=3, retrain=2, retrainer=a)),
                        worker_b)
    assert WAITING_STATUS in worker_b.statuses  # for A's split
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    retrained = [t for t in complete
                 if t.user_attrs.get(FRONTIER_ATTR, {}).get("role") == "retrain"]
    assert len(retrained) == 2 and len(a.calls) + len(b.calls) == 2
    units = [t.system_attrs[UNIT_ATTR] for t in complete if UNIT_ATTR in t.system_attrs]
    assert len(units) == len(set(units))
    assert len(complete) <= 60
