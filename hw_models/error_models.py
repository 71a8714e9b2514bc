"""Parameters of EDEN's four DRAM error models (Koppula et al., MICRO 2019).

* model 0 - uniform: every stored bit flips independently with probability ``ber``;
* model 1 - bitline-correlated: a fraction ``weak_bitline_fraction`` of the bitlines (bit
  positions within a DRAM row) is weak; cells on weak bitlines flip with probability
  ``ber / weak_bitline_fraction``, others never: the same mean BER, concentrated;
* model 2 - wordline-correlated: the same along rows (``weak_wordline_fraction``);
* model 3 - data-dependent: a stored 1 flips to 0 with probability ``2 * ber * s`` and a
  stored 0 flips to 1 with ``2 * ber * (1 - s)``, ``s = one_to_zero_share``; with half the
  bits set, the mean BER is ``ber``.

The fractions and the share are modelling assumptions (EDEN's fitted per-vendor values are
not public); DRAM presets carry them with that label.
"""
from __future__ import annotations

from dataclasses import dataclass

ERROR_MODELS = (0, 1, 2, 3)


@dataclass(frozen=True)
class ErrorModelParams:
    weak_bitline_fraction: float = 0.01
    weak_wordline_fraction: float = 0.01
    one_to_zero_share: float = 0.25
