"""The function form: ``tfg.explain(model, inputs, targets, method=...)``."""

from __future__ import annotations

from typing import Any

import keras

from tf_gradcam.choose.targets import Targets
from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine.explainer import get_method
from tf_gradcam.explanation import Explanation

__all__ = ["explain", "get_method"]


def explain(
    model: keras.Model,
    inputs: Any,
    targets: Targets = None,
    *,
    method: str = "gradcam",
    layer: LayerSpec = None,
    top_k: int | None = None,
    batch_size: int | None = None,
    **options: Any,
) -> Explanation:
    """Explain ``inputs`` in one call: builds ``tfg.<Method>(model, layer, **options)``, runs it.

    ``batch_size`` is the samples per compiled step, as on the explainers' call; the
    perturbation methods' copies per forward pass are their own option,
    ``perturbation_batch_size``. For repeated calls build the explainer once and reuse it: it
    compiles on its first call.
    """
    explainer = get_method(method)(model, layer, **options)
    return explainer(inputs, targets, top_k=top_k, batch_size=batch_size)
