"""Say why a map is all zero, when it is knowable, instead of returning it without a word.

Inside the compiled step :func:`flags` marks, per explained row, the causes that can be read
off the batch's tensors; after the step :func:`report` warns for the rows whose heatmap is all
zero, naming the cause and what to do. The flags travel with the step's results under keys
starting with ``_`` and never reach the :class:`~tf_gradcam.Explanation`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import tensorflow as tf

from tf_gradcam.engine import checks

PREFIX = "_why_"


def _per_row(x: tf.Tensor, fn) -> tf.Tensor:
    return fn(tf.reshape(x, tf.stack([tf.shape(x)[0], -1])), axis=1)


def flags(ref: Any, raw_acts: tf.Tensor, raw_grads: tf.Tensor | None, rows: Any) -> dict:
    """``{name: [R] bool}`` for one target's raw (captured) activations and gradients;
    ``rows`` repeats per-sample tensors to the rows."""
    out = {"dead": rows(_per_row(tf.cast(raw_acts, tf.float32) <= 0, tf.reduce_all))}
    if raw_grads is None:
        return out
    zero = tf.equal(raw_grads, 0.0)
    out["flat"] = _per_row(zero, tf.reduce_all)
    if raw_acts.dtype == tf.float16:
        out["underflow"] = out["flat"]
    grid = getattr(ref, "layout", None)
    if grid is not None and grid.fn is None and grid.prefix > 0:
        patches = _per_row(zero[:, grid.prefix:], tf.reduce_all)
        prefix = _per_row(~zero[:, : grid.prefix], tf.reduce_any)
        out["class_token"] = patches & prefix
    return out


def probability_rows(outputs: tf.Tensor) -> tf.Tensor:
    """``[B] bool``: rows that look like probabilities (in [0, 1], summing to 1)."""
    out = tf.cast(outputs, tf.float32)
    inside = tf.reduce_all((out >= 0.0) & (out <= 1.0), axis=-1)
    return inside & (tf.abs(tf.reduce_sum(out, axis=-1) - 1.0) < 1e-3)


def _suggestion(explainer: Any) -> str:
    try:
        from tf_gradcam.choose.tensors import resolve

        return f" layer={resolve(explainer.model, None).path!r} (what layer=None chooses)"
    except ValueError:
        return " an earlier layer"


def report(explainer: Any, out: dict, why: dict) -> None:
    """Warn, in words, about the rows of ``out`` whose heatmap is all zero and why, and about
    probabilities explained where logits were asked for."""
    probabilities = why.pop("probabilities", None)
    if probabilities is not None and np.asarray(probabilities).all():
        warnings.warn(
            f"Model {explainer.model.name!r} outputs probabilities (every row in [0, 1], summing "
            "to 1), but no softmax layer was found to read the logits before it (a softmax in a "
            "Lambda or a custom layer cannot be seen), so these maps explain probabilities, "
            "whose gradients vanish for confident classes. Expose the logits: end the model in "
            "keras.layers.Softmax() or Activation('softmax') applied to them; or pass "
            "score='probabilities' to explain the probabilities on purpose.",
            RuntimeWarning, stacklevel=checks.user_stacklevel())
    heat = out["heatmaps"]
    empty = ~heat.reshape(len(heat), -1).any(axis=1) if heat.size else np.zeros(0, bool)
    if not empty.any():
        return
    flag = {k: np.asarray(v).reshape(-1)[: len(empty)] for k, v in why.items()}
    where = explainer.layer_names or "the input"
    messages = [
        ("class_token", f"{where} reaches the score only through its prefix (class) token(s): "
                        "every patch token has exactly zero gradient, so the map is empty. "
                        f"Explain the input of the last attention block instead:"
                        f"{_suggestion(explainer)}."),
        ("underflow", f"The model computes {where} in float16 and every gradient there is "
                      "zero: they may have underflowed. Explain a float32 copy of the model "
                      "(keras.mixed_precision.set_global_policy('float32'), rebuild, "
                      "set_weights)."),
        ("dead", f"The activations of {where} are all zero or negative (dead ReLUs) for these "
                 "inputs: nothing to weight. Check the inputs' range, or explain another "
                 "layer."),
        ("flat", f"The score does not change with {where} for these inputs (every gradient is "
                 "zero: a saturated or constant path after it)."),
    ]
    explained = np.zeros_like(empty)
    for key, text in messages:
        hit = empty & flag.get(key, np.zeros_like(empty)) & ~explained
        if hit.any():
            warnings.warn(f"{int(hit.sum())} of {len(empty)} map(s) all zero: {text}",
                          RuntimeWarning, stacklevel=checks.user_stacklevel())
            explained |= hit
