"""The callback's fixed inputs, taken once: probe images, labels, options, file names.

Everything here runs on host memory at construction or in ``on_train_begin``; nothing touches
the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_gradcam.engine.explainer import Explainer, get_method
from tf_gradcam.engine.pipeline import split_element

_ANIMATIONS = ("gif", "grid")


def method_class(method: Any) -> type[Explainer]:
    if isinstance(method, type):
        if not issubclass(method, Explainer):
            raise ValueError(
                f"method must be a method name or an Explainer subclass, got {method!r}."
            )
        return method
    if isinstance(method, str):
        return get_method(method)
    raise ValueError(
        f"method must be a method name or an Explainer subclass, got {method!r}."
    )


def check_options(cls: type[Explainer], options: dict) -> None:
    """Refuse keyword arguments the method's constructor does not take, listing those it does."""
    known = cls.option_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"method_options {unknown} are not options of {cls.__name__}; it takes {known}."
        )


def animations(animation: Any) -> tuple[str, ...]:
    if animation is None or animation is False:
        return ()
    kinds = (animation,) if isinstance(animation, str) else tuple(animation)
    bad = [k for k in kinds if k not in _ANIMATIONS]
    if bad or not kinds:
        raise ValueError(
            f"animation must be 'gif', 'grid', a list of both, or None; got {animation!r}."
        )
    return kinds


def _to_numpy(x: Any) -> Any:
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), x)


def take_probes(inputs: Any, max_probes: int) -> tuple[Any, Any]:
    """``(inputs, labels or None)`` as NumPy; a dataset's first ``max_probes`` samples."""
    if isinstance(inputs, tf.data.Dataset):
        xs, ys, count = [], [], 0
        for element in inputs.take(max_probes):
            element = _to_numpy(element)
            x, y = split_element(element, 1)
            if y is not None and np.ndim(y) == 0:
                raise ValueError(
                    "The probe dataset yields single (x, y) samples, not batches: batch it "
                    "first, e.g. dataset.batch(16).")
            xs.append(x)
            ys.append(y)
            count += count_of(x)
            if count >= max_probes:
                break
        if not xs:
            raise ValueError("The probe dataset is empty: it yielded no batch.")
        x = tf.nest.map_structure(lambda *parts: np.concatenate(parts)[:max_probes], *xs)
        y = None if any(v is None for v in ys) else np.concatenate(ys)[:max_probes]
        return x, y
    if isinstance(inputs, tuple):
        if len(inputs) not in (2, 3):
            raise ValueError(
                "A tuple of probes must be (x, y) or (x, y, sample_weight); got "
                f"{len(inputs)} items. "
                "Pass a list for a model with several inputs."
            )
        return _to_numpy(inputs[0]), _to_numpy(inputs[1])
    if inputs is None:
        raise ValueError("inputs (the probe images) are required.")
    return _to_numpy(inputs), None


def count_of(x: Any) -> int:
    leaves = tf.nest.flatten(x)
    if not leaves or np.ndim(leaves[0]) == 0:
        raise ValueError(
            "The probe inputs must be arrays with a batch axis first, e.g. [N, H, W, C]."
        )
    n = len(leaves[0])
    if n == 0:
        raise ValueError("The probe inputs hold no samples.")
    return n


def rank_of(x: Any) -> int:
    return np.ndim(tf.nest.flatten(x)[0])


def file_name(item) -> str:
    if item.kind == "grid":
        return "grid.png"
    probe = item.tag.split("/")[1]
    suffix = "_heatmap" if item.kind == "heatmap" else ""
    return f"{probe}_{item.label}{suffix}.png"
