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


#: Losses that make a compiled model a regression model (its outputs are values, not classes).
REGRESSION_LOSSES = {
    "mse", "mae", "mape", "msle", "huber", "logcosh", "log_cosh", "mean_squared_error",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "meansquarederror", "meanabsoluteerror", "meanabsolutepercentageerror",
    "meansquaredlogarithmicerror", "huber_loss", "cosine_similarity", "cosinesimilarity",
}


def _regression_loss(loss: Any) -> str | None:
    """The name of ``loss`` (a string, a Loss object or a function) if it is a regression loss."""
    losses = list(loss.values()) if isinstance(loss, dict) else (
        list(loss) if isinstance(loss, (list, tuple)) else [loss])
    for item in losses:
        name = item if isinstance(item, str) else getattr(item, "name", None) or getattr(
            item, "__name__", None) or type(item).__name__
        if str(name).lower() in REGRESSION_LOSSES:
            return str(name)
    return None


@dataclass(frozen=True)
class HeadInfo:
    """What the model outputs, as far as choosing a class score is concerned.

    Attributes:
        units: the width of a single ``[N, C]`` output, else ``None``.
        squashing: ``"softmax"``, ``"sigmoid"`` or ``None`` (logits, or unknown) for the final
            activation found in the graph.
        n_outputs: how many outputs the model has.
        regression: the regression loss the model is compiled with (``"mse"``...), if any.
    """

    units: int | None
    squashing: str | None
    n_outputs: int
    regression: str | None = None

    @property
    def binary(self) -> bool:
        """One logit or one sigmoid unit: two classes, the positive one and its negation."""
        return self.units == 1 and self.regression is None

    @property
    def num_classes(self) -> int | None:
        """The classes that can be explained: ``C``, 2 for a binary head, ``None`` for a model
        without one ``[N, C]`` classifier output (several outputs, a regression)."""
        if self.units is None or self.regression is not None:
            return None
        return 2 if self.binary else self.units

    @property
    def sigmoid(self) -> bool:
        """Independent sigmoid units (or one logit): each class's probability is its sigmoid."""
        return self.squashing == "sigmoid" or (self.squashing is None and self.units == 1)

    def class_scores(self, outputs: tf.Tensor, score: str) -> tf.Tensor:
        """``[N, num_classes]`` scores of the classes: the outputs, or for a binary head
        ``[-z, z]`` (logits; the negative class's logit is the negated one) or ``[1 - p, p]``
        (a sigmoid's probabilities)."""
        outputs = tf.cast(outputs, tf.float32)
        if not self.binary:
            return outputs
        if score == "probabilities" and self.squashing == "sigmoid":
            return tf.concat([1.0 - outputs, outputs], axis=-1)
        return tf.concat([-outputs, outputs], axis=-1)


def head_of(model: keras.Model) -> HeadInfo:
    outputs = model.outputs
    units = outputs[0].shape[-1] if len(outputs) == 1 and len(outputs[0].shape) == 2 else None
    kinds = {_squashing_kind(op) for op in _output_producers(model)} - {None}
    squashing = kinds.pop() if len(kinds) == 1 else None
    regression = _regression_loss(getattr(model, "loss", None)) if getattr(
        model, "compiled", False) or getattr(model, "loss", None) is not None else None
    return HeadInfo(units=units, squashing=squashing, n_outputs=len(outputs),
                    regression=regression)


def output_classes(model: keras.Model) -> int | None:
    """Number of explainable classes of a single-output classifier ``[N, C]`` (2 for one
    logit), else ``None``."""
    return head_of(model).num_classes


def probability_fn(head: HeadInfo) -> Callable[[tf.Tensor], tf.Tensor]:
    """Class scores (logits) -> probabilities for this head: a softmax over the classes, or an
    elementwise sigmoid for sigmoid units (or one logit, as ``[-z, z]``), which are
    independent."""
    if head.sigmoid:
        return tf.math.sigmoid
    return lambda logits: tf.nn.softmax(logits, axis=-1)
