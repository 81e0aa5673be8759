"""The function form: ``tfg.explain(model, inputs, targets, method=...)``."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from tf_gradcam.core.layers import LayerLike
from tf_gradcam.core.targets import Targets
from tf_gradcam.explanation import Explanation
from tf_gradcam.methods import METHODS


def _key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace("+", "plus")


def get_method(method: str) -> type:
    """The explainer class for a method name or one of its ``aliases`` (case and
    ``-``/``_``/``+`` spellings tolerated: ``"Grad-CAM++"``, ``"gradcam_pp"``)."""
    lookup = {_key(alias): cls for cls in METHODS.values() for alias in (cls.name, *cls.aliases)}
    if _key(method) not in lookup:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(METHODS)}.")
    return lookup[_key(method)]


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

    ``batch_size`` bounds the inputs of one forward pass: the images per step, and for the
    perturbation methods (Score-CAM, Ablation-CAM), whose constructors take it too, the masked
    copies per pass. For repeated calls build the explainer once and reuse it: it compiles on its
    first call.
    """
    cls = get_method(method)
    if batch_size is not None and "batch_size" in inspect.signature(cls.__init__).parameters:
        options.setdefault("batch_size", batch_size)
    explainer = cls(model, layer, **options)
    return explainer(inputs, targets, batch_size=batch_size)
