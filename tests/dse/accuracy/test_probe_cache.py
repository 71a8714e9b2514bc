"""The probe cache's keys and files stay what earlier versions wrote, so that caches on disk
stay valid: the digests and the file below were computed by dse 0.3.0."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dse.accuracy import ProbeCandidate, ProbeResult, error_free
from hw_models.error_models import ErrorModelParams

CANDIDATE = ProbeCandidate((0, 4, 2), (1e-4, 0.0, 1 / 3), (2.5e-7, 1e-3, 0.0))
NAMED = dataclasses.replace(CANDIDATE, analog_channels=(None, (0, 1, 2, 3), (5, 7)))
OTHER_SETTINGS = dict(steps=200, batch_size=32, lr=1e-3, ramp_fraction=0.25, finetune_seeds=3,
                      error_seeds=5, error_model=2, split="test", seed=7)
DOUBLED = ErrorModelParams(weak_bitline_fraction=0.02, weak_wordline_fraction=0.02,
                           one_to_zero_share=0.5)
# (candidate, settings, error parameters, row bytes) -> the key dse 0.3.0 computed
PINNED = [
    (error_free(3), {}, ErrorModelParams(), 2048, "ce821bc6e5e1a8538174938c"),
    (CANDIDATE, {}, ErrorModelParams(), 2048, "1158e5a5bb98db61c400a0a8"),
    (NAMED, {}, ErrorModelParams(), 2048, "eebb66531908b7cfe07e52fa"),
    (NAMED, OTHER_SETTINGS, DOUBLED, 8192, "370afc5a017b679012720c94"),
]
CORRECT = [[[1, 1, 0, 0, 1, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0, 1]],
           [[1, 0, 0, 0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 1, 0, 1, 1]]]
PINNED_FILE = (
    '{"accuracy_mean": 0.6111111111111112, "accuracy_std": 0.12422599874998833, '
    '"accuracy_per_seed": [0.6666666666666666, 0.4444444444444444, 0.5555555555555556, '
    '0.7777777777777778], "seconds": 1.25, "correct": {"shape": [2, 2, 9], "bits": "y/Bj3rA="}}')


def key_of(candidate: ProbeCandidate, settings: dict, error_params: ErrorModelParams,
           row_bytes: int, *, interval_level: float = 0.95) -> str:
    from networks.finetune import ProbeConfig, ProbeSetup, cache_key
    from networks.train import Checkpoint

    checkpoint = Checkpoint("resnet8", "synthetic", (3, 16, 16), 4, ("a", "b", "c"), {}, {},
                            0.5, 0.5, digest="0123456789abcdef")
    config = ProbeConfig(**settings, interval_level=interval_level)
    setup = ProbeSetup(checkpoint=checkpoint, bundle=None, config=config,  # type: ignore
                       error_params=error_params, row_bytes=row_bytes)
    return cache_key(candidate, setup)


@pytest.mark.parametrize("candidate, settings, error_params, row_bytes, key", PINNED)
def test_the_cache_key_is_the_one_earlier_versions_computed(candidate, settings,
                                                              error_params, row_bytes, key):
    assert key_of(candidate, settings, error_params, row_bytes) == key
    # intervals are recomputed from the bits: their level is no part of the key
    assert key_of(candidate, settings, error_params, row_bytes, interval_level=0.9) == key


def test_a_cache_file_holds_what_earlier_versions_wrote():
    from networks.finetune import cache_document

    document = cache_document(ProbeResult.from_correct(CORRECT, seconds=1.25))
    assert json.dumps(document) == PINNED_FILE
