"""Argument checks shared across the package, each raising a ValueError that shows the value."""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` >= 1 (bools refused: ``True`` is not a batch size)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called from here that points at the first frame
    outside tf_gradcam: the user's line, whatever path the call took through the package."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
