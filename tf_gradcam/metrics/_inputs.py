"""What every faithfulness metric shares: checking maps and images, running the model in
batches for class probabilities, resolving the classes to score, baselines.

(The conventions are in :mod:`tf_gradcam.metrics`.)
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Hashable, Iterator, Sequence, Union

import cv2
import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.engine import checks

DEFAULT_BATCH_SIZE = 32
#: RISE's blurred canvas: an 11 x 11 Gaussian kernel with sigma 5.
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0

Baseline = Union[float, str, np.ndarray]
TargetsLike = Union[None, int, Sequence[int], np.ndarray]

# Compiled metric steps, per model (by id, dropped when the model is collected: the steps hold
# the model only through a weak reference) and per key: calling a metric again on the same
# model reuses its trace.
_STEPS: dict[int, dict[Hashable, Callable]] = {}


class Scorer:
    """Runs the model in batches and returns probabilities ``[M, C]`` float64."""

    def __init__(self, model: Callable, apply_softmax: bool | str, batch_size: int) -> None:
        if apply_softmax not in ("auto", True, False):
            raise ValueError(f"apply_softmax must be 'auto', True or False, got {apply_softmax!r}.")
        checks.positive_int(batch_size, "batch_size")
        if not callable(model):
            raise TypeError(
                f"model must be a keras.Model or a callable, got {type(model).__name__}."
            )
        self.model = model
        self.batch_size = int(batch_size)
        self.softmax: bool | None = None if apply_softmax == "auto" else bool(apply_softmax)
        if self.softmax is None and ends_in_squashing(model):
            self.softmax = False
        self.num_classes: int | None = None

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.model, keras.Model):
            out = self.model.predict_on_batch(x)
        else:
            out = self.model(x)
        if isinstance(out, (list, tuple, dict)):
            raise ValueError(
                "The metrics need a model with one [N, classes] output; this one has several."
            )
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float64)
        if out.ndim != 2 or out.shape[0] != len(x):
            raise ValueError(
                f"The metrics need a model whose output is [N, classes]; got shape {out.shape} "
                f"for {len(x)} images."
            )
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._raw(x)
        if self.softmax is None:  # "auto" without a squashing head: look at the numbers once
            rows_are_probs = (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
            self.softmax = not rows_are_probs
        self.num_classes = out.shape[1]
        if not self.softmax:
            return out
        z = out - out.max(axis=1, keepdims=True)  # stable: exp never overflows
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def batches(
        self, n: int, make: Callable[[np.ndarray], np.ndarray]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, probabilities)`` for items ``0..n-1`` built by ``make(indices)``."""
        for start in range(0, n, self.batch_size):
            idx = np.arange(start, min(start + self.batch_size, n))
            yield idx, self(make(idx))

    def decide(self, sample: np.ndarray) -> None:
        """Settle ``apply_softmax="auto"`` on real inputs (the first batch of ``sample``), so
        that a compiled step (:meth:`compile`) knows whether to apply a softmax."""
        if self.softmax is None or self.num_classes is None:
            self(sample[: self.batch_size])

    def compile(
        self, build: Callable[..., tuple[tf.Tensor, dict]], key: Hashable = None
    ) -> Callable[..., tuple[np.ndarray, dict]]:
        """One compiled step: ``run(*arrays) -> (probabilities [B, C] float64, aux)``.

        ``build(*tensors) -> (images [B, ...], aux dict of tensors)`` makes the perturbed batch
        in-graph; a ``keras.Model`` then runs on it inside the same ``tf.function`` (its
        probabilities taken as :meth:`__call__` takes them), any other callable on the host.
        Call :meth:`decide` first. Traced once per input signature (``reduce_retracing``: a
        smaller last chunk makes the batch axis unknown once, not once per size). With a
        ``key`` (every static choice ``build`` depends on), the step is kept for the model and
        reused by later calls with the same key.
        """
        if self.softmax is None:
            raise RuntimeError("Scorer.decide() must run before Scorer.compile().")
        in_graph = isinstance(self.model, keras.Model)
        step = None
        cache: dict[Hashable, Callable] = {}
        if in_graph and key is not None:
            if id(self.model) not in _STEPS:
                _STEPS[id(self.model)] = {}
                weakref.finalize(self.model, _STEPS.pop, id(self.model), None)
            cache = _STEPS[id(self.model)]
            step = cache.get((key, self.softmax))
        if step is None:
            step = _make_step(build, weakref.ref(self.model) if in_graph else None,
                              bool(self.softmax))
            if in_graph and key is not None:
                cache[(key, self.softmax)] = step

        def run(*arrays: Any) -> tuple[np.ndarray, dict]:
            out, aux = step(*arrays)
            aux = {k: v.numpy() for k, v in aux.items()}
            if in_graph:
                return out.numpy(), aux
            return self(out.numpy()), aux

        return run


def _make_step(build: Callable, model_ref: Any, softmax: bool) -> Callable:
    @tf.function(reduce_retracing=True)
    def step(*args):
        x, aux = build(*args)
        if model_ref is None:  # a plain callable: scored on the host
            return x, aux
        model = model_ref()
        out = model(x, training=False)
        if isinstance(out, (list, tuple, dict)) or out.shape.rank != 2:
            raise ValueError(
                "The metrics need a model with one [N, classes] output; this one returns "
                f"{type(out).__name__} {getattr(out, 'shape', '')}."
            )
        out = tf.cast(out, tf.float64)
        return (tf.nn.softmax(out, axis=-1) if softmax else out), aux

    return step


def ends_in_squashing(model: Any) -> bool:
    """Whether the model's output goes through a softmax/sigmoid layer or activation."""
    if not isinstance(model, keras.Model):
        return False
    from tf_gradcam.choose.scores import logit_overrides

    try:
        return bool(logit_overrides(model))
    except Exception:  # a model the graph walker does not understand: decide on the numbers
        return False


def resolve_targets(
    targets: TargetsLike,
    explanation_targets: np.ndarray | None,
    scorer: Scorer,
    images: np.ndarray,
) -> np.ndarray:
    """``[N] int64`` classes; ``None`` -> the Explanation's or the top class on ``images``.
    Other forms go through the package's one targets resolver (same rules, same messages)."""
    n = len(images)
    if targets is None and explanation_targets is not None and (explanation_targets >= 0).all():
        targets = explanation_targets
    if targets is None:
        top = np.empty(n, np.int64)
        for idx, probs in scorer.batches(n, lambda idx: images[idx]):
            top[idx] = probs.argmax(axis=1)
        return top
    arr = targets_lib.class_indices(targets, n, None)
    if arr.ndim != 1:
        raise ValueError(f"targets must be one int or {n} ints (one class per image); got shape "
                         f"{arr.shape}.")
    if (arr < 0).any():
        raise ValueError(f"Class index {int(arr[arr < 0][0])} is negative.")
    return arr.astype(np.int64)


def labels_or_top(labels: Any, scorer: Scorer, images: np.ndarray, what: str) -> np.ndarray:
    """``[N] int64``: the ground-truth ``labels`` if given, else each image's top class."""
    if labels is None:
        return resolve_targets(None, None, scorer, images)
    arr = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if arr.shape != (len(images),) or not (
        np.issubdtype(arr.dtype, np.integer) or (arr.dtype.kind == "f" and (arr % 1 == 0).all())
    ):
        raise ValueError(
            f"{what} must be [N] = [{len(images)}] integer class indices, got shape {arr.shape} "
            f"and dtype {arr.dtype}."
        )
    return arr.astype(np.int64)


def check_classes(targets: np.ndarray, num_classes: int | None) -> None:
    if num_classes is not None:
        targets_lib.check_range(targets, num_classes)


def explanation_targets(heatmaps: Any) -> np.ndarray | None:
    t = getattr(heatmaps, "targets", None)
    return None if t is None or not hasattr(heatmaps, "heatmaps") else np.asarray(t)


def maps(heatmaps: Any, fn: str, ndim: int | None = None) -> np.ndarray:
    heatmaps = getattr(heatmaps, "heatmaps", heatmaps)
    arr = np.asarray(heatmaps.numpy() if hasattr(heatmaps, "numpy") else heatmaps)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"heatmaps must hold real numbers, got dtype {arr.dtype}.")
    if ndim is not None and arr.ndim != ndim:
        hint = (
            " For one map add the batch axis, e.g. heatmap[None]." if arr.ndim == ndim - 1 else ""
        )
        raise ValueError(f"{fn}() takes heatmaps [N, H, W], got shape {arr.shape}.{hint}")
    if arr.ndim < 2:
        raise ValueError(f"{fn}() takes heatmaps [N, *spatial], got shape {arr.shape}.")
    if len(arr) == 0:
        raise ValueError("heatmaps hold no samples.")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError("heatmaps contain NaN or infinity.")
    return arr


def images_and_maps(images: Any, heatmaps: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(images float32, maps, 1 if images have a channel axis else 0)`` after shape checks."""
    hms = maps(heatmaps, "metric")
    imgs = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    if not (np.issubdtype(imgs.dtype, np.floating) or np.issubdtype(imgs.dtype, np.integer)):
        raise ValueError(f"images must hold real numbers, got dtype {imgs.dtype}.")
    imgs = imgs.astype(np.float32, copy=False)
    if imgs.shape == hms.shape:
        channel = 0
    elif imgs.ndim == hms.ndim + 1 and imgs.shape[:-1] == hms.shape:
        channel = 1
    else:
        raise ValueError(
            f"images {imgs.shape} and heatmaps {hms.shape} do not match: images are "
            "[N, *S, C] (or [N, *S]) and heatmaps [N, *S] at the image's resolution "
            "(an Explanation's heatmaps are upsampled to the input)."
        )
    return imgs, hms, channel


def baseline_fn(
    baseline: Baseline, imgs: np.ndarray, spatial_rank: int
) -> Callable[[int], np.ndarray]:
    """``i -> baseline image [*S, C]`` (broadcastable), computed per image on demand."""
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, 'blur' or an array, got {baseline!r}.")
        if spatial_rank != 2:
            raise ValueError(
                f"baseline='blur' needs 2D images; these have {spatial_rank} spatial axes."
            )

        def blur(i: int) -> np.ndarray:
            img = imgs[i]
            planes = img[..., None] if img.ndim == 2 else img
            out = np.stack(
                [
                    cv2.GaussianBlur(
                        np.ascontiguousarray(planes[..., c]), (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA
                    )
                    for c in range(planes.shape[-1])
                ],
                axis=-1,
            )
            return out.reshape(img.shape)

        return blur
    if isinstance(baseline, (bool, np.bool_)):
        raise ValueError(f"baseline must be a number, 'blur' or an array, got {baseline!r}.")
    arr = np.asarray(baseline, np.float32)
    try:
        full = np.broadcast_to(arr, imgs.shape) if arr.ndim == imgs.ndim else None
        one = None if full is not None else np.broadcast_to(arr, imgs.shape[1:])
    except ValueError:
        raise ValueError(
            f"baseline of shape {arr.shape} does not broadcast to images {imgs.shape}."
        ) from None
    if not np.isfinite(arr).all():
        raise ValueError("baseline contains NaN or infinity.")
    if full is not None:
        return lambda i: full[i]
    assert one is not None
    return lambda i: one




# ----------------------------------------------------------------- shared by the new metrics
def pixel_ranks(hms: np.ndarray) -> np.ndarray:
    """``[N, P] int64``: each pixel's place in its map's saliency order (0 = most salient),
    ties broken in raster order (a stable sort of ``-map``), the order :func:`deletion_curve`
    removes pixels in."""
    flat = hms.reshape(len(hms), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None], axis=1)
    return ranks


def row_seeds(seed: int, tag: int, rows: np.ndarray) -> np.ndarray:
    """``[B, 2] int64`` stateless-RNG seeds: one stream per ``(seed, tag, row)``, so that a
    metric's random draws do not depend on ``batch_size`` or on how the rows are chunked."""
    base = int(np.random.SeedSequence([int(seed), int(tag)]).generate_state(1)[0])
    return np.stack([np.full(len(rows), base, np.int64), np.asarray(rows, np.int64)], axis=1)


def per_row(fn: Callable[[tf.Tensor], tf.Tensor], seeds: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """``fn(seed [2]) -> [...]`` for every row's seed, stacked: ``[B, ...]`` (in-graph)."""
    return tf.map_fn(fn, seeds, fn_output_signature=dtype)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    return int(seed)


def check_verbose(verbose: Any) -> int:
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (a progress bar) or 2 (one line at "
                         f"the end), got {verbose!r}.")
    return int(verbose)


def progress(total: int, verbose: int, unit: str = "image") -> keras.utils.Progbar:
    """A ``keras.utils.Progbar`` over ``total`` items (prints nothing at ``verbose=0``)."""
    return keras.utils.Progbar(total, verbose=check_verbose(verbose), unit_name=unit)
