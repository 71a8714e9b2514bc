"""The residual add as ODiMO quantises it for DIANA, with DRAM errors on its stored operand.

ODiMO (eml-eda/odimo @ 2d9f139) adds a ResNet block's two branches with ``QuantAdd``
(models/quant_module_pow2.py:406-422): ONE 7-bit PACT activation quantiser
(``self.mix_activ``, line 414) quantises both operands, and the sum of the two quantised
values is returned as it is, not requantised (lines 418-422: ``q_x + q_y``). In its
``BasicBlockGumbel`` (models/mixresnet.py:202-271):

* an identity block's add shares the clip of conv1's input quantiser (mixresnet.py:236-242,
  ``QuantAdd(abits, clip_val=inp_clip_val)``), and its shortcut operand is the block input
  quantised with that same clip (``residual, _ = self.inp_q(x)``, line 252); re-quantising it
  with the same clip leaves its codes as they are, so the shortcut operand is exactly the
  block input as conv1 reads it;
* a downsample block's add has a clip of its own (``QuantAdd(kwargs['abits'])``, line 231)
  for both operands, the main path's conv2 output and the shortcut conv's output
  (lines 261-269); the shortcut conv reads the block input with conv1's clip (line 228);
* ``abits`` is 7 in every DIANA ResNet of mixresnet.py (e.g. line 620, ``abits=[7]``).

So ``QuantAdd(main, shortcut) = codes(main) * step + codes(shortcut) * step``, with the
``ActivationQuantizer`` of the add (conv1's input quantiser in an identity block).

**What is stored** (docs/model.md, "Residual adds"): the add runs in the output stage of the
layer that produces its main operand (conv2), so that operand is never stored; the shortcut
operand is a stored tensor, and gets the bit errors of the memory it lives in:

* identity block: the block input, which conv1 also reads. The add reads it through conv1
  (``DianaLayer.quantized_input``), so in a forward pass it gets the very codes, errors
  included, that conv1 got (conv1's ``StoredCopy``);
* downsample block: the shortcut conv's output, a stored tensor of its own with its own bit
  error rate (``set_errors``), quantised with the add's clip.
"""
from __future__ import annotations

import torch
from torch import nn

from networks.quantize import (
    ActivationQuantizer,
    DianaLayer,
    TensorErrors,
    corrupted_activation_codes,
)

CALIBRATION_QUANTILE = 0.999  # initial activation clip: ignore the rarest outliers


def calibrated_clip(values: torch.Tensor) -> float:
    """The initial clip of a quantiser that sees ``values``: their positive part's
    ``CALIBRATION_QUANTILE`` (at least 1e-3)."""
    positive = values.detach().flatten()
    positive = positive[positive > 0][:1_000_000]
    if not positive.numel():
        return 1.0
    return max(float(torch.quantile(positive.float(), CALIBRATION_QUANTILE)), 1e-3)


class QuantAdd(nn.Module):
    """``main + shortcut`` with both operands quantised by one 7-bit activation quantiser.

    Build with ``QuantAdd.identity(reader)`` for a shortcut that is a stored tensor some
    ``DianaLayer`` (``reader``) also reads, or ``QuantAdd()`` for a shortcut that is stored
    only for this add (its own quantiser and its own errors).
    """

    def __init__(self, quantizer: ActivationQuantizer | None = None) -> None:
        super().__init__()
        self.quantizer = quantizer if quantizer is not None else ActivationQuantizer()
        self.errors: TensorErrors | None = None  # of the stored shortcut (downsample only)
        self._reader: tuple[DianaLayer, ...] = ()  # a tuple: not registered as a submodule
        # a checkpoint trained before the adds were quantised has no clip for this add: it
        # is then calibrated on the first batch the add sees (``calibrate_on_first_pass``)
        self.calibrate_on_first_pass = False

    @classmethod
    def identity(cls, reader: DianaLayer) -> "QuantAdd":
        """The add of an identity block: shares ``reader``'s input quantiser (ODiMO couples
        the clips) and reads the shortcut as ``reader`` does (one stored copy)."""
        add = cls(reader.input_quantizer)
        add._reader = (reader,)
        return add

    @property
    def reader(self) -> DianaLayer | None:
        """The layer whose stored input is the shortcut (None: the shortcut is stored for
        this add alone)."""
        return self._reader[0] if self._reader else None

    def set_errors(self, errors: TensorErrors | None) -> None:
        """Errors of the stored shortcut (``errors.activation_ber``); ignored in an identity
        block, whose shortcut gets its reader's errors."""
        self.errors = errors

    def shortcut_value(self, shortcut: torch.Tensor) -> torch.Tensor:
        """The shortcut operand as the add reads it from memory: codes x step."""
        reader = self.reader
        if reader is not None:
            return reader.quantized_input(shortcut)
        errors = self.errors
        if errors is None or errors.activation_ber == 0:
            return self.quantizer(shortcut)
        return self.quantizer(shortcut, lambda codes: corrupted_activation_codes(
            codes, errors.activation_ber, errors))

    def forward(self, main: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        quantizer = self.quantizer
        if self.calibrate_on_first_pass:
            with torch.no_grad():
                quantizer.clip.fill_(calibrated_clip(torch.cat([main.flatten(),
                                                                shortcut.flatten()])))
            self.calibrate_on_first_pass = False
        return quantizer(main) + self.shortcut_value(shortcut)
