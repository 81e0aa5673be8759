"""Choose the score to explain: the logits under a final softmax, and what the head is.

The paper explains y^c, the score before the softmax: after it, a confident class has a
vanishing gradient. :func:`logit_overrides` makes the engine's re-execution output the
pre-softmax (pre-sigmoid) scores without touching the model; :class:`HeadInfo` says what the
model's output is (how many classes, a sigmoid or softmax, logits or probabilities), which the
targets resolver and the perturbation methods read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
import tensorflow as tf

from tf_gradcam.engine import _keras, graph

SCORES = ("logits", "probabilities")


def _is_squashing(activation: Any) -> bool:
    """Softmax or sigmoid: the final activations whose saturation hides the evidence."""
    return getattr(activation, "__name__", "") in ("softmax", "sigmoid")


def _is_squashing_op(op: Any) -> bool:
    """``keras.ops.softmax`` / ``keras.ops.sigmoid`` applied in a functional graph (an Operation,
    not a Layer). A softmax hidden in a ``Lambda`` cannot be seen: use a Softmax layer."""
    return not isinstance(op, keras.layers.Layer) and type(op).__name__ in ("Softmax", "Sigmoid")


def _squashing_kind(op: Any) -> str | None:
    """``"softmax"``, ``"sigmoid"`` or ``None``: how ``op`` squashes its output, if at all."""
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    if _is_squashing_op(op):
        return type(op).__name__.lower()
    name = getattr(getattr(op, "activation", None), "__name__", "")
    return name if name in ("softmax", "sigmoid") else None


def _output_producers(model: keras.Model) -> list[Any]:
    """The ops that produce the model's outputs, following nested models' outputs inward."""
    found, pending = [], [graph.graph_of(model)]
    while pending:
        g = pending.pop()
        if g is None:
            continue
        for out in g.outputs:
            op = _keras.producer(out)
            if op is None:
                continue
            if graph.is_graph_model(op):
                pending.append(graph.graph_of(op))
            else:
                found.append(op)
    return found


def logit_overrides(model: keras.Model) -> dict[int, graph.Override]:
    """Overrides that make each model output its pre-softmax (or pre-sigmoid) scores.

    We follow each output back to the op that produced it (through nested models) and, when it
    squashes, compute the same thing without the squashing: a bare softmax layer or op passes
    its input on; a layer with a softmax activation runs as a weight-sharing twin without it.
    """
    overrides: dict[int, graph.Override] = {}
    for op in _output_producers(model):
        if _squashing_kind(op) is None:
            continue
        if isinstance(op, (keras.layers.Softmax, keras.layers.Activation)) or _is_squashing_op(op):
            overrides[id(op)] = lambda call, x, *args, **kwargs: x
        else:
            twin = graph.without_activation(op)
            overrides[id(op)] = lambda call, *args, _twin=twin, **kwargs: _twin(*args, **kwargs)
    return overrides


@dataclass(frozen=True)
class HeadInfo:
    """What the model outputs, as far as choosing a class score is concerned.

    Attributes:
        num_classes: classes of a single ``[N, C]`` output, else ``None``.
        squashing: ``"softmax"``, ``"sigmoid"`` or ``None`` (logits, or unknown) for the final
            activation found in the graph.
        n_outputs: how many outputs the model has.
    """

    num_classes: int | None
    squashing: str | None
    n_outputs: int

    @property
    def sigmoid(self) -> bool:
        """Independent sigmoid units (or one logit): each class's probability is its sigmoid."""
        return self.squashing == "sigmoid" or (self.squashing is None and self.num_classes == 1)


def head_of(model: keras.Model) -> HeadInfo:
    outputs = model.outputs
    num_classes = outputs[0].shape[-1] if len(outputs) == 1 and len(outputs[0].shape) == 2 else None
    kinds = {_squashing_kind(op) for op in _output_producers(model)} - {None}
    squashing = kinds.pop() if len(kinds) == 1 else None
    return HeadInfo(num_classes=num_classes, squashing=squashing, n_outputs=len(outputs))


def output_classes(model: keras.Model) -> int | None:
    """Number of classes of a single-output classifier ``[N, C]``, else ``None``."""
    return head_of(model).num_classes


def probability_fn(head: HeadInfo) -> Callable[[tf.Tensor], tf.Tensor]:
    """Logits -> probabilities for this head: a softmax over the classes, or an elementwise
    sigmoid for a sigmoid (or one-logit) output, whose classes are independent."""
    if head.sigmoid:
        return tf.math.sigmoid
    return lambda logits: tf.nn.softmax(logits, axis=-1)
