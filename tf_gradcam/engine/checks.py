"""Argument checks shared across the package, each raising a ValueError that shows the value."""

from __future__ import annotations

import numpy as np


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` >= 1 (bools refused: ``True`` is not a batch size)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)
