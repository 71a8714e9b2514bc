"""Bit-error injection into DNN tensors as stored in approximate DRAM (EDEN-style).

Errors are applied to the *stored bit patterns*, not to the numeric values, so each data type
is first encoded in its DRAM representation:

* int8 weights / activations - one two's-complement byte per value;
* ternary weights - a 2-bit (w+, w-) code per weight, four weights per byte
  (see :func:`ternary_to_storage` for the bit order);
* 7-bit activations - one value 0..127 per byte; a flipped bit 7 gives 128..255, which
  :func:`correct_implausible` removes.

Layout: bit ``b`` of a byte stream lives in byte ``b // 8``, bit ``b % 8`` (LSB = 0). The stream
is cut into DRAM rows of ``row_bytes`` bytes, ``row_bits = 8 * row_bytes``: bit ``b`` sits on
bitline ``b % row_bits`` of row (wordline) ``b // row_bits``; the last row may be partial.

Error models 0-3 (uniform, bitline-correlated, wordline-correlated, data-dependent) and the
implausible-value correction follow EDEN (Koppula et al., "EDEN: Enabling Energy-Efficient,
High-Performance Deep Neural Network Inference Using Approximate DRAM", MICRO 2019); their
parameters are :class:`hw_models.error_models.ErrorModelParams`.

Cost: flip counts are drawn from binomials and positions uniformly without replacement, so time
and memory grow with the number of flips (plus the weak set for models 1 and 2), never with the
number of stored bits; no per-bit random number or mask is drawn.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from hw_models.error_models import ERROR_MODELS, ErrorModelParams
from hw_models.errors import ConfigError

# Above this fraction of a population, drawing with replacement and topping up wastes draws on
# duplicates; a permutation-based draw is then O(population), i.e. still O(flips).
_DENSE_FRACTION = 0.125
_TERNARY_SHIFTS = torch.tensor([0, 2, 4, 6], dtype=torch.uint8)  # weight j of a byte at bit 2j


def flip_positions(n_bits: int, ber: float, *, model: int, rng: np.random.Generator,
                   row_bits: int, params: ErrorModelParams,
                   stored: np.ndarray | None = None) -> np.ndarray:
    """Draw the bits that flip in a stream of ``n_bits`` stored bits.

    Args:
        n_bits: Number of stored bits (may exceed 2**32; nothing of this size is allocated).
        ber: Mean bit error rate in [0, 1].
        model: EDEN error model, one of ``ERROR_MODELS``.
        rng: Source of randomness (advanced in place).
        row_bits: Bits per DRAM row (bitlines per row); used by models 1 and 2.
        params: Weak-line fractions (models 1, 2) and the 1->0 share (model 3).
        stored: Model 3 only: the stored bytes, uint8 of at least ``ceil(n_bits / 8)``.

    Returns:
        Sorted unique bit positions, int64, shape (n_flips,).

    For models 1 and 2, cells on weak lines flip with ``ber / fraction``; when ``ber`` exceeds
    the weak fraction, the weak fraction becomes ``ber`` and every weak cell flips, which keeps
    the mean BER at ``ber``.
    """
    _check_flip_args(n_bits, ber, model, row_bits, params)
    if ber == 0 or n_bits == 0:
        return np.empty(0, dtype=np.int64)
    if model == 0:
        return _distinct_uniform(rng, n_bits, int(rng.binomial(n_bits, ber)))
    if model == 1:
        return _bitline_flips(n_bits, ber, rng, row_bits, params.weak_bitline_fraction)
    if model == 2:
        return _wordline_flips(n_bits, ber, rng, row_bits, params.weak_wordline_fraction)
    return _data_dependent_flips(n_bits, ber, rng, params.one_to_zero_share, stored)


def inject_bit_errors(storage: torch.Tensor, ber: float, *, model: int = 0,
                      seed: int | np.random.Generator, row_bytes: int,
                      params: ErrorModelParams = ErrorModelParams()) -> torch.Tensor:
    """Flip bits of a tensor's stored bytes under one EDEN error model.

    Args:
        storage: uint8 tensor of any shape: the bytes of one tensor as laid out in DRAM
            (flattened in row-major order; byte 0 starts a DRAM row).
        ber: Mean bit error rate in [0, 1].
        model: EDEN error model, one of ``ERROR_MODELS``.
        seed: Seed or generator; the same seed gives the same flips.
        row_bytes: Bytes per DRAM row.
        params: Error-model parameters.

    Returns:
        A new uint8 tensor of the same shape and device with the drawn bits XOR-flipped; the
        input is not modified.
    """
    if storage.dtype != torch.uint8:
        raise ConfigError(f"storage must be a uint8 tensor, got {storage.dtype}")
    if not isinstance(row_bytes, (int, np.integer)) or row_bytes <= 0:
        raise ConfigError(f"row_bytes must be a positive integer, got {row_bytes!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    flipped = storage.detach().cpu().reshape(-1).clone()
    flipped_bytes = flipped.numpy()  # shares memory with `flipped`
    positions = flip_positions(8 * flipped.numel(), ber, model=model, rng=rng,
                               row_bits=8 * int(row_bytes), params=params,
                               stored=flipped_bytes)
    _xor_bits(flipped_bytes, positions)
    return flipped.reshape(storage.shape).to(storage.device)


def int8_to_storage(q: torch.Tensor) -> torch.Tensor:
    """Two's-complement bytes of an int8 tensor: uint8, same shape (a view when contiguous)."""
    if q.dtype != torch.int8:
        raise ConfigError(f"expected an int8 tensor, got {q.dtype}")
    return q.detach().contiguous().view(torch.uint8)


def storage_to_int8(storage: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`int8_to_storage`: int8, same shape (a view when contiguous)."""
    if storage.dtype != torch.uint8:
        raise ConfigError(f"storage must be a uint8 tensor, got {storage.dtype}")
    return storage.contiguous().view(torch.int8)


def ternary_to_storage(t: torch.Tensor) -> torch.Tensor:
    """Pack ternary weights as 2-bit (w+, w-) codes, four per byte.

    Codes: +1 -> (w+=1, w-=0), -1 -> (0, 1), 0 -> (0, 0). Weight ``i`` of the flattened
    tensor goes to byte ``i // 4``; with ``j = i % 4``, its w+ is bit ``2j`` and its w- bit
    ``2j + 1`` (LSB = 0). The last byte is padded with zero weights.

    Args:
        t: Tensor of any shape and dtype with values in {-1, 0, 1}.

    Returns:
        uint8 tensor, shape (ceil(t.numel() / 4),).
    """
    flat = t.detach().cpu().reshape(-1)
    if not bool(((flat == -1) | (flat == 0) | (flat == 1)).all()):
        raise ConfigError("ternary weights must take values in {-1, 0, 1}")
    codes = (flat == 1).to(torch.uint8) | ((flat == -1).to(torch.uint8) << 1)
    padding = torch.zeros((-codes.numel()) % 4, dtype=torch.uint8)
    codes = torch.cat([codes, padding]).reshape(-1, 4) << _TERNARY_SHIFTS  # (n_bytes, 4)
    return codes[:, 0] | codes[:, 1] | codes[:, 2] | codes[:, 3]


def storage_to_ternary(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Unpack :func:`ternary_to_storage` bytes; the invalid code (1, 1) decodes to 0.

    Args:
        packed: uint8 tensor of packed codes, any shape (read flattened).
        numel: Number of weights to decode, at most ``4 * packed.numel()``.

    Returns:
        int8 tensor in {-1, 0, 1}, shape (numel,).
    """
    if packed.dtype != torch.uint8:
        raise ConfigError(f"packed ternary storage must be uint8, got {packed.dtype}")
    if not 0 <= numel <= 4 * packed.numel():
        raise ConfigError(f"cannot decode {numel} ternary weights from {packed.numel()} bytes")
    codes = (packed.cpu().reshape(-1, 1) >> _TERNARY_SHIFTS) & 3  # (n_bytes, 4)
    codes = codes.reshape(-1)[:numel]
    return (codes == 1).to(torch.int8) - (codes == 2).to(torch.int8)


def ternary_parts_to_storage(flat: torch.Tensor, counts: Sequence[int]
                             ) -> tuple[torch.Tensor, list[int]]:
    """``ternary_to_storage`` of consecutive parts of ``flat`` at once: part i (its next
    ``counts[i]`` weights) is packed as alone, its last byte padded, the parts' bytes one
    after another. Returns the bytes and each part's byte count. The values are taken to
    be ternary (not checked)."""
    counts_t = torch.tensor(list(counts), dtype=torch.int64)
    n_bytes = (counts_t + 3) // 4
    if int(counts_t.sum()) == 0:
        return torch.zeros(0, dtype=torch.uint8), n_bytes.tolist()
    positions = _part_positions(counts_t, n_bytes)
    values = flat.detach().cpu().reshape(-1)
    codes = torch.zeros(4 * int(n_bytes.sum()), dtype=torch.uint8)
    codes[positions] = (values == 1).to(torch.uint8) | ((values == -1).to(torch.uint8) << 1)
    codes = codes.reshape(-1, 4) << _TERNARY_SHIFTS
    return codes[:, 0] | codes[:, 1] | codes[:, 2] | codes[:, 3], n_bytes.tolist()


def storage_to_ternary_parts(packed: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """The inverse of ``ternary_parts_to_storage``: the parts' weights, int8 in {-1, 0, 1},
    one after another (the invalid code (1, 1) decodes to 0)."""
    counts_t = torch.tensor(list(counts), dtype=torch.int64)
    n_bytes = (counts_t + 3) // 4
    codes = ((packed.cpu().reshape(-1, 1) >> _TERNARY_SHIFTS) & 3).reshape(-1)
    codes = codes[_part_positions(counts_t, n_bytes)]
    return (codes == 1).to(torch.int8) - (codes == 2).to(torch.int8)


def _part_positions(counts: torch.Tensor, n_bytes: torch.Tensor) -> torch.Tensor:
    """Where each weight of the parts sits among the packed codes (4 per byte, each part
    starting on a byte of its own)."""
    total = int(counts.sum())
    part_start = torch.cumsum(counts, 0) - counts          # first weight of each part
    byte_start = torch.cumsum(n_bytes, 0) - n_bytes        # first byte of each part
    part_of = torch.repeat_interleave(torch.arange(len(counts)), counts)
    return torch.arange(total) - part_start[part_of] + 4 * byte_start[part_of]


def activations_to_storage(a: torch.Tensor) -> torch.Tensor:
    """Store 7-bit activations one per byte: uint8 values 0..127, returned unchanged."""
    if a.dtype != torch.uint8:
        raise ConfigError(f"7-bit activations must be a uint8 tensor, got {a.dtype}")
    if a.numel() and int(a.max()) > 127:
        raise ConfigError(f"7-bit activations must lie in 0..127, got max {int(a.max())}")
    return a


def storage_to_activations(storage: torch.Tensor) -> torch.Tensor:
    """Read 7-bit activations back (identity); flipped bit 7 leaves values 128..255."""
    if storage.dtype != torch.uint8:
        raise ConfigError(f"storage must be a uint8 tensor, got {storage.dtype}")
    return storage


def correct_implausible(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """EDEN's implausible-value correction: zero every value outside [low, high].

    Args:
        values: Tensor of any shape and dtype.
        low: Smallest value seen on the error-free model (profiled range).
        high: Largest value seen on the error-free model.

    Returns:
        New tensor, same shape and dtype; values outside [low, high] (and NaN) set to 0.
    """
    if not low <= high:
        raise ConfigError(f"correct_implausible needs low <= high, got [{low}, {high}]")
    plausible = (values >= low) & (values <= high)
    return torch.where(plausible, values, torch.zeros_like(values))


def inject_int8(q: torch.Tensor, ber: float, **kw: Any) -> torch.Tensor:
    """Inject bit errors into int8 values; ``kw`` as :func:`inject_bit_errors`."""
    return storage_to_int8(inject_bit_errors(int8_to_storage(q), ber, **kw))


def inject_ternary(t: torch.Tensor, ber: float, **kw: Any) -> torch.Tensor:
    """Inject bit errors into packed ternary weights; same shape and dtype as ``t``."""
    packed = inject_bit_errors(ternary_to_storage(t), ber, **kw)
    return storage_to_ternary(packed, t.numel()).reshape(t.shape).to(t.dtype).to(t.device)


def inject_activations(a: torch.Tensor, ber: float, **kw: Any) -> torch.Tensor:
    """Inject bit errors into 7-bit activations (uint8); no correction applied."""
    return storage_to_activations(inject_bit_errors(activations_to_storage(a), ber, **kw))


def _check_flip_args(n_bits: int, ber: float, model: int, row_bits: int,
                     params: ErrorModelParams) -> None:
    if model not in ERROR_MODELS:
        raise ConfigError(f"unknown error model {model!r}; choose one of {ERROR_MODELS}")
    if not 0.0 <= ber <= 1.0:  # also rejects NaN
        raise ConfigError(f"bit error rate must lie in [0, 1], got {ber}")
    if n_bits < 0:
        raise ConfigError(f"n_bits must be non-negative, got {n_bits}")
    if row_bits <= 0:
        raise ConfigError(f"row_bits must be positive, got {row_bits}")
    for name in ("weak_bitline_fraction", "weak_wordline_fraction", "one_to_zero_share"):
        if not 0.0 <= getattr(params, name) <= 1.0:
            raise ConfigError(f"{name} must lie in [0, 1], got {getattr(params, name)}")


def _distinct_uniform(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k distinct positions, uniform over the k-subsets of range(n); sorted int64."""
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k > _DENSE_FRACTION * n:
        return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    # Drawing with replacement, dropping repeats and topping up is exchangeable in the labels,
    # so the result is uniform; it beats Generator.choice and np.unique by 3-50x at k << n.
    positions = np.empty(0, dtype=np.int64)
    while positions.size < k:
        draws = rng.integers(0, n, size=k - positions.size, dtype=np.int64)
        positions = np.sort(np.concatenate([positions, draws]))
        positions = positions[np.concatenate([[True], positions[1:] != positions[:-1]])]
    return positions


def _weak_set(rng: np.random.Generator, n_lines: int, ber: float,
              fraction: float) -> tuple[np.ndarray, float]:
    """Draw the weak lines (sorted) and the flip probability of a cell on them."""
    if ber > fraction:  # a weak fraction below the BER cannot reach it: every weak cell flips
        fraction, flip_probability = ber, 1.0
    else:
        flip_probability = ber / fraction
    weak = _distinct_uniform(rng, n_lines, int(rng.binomial(n_lines, fraction)))
    return weak, flip_probability


def _bitline_flips(n_bits: int, ber: float, rng: np.random.Generator, row_bits: int,
                   fraction: float) -> np.ndarray:
    """Model 1: flips only on weak bitlines, in the rows that exist."""
    bitlines = min(row_bits, n_bits)  # bitlines past a single partial row hold no cell
    weak, flip_probability = _weak_set(rng, bitlines, ber, fraction)
    full_rows, partial_bits = divmod(n_bits, row_bits)
    weak_in_partial = weak[weak < partial_bits]
    n_weak_cells = full_rows * weak.size + weak_in_partial.size
    cells = _distinct_uniform(rng, n_weak_cells, int(rng.binomial(n_weak_cells,
                                                                   flip_probability)))
    if cells.size == 0:
        return cells
    # Weak cells are numbered row by row, so sorted cells map to sorted positions.
    in_full = cells[cells < full_rows * weak.size]
    full = (in_full // weak.size) * row_bits + weak[in_full % weak.size]
    partial = full_rows * row_bits + weak_in_partial[cells[in_full.size:]
                                                     - full_rows * weak.size]
    return np.concatenate([full, partial])


def _wordline_flips(n_bits: int, ber: float, rng: np.random.Generator, row_bits: int,
                    fraction: float) -> np.ndarray:
    """Model 2: flips only in weak rows; the last row may be partial."""
    n_rows = math.ceil(n_bits / row_bits)
    weak, flip_probability = _weak_set(rng, n_rows, ber, fraction)
    full_rows, partial_bits = divmod(n_bits, row_bits)
    weak_full = weak[weak < full_rows]
    n_weak_cells = weak_full.size * row_bits + (partial_bits if weak.size > weak_full.size
                                                else 0)
    cells = _distinct_uniform(rng, n_weak_cells, int(rng.binomial(n_weak_cells,
                                                                   flip_probability)))
    # Weak cells are numbered row by row, so sorted cells map to sorted positions.
    in_full = cells[cells < weak_full.size * row_bits]
    full = weak_full[in_full // row_bits] * row_bits + in_full % row_bits
    partial = full_rows * row_bits + cells[in_full.size:] - weak_full.size * row_bits
    return np.concatenate([full, partial])


def _data_dependent_flips(n_bits: int, ber: float, rng: np.random.Generator, share: float,
                          stored: np.ndarray | None) -> np.ndarray:
    """Model 3: thin uniform candidates drawn at max(p10, p01) by the rate of each bit value."""
    if stored is None or stored.dtype != np.uint8 or 8 * stored.size < n_bits:
        raise ConfigError("error model 3 needs the stored uint8 bytes covering all n_bits")
    one_to_zero = min(2.0 * ber * share, 1.0)
    zero_to_one = min(2.0 * ber * (1.0 - share), 1.0)
    candidate_rate = max(one_to_zero, zero_to_one)
    candidates = _distinct_uniform(rng, n_bits, int(rng.binomial(n_bits, candidate_rate)))
    flat = stored.reshape(-1)
    bit_values = (flat[candidates >> 3] >> (candidates & 7).astype(np.uint8)) & 1
    keep_probability = np.where(bit_values == 1, one_to_zero, zero_to_one) / candidate_rate
    return candidates[rng.random(candidates.size) < keep_probability]


def flip_bits(stored: np.ndarray, positions: np.ndarray) -> None:
    """Flip the given sorted unique bit positions of ``stored`` (uint8, 1-D) in place
    (``flip_positions`` draws them; positions of several tensors laid end to end, each
    offset by the bits before it, stay sorted)."""
    _xor_bits(stored, positions)


def _xor_bits(stored: np.ndarray, positions: np.ndarray) -> None:
    """Flip the given sorted unique bit positions of ``stored`` (uint8, 1-D) in place."""
    if positions.size == 0:
        return
    byte_index = positions >> 3
    masks = np.left_shift(1, positions & 7).astype(np.uint8)
    starts = np.flatnonzero(np.concatenate([[True], byte_index[1:] != byte_index[:-1]]))
    stored[byte_index[starts]] ^= np.bitwise_or.reduceat(masks, starts)
