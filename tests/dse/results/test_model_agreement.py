"""An engine's drop model against the probe: rank correlation and its noise ceiling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dse.results.tables import model_agreement


def frame(predicted, measured, half_width):
    measured = np.asarray(measured, dtype=float)
    return pd.DataFrame({"state": "COMPLETE", "predicted_drop_pp": predicted,
                         "accuracy_change_pp": -measured,
                         "accuracy_change_ci_low_pp": -measured - half_width,
                         "accuracy_change_ci_high_pp": -measured + half_width})


def test_a_model_that_ranks_every_point_right():
    found = model_agreement(frame([0.1, 0.5, 1.0, 2.0], [0.0, 0.4, 1.5, 2.2], 0.0))
    assert found["spearman"] == pytest.approx(1.0) and found["points"] == 4
    assert found["noise_ceiling"] == pytest.approx(1.0)  # exact measurements
    assert found["mean_error_pp"] == pytest.approx((0.1 + 0.1 - 0.5 - 0.2) / 4)


def test_the_noise_ceiling_falls_with_the_measurements_noise():
    """Drops 0.1 pp apart measured with +-2 pp intervals: no model can rank them well."""
    measured = np.linspace(0, 1, 8)
    tight = model_agreement(frame(measured, measured, 0.01))
    loose = model_agreement(frame(measured, measured, 2.0))
    assert tight["noise_ceiling"] > 0.95 > 0.6 > loose["noise_ceiling"]


def test_no_prediction_no_agreement():
    assert model_agreement(pd.DataFrame({"state": ["COMPLETE"], "accuracy": [0.9]})) is None
    few = model_agreement(frame([0.1, 0.2], [0.3, 0.1], 0.5))
    assert few["points"] == 2 and few["spearman"] is None


def test_how_many_prediction_intervals_held():
    table = frame([0.5, 1.0, 2.0], [0.4, 1.8, 2.1], 0.1)
    table["predicted_drop_low_pp"] = [0.0, 0.5, None]  # the last has no interval
    table["predicted_drop_high_pp"] = [1.0, 1.5, None]
    found = model_agreement(table)
    assert found["interval_points"] == 2 and found["interval_held"] == 1
    from dse.commands.text import model_agreement_line
    assert "held 1 of 2" in model_agreement_line(found)
    assert "interval_points" not in model_agreement(frame([0.5, 1.0], [0.4, 1.8], 0.1))
