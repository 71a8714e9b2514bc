"""The frontier engine's retraining stage: which points of the predicted front it retrains,
that their trials are measured from the retrained weights, and that the budget, a rerun
and the settings behave."""
from __future__ import annotations

import numpy as np
import pytest
from test_frontier_solve import frontier_run

from dse.engines.frontier import (
    FRONTIER_ATTR,
    RETRAIN_REACH_PP,
    FrontierSettings,
    Solved,
    retrain_picks,
)
from dse.engines.testing import StubEstimator, StubRetrainer, toy_problem
from dse.results.ledger import DELIVERED_WEIGHTS_ATTR, METRICS_ATTR
from hw_models.errors import ConfigError


def solved_of(drops_pp, latencies_s, energies_j=None):
    n = len(drops_pp)
    return Solved([None] * n, np.arange(n * 5).reshape(n, 5) % 3,
                  np.asarray(drops_pp, float), np.asarray(latencies_s, float),
                  np.ones(n) if energies_j is None else np.asarray(energies_j, float))


def test_the_picks_lie_beyond_the_limit_within_reach_cheapest_first():
    problem = toy_problem()
    limit = 1.0
    #             within   ------- in reach, by latency: 5 4 3 2 1 ------  beyond reach
    drops = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 1.0 + RETRAIN_REACH_PP, 9.0]
    latencies = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 1.0]
    solved = solved_of(drops, latencies)
    picks = retrain_picks(problem, solved, 2, limit)
    assert [drop for _, drop in picks] == [1.0 + RETRAIN_REACH_PP, 3.0]  # cheapest, middle
    assert [drop for _, drop in retrain_picks(problem, solved, 1, limit)] == [6.0]
    assert len(retrain_picks(problem, solved, 10, limit)) == 5  # all there are
    assert retrain_picks(problem, solved, 0, limit) == []
    assert retrain_picks(problem, solved_of([0.1, 0.2], [2.0, 1.0]), 2, limit) == []
    (candidate, _), _ = picks
    assert candidate.n_analog == tuple(solved.n_analog[6])


def test_the_cheapest_counts_energy_too():
    """Where latency barely moves, the point of least energy comes first."""
    problem = toy_problem()
    solved = solved_of([2.0, 3.0, 4.0], [1.00, 1.01, 1.00], [5.0, 1.0, 3.0])
    assert [d for _, d in retrain_picks(problem, solved, 1, 1.0)] == [3.0]
    assert [d for _, d in retrain_picks(problem, solved, 2, 1.0)] == [3.0, 4.0]


def test_a_measured_drop_stands_in_for_the_prediction():
    """A probed point the corrected model predicts within the limit but the probe found
    beyond it is a pick; one predicted beyond but measured within is not."""
    from dse.engines.frontier import params_key
    from dse.space import at_point

    problem = toy_problem()
    solved = solved_of([0.5, 2.0, 0.8], [3.0, 2.0, 1.0])
    keys = [params_key(at_point(problem.space, n, None), problem.space)
            for n in solved.n_analog]
    assert [d for _, d in retrain_picks(problem, solved, 3, 1.0)] == [2.0]
    measured = {keys[2]: 3.3, keys[1]: 0.4}
    assert [d for _, d in retrain_picks(problem, solved, 3, 1.0, measured)] == [3.3]


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
    for trial, (request, epochs) in zip(retrained, retrainer.calls):
        info = trial.user_attrs[FRONTIER_ATTR]
        assert epochs == 5 and info["retrain_epochs"] == 5 and info["samples"] == 500
        assert 1.0 < info["drop_before_pp"] <= 1.0 + RETRAIN_REACH_PP
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
