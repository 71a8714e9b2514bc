"""EDEN-style bit-error injection: flip rates, correlation, direction, codecs, determinism."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from hw_models import ConfigError
from hw_models.error_models import ErrorModelParams
from networks import fault_injection as fi
from networks.fault_injection import (
    activations_to_storage,
    correct_implausible,
    flip_positions,
    inject_activations,
    inject_bit_errors,
    inject_int8,
    inject_ternary,
    int8_to_storage,
    storage_to_activations,
    storage_to_int8,
    storage_to_ternary,
    ternary_to_storage,
)

N_BITS = 2**22
BER = 1e-3
Z = 3.29  # two-sided 99.9 %
PARAMS = ErrorModelParams()
# Rows chosen so that the weak set of the correlated model has ~82 lines: model 1 needs many
# bitlines (8192 per row), model 2 many rows (512 bits per row -> 8192 rows).
ROW_BITS = {0: 8192, 1: 8192, 2: 512, 3: 8192}


def random_bytes(n_bytes: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=n_bytes, dtype=np.uint8)


def flips(model: int, seed: int = 0, ber: float = BER, params: ErrorModelParams = PARAMS,
          stored: np.ndarray | None = None) -> np.ndarray:
    stored = random_bytes(N_BITS // 8) if stored is None else stored
    return flip_positions(N_BITS, ber, model=model, rng=np.random.default_rng(seed),
                          row_bits=ROW_BITS[model], params=params, stored=stored)


def expected_count_and_sd(model: int, stored: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the flip count under each model."""
    if model == 0:
        return N_BITS * BER, math.sqrt(N_BITS * BER * (1 - BER))
    if model == 3:
        ones = int(np.unpackbits(stored).sum())
        p10, p01 = 2 * BER * PARAMS.one_to_zero_share, 2 * BER * (1 - PARAMS.one_to_zero_share)
        mean = ones * p10 + (N_BITS - ones) * p01
        return mean, math.sqrt(ones * p10 * (1 - p10) + (N_BITS - ones) * p01 * (1 - p01))
    # Compound: w ~ Binomial(lines, P) weak lines, each Binomial(cells_per_line, F) flips.
    fraction = PARAMS.weak_bitline_fraction if model == 1 else PARAMS.weak_wordline_fraction
    lines = ROW_BITS[1] if model == 1 else N_BITS // ROW_BITS[2]
    cells_per_line, flip_probability = N_BITS // lines, BER / fraction
    mean_weak, var_weak = lines * fraction, lines * fraction * (1 - fraction)
    var = (mean_weak * cells_per_line * flip_probability * (1 - flip_probability)
           + var_weak * (cells_per_line * flip_probability) ** 2)
    return mean_weak * cells_per_line * flip_probability, math.sqrt(var)


@pytest.mark.parametrize("model", [0, 1, 2, 3])
def test_flip_count_matches_the_ber(model):
    stored = random_bytes(N_BITS // 8)
    positions = flips(model, stored=stored)
    mean, sd = expected_count_and_sd(model, stored)
    assert Z * sd < mean / 2  # the interval is tight enough to reject a rate off by 2x
    assert abs(positions.size - mean) <= Z * sd
    assert positions.dtype == np.int64
    assert np.all(np.diff(positions) > 0) and positions[0] >= 0 and positions[-1] < N_BITS


def test_bitline_model_concentrates_flips_on_few_bitlines():
    row_bits = ROW_BITS[1]
    weak_bound = 2 * PARAMS.weak_bitline_fraction * row_bits  # P_B * row_bits ~ 82, sd ~ 9
    correlated = np.unique(flips(1) % row_bits).size
    uniform = np.unique(flips(0) % row_bits).size
    assert correlated <= weak_bound
    assert uniform >= 10 * weak_bound


def test_wordline_model_concentrates_flips_on_few_rows():
    row_bits, n_rows = ROW_BITS[2], N_BITS // ROW_BITS[2]
    weak_bound = 2 * PARAMS.weak_wordline_fraction * n_rows
    correlated = np.unique(flips(2) // row_bits).size
    uniform = np.unique(flips(0) // ROW_BITS[2]).size
    assert correlated <= weak_bound
    assert uniform >= 10 * weak_bound


@pytest.mark.parametrize("model, row_bits, n_rows", [(1, 8192, 16), (2, 64, 4000)])
def test_ber_above_weak_fraction_flips_every_cell_of_each_weak_line(model, row_bits, n_rows):
    n_bits = row_bits * n_rows + 10  # last row partial
    positions = flip_positions(n_bits, 0.05, model=model, rng=np.random.default_rng(3),
                               row_bits=row_bits, params=PARAMS)
    assert positions[-1] < n_bits
    line = positions % row_bits if model == 1 else positions // row_bits
    for hit in np.unique(line):
        cells = np.arange(hit, n_bits, row_bits) if model == 1 else \
            np.arange(hit * row_bits, min((hit + 1) * row_bits, n_bits))
        assert np.array_equal(positions[line == hit], cells)
    assert abs(positions.size / n_bits - 0.05) < 0.02


def test_data_dependent_model_flips_mostly_zeros_to_ones():
    stored = random_bytes(N_BITS // 8)
    positions = flips(3, stored=stored)
    was_one = (stored[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
    zero_to_one = 1.0 - was_one.mean()
    ones = int(np.unpackbits(stored).sum())
    share = PARAMS.one_to_zero_share
    expected = (N_BITS - ones) * (1 - share) / ((N_BITS - ones) * (1 - share) + ones * share)
    assert abs(expected - 0.75) < 0.01  # half the bits are set
    assert abs(zero_to_one - expected) < Z * math.sqrt(0.75 * 0.25 / positions.size)


def test_data_dependent_model_needs_the_stored_bytes():
    with pytest.raises(ConfigError):
        flip_positions(64, 0.1, model=3, rng=np.random.default_rng(0), row_bits=64,
                       params=PARAMS)


@pytest.mark.parametrize("model", [0, 1, 2])
def test_cost_grows_with_flips_not_with_stored_bits(model):
    # 10**10 bits: a per-bit array would need >= 1.25 GB; about 10 flips are expected.
    tracemalloc.start()
    positions = flip_positions(10**10, 1e-9, model=model, rng=np.random.default_rng(0),
                               row_bits=8192, params=PARAMS)
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 1 <= positions.size <= 40
    assert positions.dtype == np.int64 and positions[-1] < 10**10
    assert peak_bytes < 16 * 2**20


@pytest.mark.parametrize("model", [0, 1, 2, 3])
def test_same_seed_same_flips_and_input_untouched(model):
    storage = torch.from_numpy(random_bytes(2**16)).reshape(256, 256)  # 1024 rows
    original = storage.clone()
    kw = dict(model=model, row_bytes=64)
    first = inject_bit_errors(storage, 0.01, seed=5, **kw)
    assert torch.equal(first, inject_bit_errors(storage, 0.01, seed=5, **kw))
    assert not torch.equal(first, inject_bit_errors(storage, 0.01, seed=6, **kw))
    assert first.shape == storage.shape and first.dtype == torch.uint8
    assert torch.equal(storage, original)


def test_injected_bits_are_the_drawn_positions():
    storage = torch.from_numpy(random_bytes(1000))
    injected = inject_bit_errors(storage, 0.01, seed=np.random.default_rng(9), row_bytes=100)
    positions = flip_positions(8000, 0.01, model=0, rng=np.random.default_rng(9),
                               row_bits=800, params=PARAMS)
    diff = np.unpackbits((storage ^ injected).numpy(), bitorder="little")
    assert np.array_equal(np.flatnonzero(diff), positions)


def test_zero_ber_returns_an_identical_copy():
    storage = torch.from_numpy(random_bytes(256))
    injected = inject_bit_errors(storage, 0.0, seed=0, row_bytes=32)
    assert torch.equal(injected, storage)
    assert injected.data_ptr() != storage.data_ptr()


@pytest.mark.parametrize("ber", [-0.1, 1.5, float("nan")])
def test_ber_outside_unit_interval_is_rejected(ber):
    with pytest.raises(ConfigError):
        inject_bit_errors(torch.zeros(8, dtype=torch.uint8), ber, seed=0, row_bytes=8)


def test_unknown_model_and_bad_storage_are_rejected():
    with pytest.raises(ConfigError):
        inject_bit_errors(torch.zeros(8, dtype=torch.uint8), 0.1, model=4, seed=0, row_bytes=8)
    with pytest.raises(ConfigError):
        inject_bit_errors(torch.zeros(8, dtype=torch.int8), 0.1, seed=0, row_bytes=8)
    with pytest.raises(ConfigError):
        inject_bit_errors(torch.zeros(8, dtype=torch.uint8), 0.1, seed=0, row_bytes=0)


def test_int8_round_trip_over_all_values():
    values = torch.arange(-128, 128, dtype=torch.int8)
    storage = int8_to_storage(values)
    assert storage.dtype == torch.uint8
    assert torch.equal(storage.to(torch.int16), values.to(torch.int16) % 256)
    assert torch.equal(storage_to_int8(storage), values)


def test_one_flipped_int8_bit_changes_the_value_by_a_power_of_two():
    values = torch.arange(-128, 128, dtype=torch.int8)
    for bit in range(8):
        flipped = storage_to_int8(int8_to_storage(values) ^ (1 << bit))
        change = (flipped.to(torch.int16) - values.to(torch.int16)).abs()
        expected = 128 if bit == 7 else 2**bit  # two's complement: the sign bit weighs -128
        assert torch.all(change == expected)


def test_ternary_round_trip_and_bit_order():
    t = torch.from_numpy(np.random.default_rng(2).integers(-1, 2, size=(7, 5))).float()
    packed = ternary_to_storage(t)
    assert packed.shape == (9,) and packed.dtype == torch.uint8
    assert torch.equal(storage_to_ternary(packed, t.numel()).reshape(7, 5).float(), t)
    # +1, -1, 0, +1 -> codes 01, 10, 00, 01 at bits 0-1, 2-3, 4-5, 6-7
    assert ternary_to_storage(torch.tensor([1, -1, 0, 1])).item() == 0b01_00_10_01


def test_invalid_ternary_code_decodes_to_zero():
    packed = torch.tensor([0b11_01_10_11], dtype=torch.uint8)
    assert storage_to_ternary(packed, 4).tolist() == [0, -1, 1, 0]
    with pytest.raises(ConfigError):
        ternary_to_storage(torch.tensor([2, 0]))
    with pytest.raises(ConfigError):
        storage_to_ternary(packed, 5)


def test_activation_range_check():
    a = torch.arange(128, dtype=torch.uint8)
    assert torch.equal(storage_to_activations(activations_to_storage(a)), a)
    with pytest.raises(ConfigError):
        activations_to_storage(torch.tensor([128], dtype=torch.uint8))
    with pytest.raises(ConfigError):
        activations_to_storage(torch.tensor([3], dtype=torch.int32))


def test_correct_implausible_zeroes_exactly_the_out_of_range_values():
    values = torch.tensor([-3.0, -2.0, 0.5, 2.0, 2.5, float("nan")])
    corrected = correct_implausible(values, -2.0, 2.0)
    assert corrected.tolist() == [0.0, -2.0, 0.5, 2.0, 0.0, 0.0]
    activations = torch.tensor([5, 127, 128, 255], dtype=torch.uint8)
    assert correct_implausible(activations, 0, 127).tolist() == [5, 127, 0, 0]
    with pytest.raises(ConfigError):
        correct_implausible(values, 1.0, 0.0)


def test_wrappers_keep_shape_and_dtype():
    q = torch.from_numpy(random_bytes(600).view(np.int8).copy()).reshape(20, 30)
    t = torch.from_numpy(np.random.default_rng(4).integers(-1, 2, size=(3, 3, 11))).float()
    a = torch.from_numpy(random_bytes(500) >> 1).reshape(5, 100)
    kw = dict(seed=0, row_bytes=16)
    for x, injected in [(q, inject_int8(q, 0.05, **kw)), (t, inject_ternary(t, 0.05, **kw)),
                        (a, inject_activations(a, 0.05, **kw))]:
        assert injected.shape == x.shape and injected.dtype == x.dtype
        assert not torch.equal(injected, x)
    assert set(inject_ternary(t, 0.3, **kw).unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert int(inject_activations(a, 0.05, **kw).max()) > 127  # bit 7 flipped somewhere


def test_ternary_parts_pack_each_part_as_alone():
    """Parts of 0, 5, 8 and 3 weights: each packed on bytes of its own, as
    ``ternary_to_storage`` packs it alone, and read back."""
    rng = np.random.default_rng(1)
    counts = [0, 5, 8, 3]
    parts = [torch.from_numpy(rng.integers(-1, 2, n)).float() for n in counts]
    packed, n_bytes = fi.ternary_parts_to_storage(torch.cat(parts), counts)
    alone = [fi.ternary_to_storage(p) if p.numel() else torch.zeros(0, dtype=torch.uint8)
             for p in parts]
    assert n_bytes == [a.numel() for a in alone] == [0, 2, 2, 1]
    assert torch.equal(packed, torch.cat(alone))
    assert torch.equal(fi.storage_to_ternary_parts(packed, counts),
                       torch.cat(parts).to(torch.int8))
    empty, none = fi.ternary_parts_to_storage(torch.zeros(0), [0, 0])
    assert empty.numel() == 0 and none == [0, 0]
