"""A stand-in accuracy estimator for cluster tests: deterministic and deliberately slow."""
from __future__ import annotations

import os
import time

from dse.accuracy import ProbeCandidate, ProbeResult


def estimate(candidate: ProbeCandidate) -> ProbeResult:
    time.sleep(float(os.environ.get("DSE_TEST_ESTIMATOR_S", "0.5")))
    accuracy = 0.95 - 0.0005 * sum(candidate.n_analog) - 100 * max(candidate.weight_ber)
    return ProbeResult(accuracy, 0.0, (accuracy,), 0.0, False)
