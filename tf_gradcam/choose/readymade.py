"""Ready-made targets: typed scores for what a lambda would otherwise say, compiled once per kind.

``tfg.targets.Region(1, mask)`` explains the sum of class 1's logits over a mask;
``Box(box, 2)`` a detection's class score; ``Similarity(reference)`` the cosine of an
embedding to a reference; ``Output("age")`` / ``Regression(0)`` one output or value of a
multi-output or regression model; ``Class(3)`` what ``targets=3`` does. Their values (classes,
masks, boxes, references) are tensors fed to the compiled step, and only their kind and static
configuration are its trace key: another mask, another class or another box reuses the step
(``explainer.trace_count`` does not grow).

A value may hold one entry for all samples (a ``[H, W]`` mask) or one per sample (``[N, H, W]``);
per-sample values are sliced batch by batch with the inputs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Hashable

import numpy as np
import tensorflow as tf

__all__ = ["Box", "Class", "Output", "Region", "Regression", "Similarity", "Target"]


class Target:
    """Base of the ready-made targets: one differentiable score per sample of the outputs.

    A subclass sets :attr:`kind` and implements :meth:`score`; :meth:`static` returns what
    changes the graph (which output, a threshold), :meth:`values` what does not.
    """

    kind: ClassVar[str] = "target"
    #: Values whose first axis is the sample (``[N, ...]``), sliced per batch.
    per_sample: tuple[str, ...] = ()

    def static(self) -> tuple:
        return ()

    def values(self) -> dict[str, np.ndarray]:
        return {}

    def key(self, n_values: dict[str, int]) -> Hashable:
        """The trace key: the kind, the static configuration, and each value's rank."""
        return (self.kind, self.static(), tuple(sorted(n_values.items())))

    def bind(self, model: Any) -> Target:
        """The target ready for ``model`` (e.g. a detector's box decoder found); default self."""
        return self

    def score(self, outputs: Any, values: dict[str, tf.Tensor]) -> tf.Tensor:
        """``[B]`` float32: the score of each sample (``values`` sliced to the batch)."""
        raise NotImplementedError

    def classes(self, values: dict[str, tf.Tensor], batch: tf.Tensor) -> tf.Tensor:
        """``[B]`` int32: the class each sample explains, reported in ``Explanation.targets``
        (``-1`` when the score is not one class's)."""
        return tf.fill([batch], tf.constant(-1, tf.int32))


def _pick(outputs: Any, which: int | str | None, names: list[str] | None = None) -> tf.Tensor:
    if which is None:
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError("The model has several outputs: say which, e.g. output=0.")
        return outputs
    if isinstance(outputs, dict):
        return outputs[which] if not isinstance(which, int) else list(outputs.values())[which]
    if isinstance(outputs, (list, tuple)):
        if isinstance(which, str):
            if names is None or which not in names:
                raise ValueError(f"No output named {which!r}; the outputs are {names}.")
            which = names.index(which)
        return outputs[which]
    if which in (0, None):
        return outputs
    raise ValueError(f"The model has one output; output={which!r} does not exist.")


def _flat(x: tf.Tensor) -> tf.Tensor:
    """``[B, ...] -> [B, D]``, ``D`` static when the shape is."""
    size = x.shape[1:].num_elements()
    return tf.reshape(x, [-1, size if size is not None else tf.reduce_prod(tf.shape(x)[1:])])


def _as_index(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an int (or one int per sample), got {value!r}.")
    return arr.astype(np.int32)


@dataclass(frozen=True, eq=False)
class Class(Target):
    """Class ``index``'s score: its logit (``targets=index`` does the same), or with
    ``probability=True`` its softmax probability whatever the explainer's ``score``."""

    index: Any
    probability: bool = False
    kind: ClassVar[str] = "class"

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_sample", ("index",) if np.ndim(self.index) else ())

    def static(self) -> tuple:
        return (self.probability,)

    def values(self) -> dict[str, np.ndarray]:
        return {"index": _as_index(self.index, "Class.index")}

    def score(self, outputs, values):
        out = tf.cast(outputs, tf.float32)
        if self.probability:
            out = tf.nn.softmax(out, axis=-1)
        index = tf.broadcast_to(values["index"], tf.shape(out)[:1])
        return tf.gather(out, index, axis=1, batch_dims=1)

    def classes(self, values, batch):
        return tf.broadcast_to(tf.cast(values["index"], tf.int32), [batch])


@dataclass(frozen=True, eq=False)
class Region(Target):
    """Segmentation: the sum of class ``class_index``'s logits over a pixel ``mask``
    (``[H, W]`` for the batch, or ``[N, H, W]`` one per sample, at the output's resolution;
    any non-negative weights), as pytorch-grad-cam's semantic segmentation target.

    Args:
        output: which output holds the per-pixel scores ``[N, H, W, C]``, for a model with
            several (an index or a name).
    """

    class_index: int
    mask: Any
    output: int | str | None = None
    kind: ClassVar[str] = "region"

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask, np.float32)
        if mask.ndim not in (2, 3) or not np.isfinite(mask).all() or (mask < 0).any():
            raise ValueError(f"Region.mask must be [H, W] or [N, H, W] non-negative weights, "
                             f"got shape {mask.shape}.")
        object.__setattr__(self, "per_sample", ("mask",) if mask.ndim == 3 else ())

    def static(self) -> tuple:
        return (self.output,)

    def values(self):
        return {"mask": np.asarray(self.mask, np.float32),
                "class_index": _as_index(self.class_index, "Region.class_index")}

    def score(self, outputs, values):
        out = tf.cast(_pick(outputs, self.output), tf.float32)  # [B, H, W, C]
        per_pixel = tf.gather(out, values["class_index"], axis=-1)  # [B, H, W]
        mask = values["mask"]
        if mask.shape.rank == 2:
            mask = mask[None]
        return tf.reduce_sum(per_pixel * mask, axis=[1, 2])

    def classes(self, values, batch):
        return tf.fill([batch], tf.cast(values["class_index"], tf.int32))


@dataclass(frozen=True, eq=False)
class Similarity(Target):
    """An embedding's cosine similarity to a ``reference`` (``[D]`` for the batch or
    ``[N, D]`` one per sample): for backbones without a classifier (DINOv2, CLIP)."""

    reference: Any
    output: int | str | None = None
    kind: ClassVar[str] = "similarity"

    def __post_init__(self) -> None:
        ref = np.asarray(self.reference, np.float32)
        if ref.ndim not in (1, 2) or not np.isfinite(ref).all():
            raise ValueError(f"Similarity.reference must be [D] or [N, D], got {ref.shape}.")
        object.__setattr__(self, "per_sample", ("reference",) if ref.ndim == 2 else ())

    def static(self) -> tuple:
        return (self.output,)

    def values(self):
        return {"reference": np.asarray(self.reference, np.float32)}

    def score(self, outputs, values):
        emb = _flat(tf.cast(_pick(outputs, self.output), tf.float32))
        ref = tf.reshape(values["reference"], [-1, tf.shape(emb)[1]])
        return tf.reduce_sum(tf.math.l2_normalize(emb, -1) * tf.math.l2_normalize(ref, -1), -1)


@dataclass(frozen=True, eq=False)
class Output(Target):
    """One output of a multi-output model (by index or name): class ``class_index`` of it, or
    its only value for a one-unit output."""

    which: int | str
    class_index: int | None = None
    kind: ClassVar[str] = "output"

    def static(self) -> tuple:
        return (self.which, self.class_index is None)

    def values(self):
        return {} if self.class_index is None else {
            "class_index": _as_index(self.class_index, "Output.class_index")}

    def bind(self, model):
        object.__setattr__(self, "_names", list(getattr(model, "output_names", []) or []))
        return self

    def score(self, outputs, values):
        out = _flat(tf.cast(_pick(outputs, self.which, getattr(self, "_names", None)), tf.float32))
        if self.class_index is None:
            if out.shape[-1] != 1:
                raise ValueError(f"Output {self.which!r} has {out.shape[-1]} values: pass "
                                 "class_index= to say which one.")
            return out[:, 0]
        return tf.gather(out, values["class_index"], axis=1)

    def classes(self, values, batch):
        if "class_index" in values:
            return tf.fill([batch], tf.cast(values["class_index"], tf.int32))
        return super().classes(values, batch)


@dataclass(frozen=True, eq=False)
class Regression(Target):
    """Value ``index`` of a regression output (``[N, V]``), of output ``output`` for a model
    with several."""

    index: int = 0
    output: int | str | None = None
    kind: ClassVar[str] = "regression"

    def static(self) -> tuple:
        return (self.output,)

    def values(self):
        return {"index": _as_index(self.index, "Regression.index")}

    def score(self, outputs, values):
        out = _flat(tf.cast(_pick(outputs, self.output), tf.float32))
        return tf.gather(out, values["index"], axis=1)


# ---------------------------------------------------------------------- detection
_DECODERS: weakref.WeakKeyDictionary[Any, Callable] = weakref.WeakKeyDictionary()


def keras_hub_decoder(model: Any) -> Callable:
    """``outputs -> (boxes [B, A, 4] in the model's box format, class logits [B, A, C])`` for a
    keras-hub RetinaNet-style detector (``{"bbox_regression", "cls_logits"}`` outputs and an
    ``anchor_generator``): its anchors for the model's input size, computed once."""
    if model in _DECODERS:
        return _DECODERS[model]
    import keras

    if not hasattr(model, "anchor_generator"):
        raise ValueError(
            "Box needs the detector's decoded boxes: pass decode=fn(outputs) -> (boxes "
            "[B, A, 4], class scores [B, A, C]); only keras-hub detectors with an "
            "anchor_generator are decoded by default.")
    height, width, channels = model.inputs[0].shape[1:]
    if height is None or width is None:
        raise ValueError("Box needs a detector with a fixed input size to place its anchors.")
    images = np.zeros((1, height, width, channels), np.float32)
    anchors = keras.ops.concatenate(list(model.anchor_generator(images).values()), axis=0)
    anchors = tf.constant(keras.ops.convert_to_numpy(anchors), tf.float32)

    def decode(outputs):
        boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
            anchors=anchors, boxes_delta=outputs["bbox_regression"],
            encoded_format="center_xywh", anchor_format=model.anchor_generator.bounding_box_format,
            box_format=model.bounding_box_format, image_shape=(height, width, channels))
        return tf.cast(boxes, tf.float32), tf.cast(outputs["cls_logits"], tf.float32)

    decode.box_format = model.bounding_box_format  # type: ignore[attr-defined]
    _DECODERS[model] = decode
    return decode


def _iou(boxes: tf.Tensor, box: tf.Tensor) -> tf.Tensor:
    """IoU of ``boxes [B, A, 4]`` with ``box [B, 4]`` (both ``(y0, x0, y1, x1)``)."""
    box = box[:, None, :]
    inter_h = tf.nn.relu(tf.minimum(boxes[..., 2], box[..., 2]) -
                         tf.maximum(boxes[..., 0], box[..., 0]))
    inter_w = tf.nn.relu(tf.minimum(boxes[..., 3], box[..., 3]) -
                         tf.maximum(boxes[..., 1], box[..., 1]))
    inter = inter_h * inter_w

    def area(b):
        return tf.nn.relu(b[..., 2] - b[..., 0]) * tf.nn.relu(b[..., 3] - b[..., 1])

    return tf.math.divide_no_nan(inter, area(boxes) + area(box) - inter)


@dataclass(frozen=True, eq=False)
class Box(Target):
    """Detection: class ``class_index``'s score of the predicted box that best matches ``box``
    (``(y0, x0, y1, x1)`` pixels, ``[4]`` for the batch or ``[N, 4]``), when their IoU reaches
    ``iou_threshold``; plus that IoU, so moving the box counts too (pytorch-grad-cam's box score
    target). No match scores 0.

    Args:
        decode: ``fn(outputs) -> (boxes [B, A, 4] as y0, x0, y1, x1, class scores [B, A, C])``;
            by default read from a keras-hub detector (RetinaNet) through its anchors.
    """

    box: Any
    class_index: int
    iou_threshold: float = 0.5
    decode: Callable | None = None
    kind: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        box = np.asarray(self.box, np.float32)
        if box.shape[-1:] != (4,) or box.ndim not in (1, 2):
            raise ValueError(f"Box.box must be (y0, x0, y1, x1) or [N, 4], got {box.shape}.")
        object.__setattr__(self, "per_sample", ("box",) if box.ndim == 2 else ())

    def bind(self, model):
        if self.decode is None:
            object.__setattr__(self, "decode", keras_hub_decoder(model))
        return self

    def static(self) -> tuple:
        return (float(self.iou_threshold), id(self.decode))

    def values(self):
        return {"box": np.asarray(self.box, np.float32),
                "class_index": _as_index(self.class_index, "Box.class_index")}

    def score(self, outputs, values):
        assert self.decode is not None  # bound
        boxes, scores = self.decode(outputs)
        if getattr(self.decode, "box_format", "yxyx") == "xyxy":
            boxes = tf.gather(boxes, [1, 0, 3, 2], axis=-1)
        box = tf.broadcast_to(tf.reshape(values["box"], [-1, 4]), [tf.shape(boxes)[0], 4])
        iou = _iou(boxes, box)  # [B, A]
        best = tf.argmax(iou, axis=1, output_type=tf.int32)
        best_iou = tf.gather(iou, best, axis=1, batch_dims=1)
        cls = tf.gather(scores, values["class_index"], axis=-1)  # [B, A]
        best_score = tf.gather(cls, best, axis=1, batch_dims=1)
        return tf.where(best_iou >= self.iou_threshold, best_score + best_iou,
                        tf.zeros_like(best_score))

    def classes(self, values, batch):
        return tf.fill([batch], tf.cast(values["class_index"], tf.int32))
