"""The probe cache (no torch): keys and files stay what earlier versions wrote, so that caches
on disk stay valid (the digests and the file below were computed by dse 0.3.0); entries
round-trip, and damaged ones count as absent."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from dse.accuracy import ProbeCandidate, ProbeResult, error_free, probe_cache, stats
from dse.accuracy.defaults import ProbeConfig
from hw_models import ConfigError
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
    return probe_cache.cache_key(candidate,
                                 ProbeConfig(**settings, interval_level=interval_level),
                                 error_params=error_params, row_bytes=row_bytes,
                                 checkpoint_digest="0123456789abcdef", version="0.3.0")


@pytest.mark.parametrize("candidate, settings, error_params, row_bytes, key", PINNED)
def test_the_cache_key_is_the_one_earlier_versions_computed(candidate, settings,
                                                              error_params, row_bytes, key):
    assert key_of(candidate, settings, error_params, row_bytes) == key
    # intervals are recomputed from the bits: their level is no part of the key
    assert key_of(candidate, settings, error_params, row_bytes, interval_level=0.9) == key


def test_the_cache_key_changes_with_the_settings_the_version_and_the_checkpoint():
    given = {"error_params": ErrorModelParams(), "row_bytes": 2048,
             "checkpoint_digest": "0123456789abcdef", "version": "0.3.0"}
    key = probe_cache.cache_key(CANDIDATE, ProbeConfig(), **given)
    assert key == key_of(CANDIDATE, {}, ErrorModelParams(), 2048)
    assert probe_cache.cache_key(CANDIDATE, ProbeConfig(seed=1), **given) != key
    for other in ({"version": "0.3.1"}, {"checkpoint_digest": "fedcba9876543210"},
                  {"row_bytes": 4096}):
        assert probe_cache.cache_key(CANDIDATE, ProbeConfig(), **{**given, **other}) != key


def test_data_other_than_a_built_in_dataset_s_enters_the_key():
    given = {"error_params": ErrorModelParams(), "row_bytes": 2048,
             "checkpoint_digest": "0123456789abcdef", "version": "0.3.0"}
    key = probe_cache.cache_key(CANDIDATE, ProbeConfig(), **given)
    assert probe_cache.cache_key(CANDIDATE, ProbeConfig(), **given, data_key=None) == key
    first = probe_cache.cache_key(CANDIDATE, ProbeConfig(), **given, data_key="a" * 64)
    second = probe_cache.cache_key(CANDIDATE, ProbeConfig(), **given, data_key="b" * 64)
    assert len({key, first, second}) == 3


def test_a_cache_file_holds_what_earlier_versions_wrote(tmp_path):
    result = ProbeResult.from_correct(CORRECT, seconds=1.25)
    assert json.dumps(probe_cache.cache_document(result)) == PINNED_FILE
    probe_cache.write_cache(tmp_path, KEY, result)
    assert (tmp_path / f"{KEY}.json").read_text() == PINNED_FILE
    assert [path.name for path in tmp_path.iterdir()] == [f"{KEY}.json"]  # no temporary left


# ---- entries round-trip; damaged ones count as absent ------------------------------------

KEY = "0123456789abcdef01234567"
TWO_SEEDS = [[[1, 1, 1, 0]], [[1, 1, 0, 1]]]  # 2 fine-tune seeds x 1 error seed, 4 images
SHAPE = (2, 1, 4)
GOOD = probe_cache.cache_document(ProbeResult.from_correct(TWO_SEEDS, seconds=1.5))


def write_entry(cache_dir: Path, document: object) -> Path:
    path = cache_dir / f"{KEY}.json"
    path.write_text(json.dumps(document))
    return path


def test_an_entry_reads_back_as_it_was_written(tmp_path):
    written = ProbeResult.from_correct(CORRECT, seconds=1.25)
    probe_cache.write_cache(tmp_path, KEY, written)
    read = probe_cache.read_cache(tmp_path, KEY, shape=(2, 2, 9))
    assert read is not None and read.cached and not written.cached
    assert np.array_equal(read.correct, written.correct) and read.seconds == written.seconds
    assert (read.accuracy_mean, read.accuracy_std, read.accuracy_per_seed, read.interval()) == (
        written.accuracy_mean, written.accuracy_std, written.accuracy_per_seed,
        written.interval())
    assert probe_cache.read_cache(tmp_path, KEY, shape=(2, 2, 8)) is None  # another split
    assert probe_cache.read_cache(None, KEY, shape=(2, 2, 9)) is None  # no folder: no cache


def test_an_entry_with_tampered_bits_counts_as_absent(tmp_path):
    probe_cache.write_cache(tmp_path, KEY, ProbeResult.from_correct(CORRECT, seconds=1.25))
    path = tmp_path / f"{KEY}.json"
    document = json.loads(path.read_text())
    flipped = stats.unpack(document["correct"])
    flipped[1, 1, 0] = not flipped[1, 1, 0]  # the stored accuracies no longer match
    path.write_text(json.dumps({**document, "correct": stats.pack(flipped)}))
    assert probe_cache.read_cache(tmp_path, KEY, shape=(2, 2, 9)) is None


def test_a_sound_cache_entry_is_read(tmp_path):
    write_entry(tmp_path, GOOD)
    read = probe_cache.read_cache(tmp_path, KEY, shape=SHAPE)
    assert np.array_equal(read.correct, np.array(TWO_SEEDS, dtype=bool))
    assert read.cached and read.seconds == 1.5 and read.accuracy_per_seed == (0.75, 0.75)
    assert read.accuracy_mean == 0.75 and read.ci_low <= 0.75 <= read.ci_high


@pytest.mark.parametrize("document", [
    {**GOOD, "accuracy_mean": "x"},
    {**GOOD, "accuracy_std": None},
    {**GOOD, "accuracy_mean": True},
    {**GOOD, "accuracy_per_seed": "0.75"},
    {**GOOD, "accuracy_per_seed": [0.7, "x"]},
    {**GOOD, "seconds": [1]},
    [0.75, 0.01],
    "0.75",
    7,
])
def test_a_cache_entry_with_wrong_types_counts_as_absent(document, tmp_path):
    path = write_entry(tmp_path, document)
    # measured again, not an error
    assert probe_cache.read_cache(tmp_path, KEY, shape=SHAPE) is None
    assert json.loads(path.read_text()) == document


def test_a_cache_entry_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / f"{KEY}.json").mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a file; remove it"):
        probe_cache.read_cache(tmp_path, KEY, shape=SHAPE)


def test_an_unwritable_cache_entry_is_a_config_error(tmp_path):
    (tmp_path / "probe_cache").write_text("kept\n")
    result = ProbeResult.from_correct([[[1, 0]]], seconds=1.0)
    with pytest.raises(ConfigError, match="cannot write probe cache entry"):
        probe_cache.write_cache(tmp_path / "probe_cache", KEY, result)
    assert (tmp_path / "probe_cache").read_text() == "kept\n"


# ---- the memory cache ---------------------------------------------------------------------

@pytest.fixture()
def memory(monkeypatch):
    monkeypatch.setattr(probe_cache, "_MEMORY_CACHE", {})


def test_a_remembered_result_is_cached_and_takes_the_interval_level_asked(memory):
    measured = ProbeResult.from_correct(CORRECT, seconds=1.25)
    assert probe_cache.remembered(KEY, level=0.95) is None
    probe_cache.remember(KEY, measured)
    again = probe_cache.remembered(KEY, level=0.95)
    assert again.cached and again.accuracy_per_seed == measured.accuracy_per_seed
    narrower = probe_cache.remembered(KEY, level=0.5)
    assert narrower.cached and narrower.level == 0.5
    (low, high), (low_95, high_95) = narrower.interval(), again.interval()
    assert low_95 <= low <= high <= high_95 and high - low < high_95 - low_95
    probe_cache.clear_memory_cache()
    assert probe_cache.remembered(KEY, level=0.95) is None
