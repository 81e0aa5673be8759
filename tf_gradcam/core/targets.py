"""Pick the score to explain: which output, logits or probabilities, which class per sample."""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import keras
import numpy as np

from tf_gradcam.core import graph

TargetFn = Callable[[Any], Any]
Targets = Union[None, int, Sequence[int], np.ndarray, TargetFn]

# Internally a class index of -1 means "this sample's top class", resolved in-graph by argmax.
TOP_CLASS = -1

SCORES = ("logits", "probabilities")


def _is_squashing(activation: Any) -> bool:
    """Softmax or sigmoid: the final activations whose saturation hides the evidence."""
    name = getattr(activation, "__name__", "")
    return name in ("softmax", "sigmoid")


def _is_squashing_op(op: Any) -> bool:
    """``keras.ops.softmax`` / ``keras.ops.sigmoid`` applied in a functional graph (an Operation,
    not a Layer). A softmax hidden in a ``Lambda`` cannot be seen: use a Softmax layer."""
    return not isinstance(op, keras.layers.Layer) and type(op).__name__ in ("Softmax", "Sigmoid")


def logit_overrides(model: keras.Model) -> dict[int, graph.Override]:
    """Overrides that make each model output its pre-softmax (or pre-sigmoid) scores.

    The paper explains y^c, the score before the softmax: after it, a confident class has a
    vanishing gradient. We follow each output back to the layer that produced it (through nested
    models) and, when that layer squashes, compute the same thing without the squashing.
    """
    overrides: dict[int, graph.Override] = {}
    pending = [graph.graph_of(model)]
    while pending:
        g = pending.pop()
        if g is None:
            continue
        for out in g.outputs:
            history = getattr(out, "_keras_history", None)
            op = history.operation if history is not None else None
            if op is None:
                continue
            if graph.is_graph_model(op):
                pending.append(graph.graph_of(op))
                continue
            activation = getattr(op, "activation", None)
            if isinstance(op, keras.layers.Softmax) or (
                isinstance(op, keras.layers.Activation) and _is_squashing(activation)
            ) or _is_squashing_op(op):
                # A bare softmax layer: its input is the logits.
                overrides[id(op)] = lambda call, x, *args, **kwargs: x
            elif _is_squashing(activation):
                twin = graph.without_activation(op)
                overrides[id(op)] = lambda call, *args, _twin=twin, **kwargs: _twin(*args, **kwargs)
    return overrides


def output_classes(model: keras.Model) -> int | None:
    """Number of classes of a single-output classifier ``[N, C]``, else ``None``."""
    outputs = model.outputs
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        return None
    return outputs[0].shape[-1]


def normalize(targets: Targets, n: int, num_classes: int | None) -> np.ndarray | TargetFn:
    """Turn the user's ``targets`` into ``[n] int32`` class indices (-1: top class) or a callable.

    Raises:
        ValueError: wrong length, an index out of range, or class indices on a model that has
            no single ``[N, C]`` output (then a callable is needed).
    """
    if callable(targets):
        return targets
    if targets is not None and num_classes is None:
        raise ValueError(
            "Class indices need a model with one [N, classes] output. For other outputs pass a "
            "callable that returns one score per sample, e.g. "
            "targets=lambda outputs: outputs[0][:, 3] for class 3 of the first head."
        )
    if targets is None:
        if num_classes is None:
            raise ValueError(
                "The model has no single [N, classes] output, so there is no 'top class' to "
                "explain. Pass targets=lambda outputs: <one score per sample>."
            )
        return np.full((n,), TOP_CLASS, np.int32)
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError("targets must be None, an int, a sequence of ints or a callable.")
    if isinstance(targets, (int, np.integer)):
        idx = np.full((n,), int(targets), np.int64)
    else:
        idx = np.asarray(targets)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise ValueError(
                f"targets must be one int or a sequence of {n} ints (one per sample); got an "
                f"array of shape {idx.shape} and dtype {idx.dtype}."
            )
        if len(idx) != n:
            raise ValueError(f"Got {len(idx)} targets for {n} inputs: give one class per sample.")
    bad = idx[(idx < 0) | (idx >= num_classes)]
    if bad.size:
        raise ValueError(
            f"Class index {int(bad[0])} is out of range for a model with {num_classes} outputs: "
            f"use 0 to {num_classes - 1}."
        )
    return idx.astype(np.int32)
