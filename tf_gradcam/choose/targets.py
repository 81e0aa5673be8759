"""Choose the class (or score) to explain per sample: the one targets resolver.

Every way in (the explainers, ``explain_dataset``, the callback, the metrics) turns the user's
``targets`` into a :class:`Plan` here, with the same rules and the same messages:

* ``None``: each sample's top class (resolved in-graph, so it costs nothing extra);
* an ``int``: that class for every sample; a sequence of ``N`` ints: one class per sample;
* an ``[N, k]`` array of ints, or ``top_k=k``: ``k`` classes per sample, explained together
  (results get a ``k`` axis: ``heatmaps [N, k, H, W]``);
* ``"label"`` (datasets): the labels ``y`` of ``(x, y)`` elements, per batch;
* a callable ``f(outputs) -> [N]``: any differentiable score (a regression output, one head).

Inside the compiled step class targets are ``[B, k] int32``: a class index, or a rank code
``-j`` for "the sample's j-th highest class" (``-1``: the top class).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_gradcam.choose.scores import HeadInfo

TargetFn = Callable[[Any], Any]
Targets = Union[None, int, Sequence[int], np.ndarray, str, TargetFn]

#: Rank code of the top class; ``-j`` is the j-th highest class.
TOP_CLASS = -1

FORMS = (
    "None (each sample's top class), an int (one class for all), a sequence of N ints (one per "
    "sample), an [N, k] int array (k classes per sample), top_k=k, or a callable "
    "f(outputs) -> [N] scores"
)
_CALLABLE_HINT = (
    "For other outputs pass a callable that returns one score per sample, e.g. "
    "targets=lambda outputs: outputs[0][:, 3] for class 3 of the first head."
)


@dataclass(frozen=True)
class Plan:
    """The user's targets, resolved.

    Attributes:
        key: what the compiled step is traced for (one trace per key).
        k: classes explained per sample.
        multi: whether results carry a ``k`` axis (an ``[N, k]`` array or ``top_k``).
        classes: ``[N, k] int32`` class indices / rank codes when known up front, else ``None``
            (labels read per batch, or a callable).
        fn: the callable target, if any.
        from_labels: the classes are the dataset's labels.
    """

    key: Hashable
    k: int = 1
    multi: bool = False
    classes: np.ndarray | None = None
    fn: TargetFn | None = None
    from_labels: bool = False
    target: Any = None  # a ready-made target (tf_gradcam.choose.readymade.Target)
    values: dict = field(default_factory=dict)  # its values, as arrays

    def rows(self, start: int, stop: int) -> np.ndarray:
        """``[B, k] int32`` class codes of samples ``start:stop`` (zeros for a callable)."""
        if self.classes is None:
            return np.zeros((stop - start, self.k), np.int32)
        if len(self.classes) == 1:  # one row for all samples
            return np.repeat(self.classes, stop - start, axis=0)
        return self.classes[start:stop]

    def values_of(self, start: int, stop: int) -> dict:
        """The ready-made target's values for samples ``start:stop`` (shared ones whole)."""
        per_sample = getattr(self.target, "per_sample", ())
        return {k: (v[start:stop] if k in per_sample else v) for k, v in self.values.items()}

    def value_specs(self) -> dict:
        """``tf.TensorSpec`` of each value, every axis of any size (a new mask shape or a
        new class reuses the compiled step)."""
        return {k: tf.TensorSpec([None] * np.ndim(v), tf.as_dtype(np.asarray(v).dtype), name=k)
                for k, v in self.values.items()}


def _classes_plan(rows: np.ndarray, multi: bool) -> Plan:
    rows = np.asarray(rows, np.int32)
    return Plan(key=("classes", rows.shape[1]), k=rows.shape[1], multi=multi, classes=rows)


def _need_classes(head: HeadInfo) -> int:
    if head.regression is not None:
        raise ValueError(
            f"The model is compiled with a regression loss ({head.regression}): its outputs are "
            "values, not class scores, so there is no class to explain. Say what to explain: "
            "a callable returning one score per sample, e.g. targets=lambda out: out[:, 0], or "
            "a ready-made target such as tfg.targets.Regression(0).")
    if head.num_classes is None:
        raise ValueError(
            "Class indices need a model with one [N, classes] output, and this model's outputs "
            f"are not one. {_CALLABLE_HINT}"
        )
    return head.num_classes


def check_range(idx: np.ndarray, num_classes: int) -> None:
    bad = idx[(idx < 0) | (idx >= num_classes)]
    if bad.size:
        raise ValueError(
            f"Class index {int(bad[0])} is out of range for a model with {num_classes} outputs: "
            f"use 0 to {num_classes - 1}."
        )


def class_indices(targets: Any, n: int | None, num_classes: int | None) -> np.ndarray:
    """``[n] int64`` (or ``[n, k]``) class indices from an int or a sequence, range-checked.
    ``n=None`` accepts only one int (a dataset of unknown length)."""
    if isinstance(targets, (bool, np.bool_)) or targets is None:
        raise TypeError(f"targets must be {FORMS}; got {targets!r}.")
    if isinstance(targets, (int, np.integer)):
        idx = np.full((1 if n is None else n,), int(targets), np.int64)
    else:
        try:
            idx = np.asarray(targets)
        except (ValueError, TypeError):  # ragged or nested: NumPy's own message names no argument
            shown = repr(targets)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise ValueError(
                f"targets must be {FORMS}; got {shown}, which is not a rectangular array of "
                "class indices.") from None
        integral = np.issubdtype(idx.dtype, np.integer) or idx.size == 0
        if idx.ndim not in (1, 2) or not integral:
            hint = ""
            if np.issubdtype(idx.dtype, np.floating):
                hint = " Class targets are integer indices: cast them, e.g. np.asarray(t, int)."
            raise ValueError(
                f"targets must be {FORMS}; got an array of shape {idx.shape} and dtype "
                f"{idx.dtype}.{hint}"
            )
        if n is not None and len(idx) != n:
            raise ValueError(f"Got {len(idx)} targets for {n} inputs: give one class per sample.")
    if num_classes is not None:
        check_range(idx, num_classes)
    return idx


def _ready_made(target: Any, n: int | None, model: Any) -> Plan:
    target = target.bind(model) if model is not None else target
    values = {k: np.asarray(v) for k, v in target.values().items()}
    for name in target.per_sample:
        if n is None:
            raise ValueError(
                f"{type(target).__name__}'s {name} holds one entry per sample, which a dataset "
                "cannot line up with its batches: give one for all samples, or explain arrays.")
        if len(values[name]) != n:
            raise ValueError(f"{type(target).__name__}'s {name} has {len(values[name])} entries "
                             f"for {n} inputs: give one per sample (or one for all).")
    key = ("target", target.key({k: np.ndim(v) for k, v in values.items()}))
    return Plan(key=key, target=target, values=values)


def resolve(targets: Targets, head: HeadInfo, n: int | None = None, *, top_k: int | None = None,
            model: Any = None) -> Plan:
    """The :class:`Plan` for ``targets`` of ``n`` samples (``None``: a stream of batches, which
    takes only the per-batch forms: ``None``, ``"top"``, ``"label"``, an int, a callable, a
    ready-made target with values shared by all samples)."""
    from tf_gradcam.choose.readymade import Target

    if isinstance(targets, Target):
        if top_k is not None:
            raise ValueError("top_k ranks classes; it cannot be combined with a ready-made target.")
        return _ready_made(targets, n, model)
    if top_k is not None:
        if targets is not None:
            raise ValueError(
                f"top_k={top_k!r} explains each sample's highest classes; it cannot be combined "
                f"with targets={targets!r}. Pass one of them."
            )
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
        num_classes = _need_classes(head)
        if top_k > num_classes:
            raise ValueError(f"top_k={top_k} is more than the model's {num_classes} classes.")
        return _classes_plan(-np.arange(1, top_k + 1)[None], multi=True)
    if callable(targets):
        return Plan(key=("callable", id(targets)), fn=targets)
    if targets is None or (isinstance(targets, str) and targets == "top"):
        if head.num_classes is None and head.regression is None:
            raise ValueError(
                "The model has no single [N, classes] output, so there is no 'top class' to "
                "explain. Pass targets=lambda outputs: <one score per sample>."
            )
        _need_classes(head)
        return _classes_plan(np.full((1, 1), TOP_CLASS), multi=False)
    if isinstance(targets, str):
        if targets != "label":
            raise ValueError(f"targets must be {FORMS}, or 'label' for a dataset; got {targets!r}.")
        _need_classes(head)
        return Plan(key=("classes", 1), from_labels=True)
    num_classes = _need_classes(head)
    if n is None and not isinstance(targets, (int, np.integer)):
        raise ValueError(
            f"For a dataset, targets must be None, 'top', 'label', an int or a callable, got "
            f"{type(targets).__name__}. For per-sample classes put them in the dataset as "
            "(x, classes) elements and pass targets='label'."
        )
    idx = class_indices(targets, n, num_classes)
    if idx.ndim == 2:
        return _classes_plan(idx, multi=True)
    return _classes_plan(idx[:, None] if n is not None else idx[:1, None], multi=False)


# ---------------------------------------------------------------------------- labels
def label_classes(y: Any, num_classes: int, n: int | None = None) -> np.ndarray:
    """``[B] int64`` class indices from labels ``[B]``, ``[B, 1]`` or one-hot rows ``[B, C]``."""
    if y is None:
        raise ValueError(
            "targets='label' needs (x, y) dataset elements; this dataset yields inputs only."
        )
    if isinstance(y, dict) or (isinstance(y, (list, tuple)) and any(
            tf.is_tensor(v) or np.ndim(v) > 0 for v in y)):
        raise ValueError(
            "targets='label' needs one label tensor per element (a single-output classifier)."
        )
    arr = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(
                f"Label rows have {arr.shape[1]} columns but the model has {num_classes} classes."
            )
        arr = np.argmax(arr, axis=1)
    if arr.ndim != 1 or (n is not None and len(arr) != n):
        raise ValueError(
            f"Labels must be [{n or 'B'}] class indices or [{n or 'B'}, {num_classes}] one-hot "
            f"rows, one per sample; got shape {np.shape(y)}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"Labels must be class indices (integers); got {arr[:5]!r}...")
    arr = arr.astype(np.int64)
    check_range(arr, num_classes)
    return arr


def label_classes_in_graph(y: Any, num_classes: int) -> tf.Tensor:
    """:func:`label_classes` inside a ``tf.function`` (a distributed step): ``[B] int32``."""
    if y is None or isinstance(y, dict):
        label_classes(y, num_classes)  # raises the same message
    if isinstance(y, (list, tuple)):
        label_classes(y, num_classes)  # raises for a tuple of label tensors
        y = tf.stack(list(y))
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    if y.shape.rank == 2:
        if y.shape[-1] != num_classes:
            raise ValueError(
                f"Label rows have {y.shape[-1]} columns but the model has {num_classes} classes."
            )
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    if y.shape.rank != 1:
        raise ValueError(
            f"Labels must be [B] class indices or [B, {num_classes}] one-hot rows, one per "
            f"sample; got shape {tuple(y.shape)}."
        )
    classes = tf.cast(tf.round(y) if y.dtype.is_floating else y, tf.int32)
    tf.debugging.assert_greater_equal(classes, 0, message="A label is a negative class index.")
    tf.debugging.assert_less(
        classes, num_classes,
        message=f"A label is out of range for a model with {num_classes} classes.")
    return classes


# ---------------------------------------------------------------------------- in the step
def resolve_ranks(logits: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
    """``[B, k] int32`` class indices: rank codes ``-j`` of ``codes [B, k]`` replaced by the
    j-th highest class of ``logits [B, C]``; class indices kept."""
    logits = tf.convert_to_tensor(logits)
    k = codes.shape[1] if codes.shape.rank == 2 and codes.shape[1] is not None else None
    depth = 1 if k is None else k
    ranked = tf.math.top_k(tf.cast(logits, tf.float32), k=min(depth, int(logits.shape[-1]))).indices
    ranks = tf.clip_by_value(-codes - 1, 0, tf.shape(ranked)[1] - 1)
    return tf.where(codes < 0, tf.gather(ranked, ranks, axis=1, batch_dims=1), codes)


def select_classes(logits: tf.Tensor, codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``([B, k] scores, [B, k] int32 classes)`` of ``logits [B, C]`` for ``codes [B, k]``
    (class indices, or rank codes ``-j`` resolved to the j-th highest class)."""
    chosen = resolve_ranks(logits, codes)
    return tf.gather(tf.convert_to_tensor(logits), chosen, axis=1, batch_dims=1), chosen


def check_callable_scores(scores: Any, outputs: Any) -> tf.Tensor:
    """A callable's ``[B]`` float scores, or a ValueError that says what it must return."""
    scores = tf.convert_to_tensor(scores)
    if scores.shape.rank != 1:
        raise ValueError(
            f"The targets callable must return one score per sample, shape [N]; it returned "
            f"shape {scores.shape}. Reduce it, e.g. with tf.reduce_sum(..., axis=...)."
        )
    if not scores.dtype.is_floating:
        raise ValueError(
            f"The targets callable returned {scores.dtype.name} values; it must return a "
            "differentiable float score per sample (e.g. a logit), not a class index."
        )
    batch = tf.shape(tf.nest.flatten(outputs)[0])[0]
    check = tf.debugging.assert_equal(tf.shape(scores)[0], batch, message=CALLABLE_LENGTH_MESSAGE)
    with tf.control_dependencies([check]):
        return tf.identity(scores)


CALLABLE_LENGTH_MESSAGE = "tf_gradcam: the targets callable must return one score per sample"
