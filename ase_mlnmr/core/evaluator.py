"""The compiled whole-model evaluator (``_evaluator``) and helpers to read its outputs.

:class:`Evaluator` turns a loaded :class:`~ase_mlnmr.nmr_model.NMRModel` into flat C arrays
and evaluates every output from one CSR neighbour list (``docs/evaluator.md``); the same
code is exported to C through ``mlnmr_core.h`` (``mlnmr_evaluator_*``).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ._evaluator import (
    API_VERSION,
    DEFAULT_BLOCK_SIZE,
    HAS,
    OUTPUT_FIELDS,
    STATUS_MESSAGES,
    WANT_ALL,
    WANT_EFG,
    WANT_OOD,
    WANT_SHIELDING,
    WIDTH,
    Evaluator,
    library_path,
)

__all__ = ["API_VERSION", "DEFAULT_BLOCK_SIZE", "HAS", "OUTPUT_FIELDS", "STATUS_MESSAGES", "WANT_ALL", "WANT_EFG",
           "WANT_OOD", "WANT_SHIELDING", "WIDTH", "Evaluator",
           "library_path", "output_field", "want_bits"]

_WANT = {"shielding": WANT_SHIELDING, "efg": WANT_EFG, "ood": WANT_OOD}


def want_bits(outputs: Iterable[str]) -> int:
    """Bit mask of the output groups ``"shielding"``, ``"efg"``, ``"ood"``."""
    bits = 0
    for name in outputs:
        if name not in _WANT:
            raise ValueError(f"unknown output group {name!r}; expected some of {sorted(_WANT)}")
        bits |= _WANT[name]
    return bits


def output_field(out: np.ndarray, name: str) -> np.ndarray:
    """Field ``name`` of evaluator rows (N, WIDTH): (N,) for width 1, else (N, width)."""
    offset, width, _ = OUTPUT_FIELDS[name]
    block = out[:, offset:offset + width]
    return block[:, 0] if width == 1 else block
