"""The function form: ``tfg.explain(model, inputs, targets, method=...)``."""

from __future__ import annotations

from typing import Any

import keras

from tf_gradcam.core.layers import LayerLike
from tf_gradcam.core.targets import Targets
from tf_gradcam.explanation import Explanation
from tf_gradcam.methods import METHODS


def get_method(method: str) -> type:
    """The explainer class for a method name (case and ``-``/``_``/``+`` spellings tolerated)."""
    key = str(method).lower().replace("-", "").replace("_", "").replace("+", "plus")
    aliases = {name.replace("_", ""): name for name in METHODS}
    if key not in aliases:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(METHODS)}.")
    return METHODS[aliases[key]]


def explain(
    model: keras.Model,
    inputs: Any,
    targets: Targets = None,
    *,
    method: str = "gradcam",
    layer: LayerLike = None,
    batch_size: int | None = None,
    **options: Any,
) -> Explanation:
    """Explain ``inputs`` with one call: builds ``tfg.<Method>(model, layer, **options)`` and runs it.

    For repeated calls build the explainer once and reuse it: it compiles on its first call.
    """
    explainer = get_method(method)(model, layer, **options)
    return explainer(inputs, targets, batch_size=batch_size)
