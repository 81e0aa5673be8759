"""How good is a saliency map? Localization and faithfulness metrics from the CAM literature.

Localization (no model needed; maps and ground truth only):

* :func:`pointing_game` / :func:`pointing_hits`: does the map's maximum fall on the object
  (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016)?
* :func:`box_iou` and :func:`localization_accuracy`: the Grad-CAM paper's weakly supervised
  localization (Selvaraju et al., ICCV 2017): box around the largest region above 15% of the
  maximum (:func:`tf_gradcam.localize.bbox`), correct when its IoU with the ground truth is >= 0.5.

Faithfulness (the model is run on perturbed images):

* :func:`deletion_auc` / :func:`insertion_auc` (and the full curves :func:`deletion_curve`,
  :func:`insertion_curve`): Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC 2018. Lower deletion and higher insertion AUC are better.
* :func:`average_drop` and :func:`increase_in_confidence`: Chattopadhyay et al.,
  "Grad-CAM++", WACV 2018. Lower average drop and higher increase are better.

Conventions:

* heatmaps are ``[N, *S]`` (``S`` the input's spatial shape, e.g. ``[H, W]``): the
  ``heatmaps`` of an :class:`~tf_gradcam.Explanation` (which may be passed whole), upsampled to
  the input. Boxes are ``(y0, x0, y1, x1)`` pixels, end exclusive; masks are ``[N, H, W] bool``
  (the format of :func:`tf_gradcam.data.make_shapes`).
* images are ``[N, *S, C]`` (or ``[N, *S]`` for a model without a channel axis) in the model's
  own input space: pass what you would pass to ``model.predict`` (a baseline of 0 means 0 there).
* the score is the **probability** of the target class, as in the papers. ``apply_softmax``
  says how to get it from the model's output ``[N, C]``: ``"auto"`` (default) uses the output
  as is when the model ends in a softmax (or sigmoid) layer or activation, found by walking the
  graph into nested models, or when the outputs of the first batch are non-negative rows that
  sum to 1; otherwise it applies a softmax. ``True`` always applies a softmax (a logits model),
  ``False`` never does (a probabilities model).
* ``targets``: ``None`` is each image's top class on the unperturbed image (or, when an
  :class:`~tf_gradcam.Explanation` is passed as ``heatmaps``, the classes it explained, unless
  a callable chose its scores), an int is one class for all, or a sequence of ``N`` ints.
* the model runs on at most ``batch_size`` images at a time, built on the fly: memory stays
  ``O(batch_size * image size)`` beyond the inputs themselves, whatever ``steps`` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

import cv2
import keras
import numpy as np

from tf_gradcam import localize
from tf_gradcam.core import checks

__all__ = [
    "PerturbationCurve",
    "average_drop",
    "box_iou",
    "deletion_auc",
    "deletion_curve",
    "increase_in_confidence",
    "insertion_auc",
    "insertion_curve",
    "localization_accuracy",
    "pointing_game",
    "pointing_hits",
]

#: The pointing game's tolerance in pixels (Zhang et al. 2016).
POINTING_TOLERANCE = 15
DEFAULT_STEPS = 50
DEFAULT_BATCH_SIZE = 32
#: RISE's blurred canvas: an 11 x 11 Gaussian kernel with sigma 5.
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0

Baseline = Union[float, str, np.ndarray]
TargetsLike = Union[None, int, Sequence[int], np.ndarray]


# ============================================================================ localization
def box_iou(box_a: Any, box_b: Any) -> float | np.ndarray:
    """Intersection over union of boxes ``(y0, x0, y1, x1)``, end exclusive.

    Args:
        box_a, box_b: ``[..., 4]`` arrays that broadcast against each other (e.g. ``[N, 4]``
            with ``[N, 4]`` pairs boxes row by row; ``[N, 4]`` with ``[4]`` compares all with one).

    Returns:
        ``[...]`` float64 IoU in ``[0, 1]`` (a Python float for two single boxes). A box with
        ``y1 <= y0`` or ``x1 <= x0`` is empty (area 0), so its IoU with anything is 0, also with
        another empty box. Boxes that only touch (``a.x1 == b.x0``) share no pixel: IoU 0.
    """
    a = _as_boxes(box_a, "box_a")
    b = _as_boxes(box_b, "box_b")
    area_a = _area(a)
    area_b = _area(b)
    ih = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iw = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ih * iw
    union = area_a + area_b - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return float(iou) if iou.ndim == 0 else iou


def localization_accuracy(
    heatmaps: Any, gt_boxes: Any, threshold: float = localize.DEFAULT_THRESHOLD, iou: float = 0.5
) -> float:
    """Fraction of maps whose box overlaps the ground truth with IoU >= ``iou``.

    The Grad-CAM paper's weakly supervised localization (Selvaraju et al., ICCV 2017, section
    4.1, following the ILSVRC localization criterion): the box is :func:`tf_gradcam.localize.bbox`
    of each map at ``threshold`` (15% of the maximum in the paper). This is the box part only;
    ILSVRC's top-1 localization also requires the predicted class to be right (combine it with
    your own correctness mask: ``mean(correct & (box_iou(...) >= 0.5))``).

    Args:
        heatmaps: ``[N, H, W]`` maps (or an Explanation).
        gt_boxes: ``[N, 4]`` one ground-truth box per image ``(y0, x0, y1, x1)``, end exclusive.
        threshold: fraction of each map's maximum, in ``[0, 1]``.
        iou: IoU needed to count as localized, in ``[0, 1]``.

    Returns:
        A float in ``[0, 1]``. An all-zero map gives the empty box: never localized.
    """
    if not 0 <= iou <= 1:
        raise ValueError(f"iou must be in [0, 1], got {iou!r}.")
    boxes = localize.bboxes(heatmaps, threshold)
    gt = _as_boxes(gt_boxes, "gt_boxes")
    if gt.shape != boxes.shape:
        raise ValueError(
            f"gt_boxes must be [N, 4] with N = {len(boxes)} maps, got shape {gt.shape}."
        )
    return float(np.mean(box_iou(boxes, gt) >= iou))


def pointing_hits(
    heatmaps: Any, ground_truth: Any, tolerance: float = POINTING_TOLERANCE
) -> np.ndarray:
    """``[N] bool``: whether each map's maximum points at its object, within ``tolerance`` pixels.

    The pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
    ECCV 2016): a hit when the map's most salient pixel lies on the object or at most
    ``tolerance`` pixels (Euclidean, 15 in the paper) from one of its pixels.

    Args:
        heatmaps: ``[N, H, W]`` maps (or an Explanation). The point is the first maximum in
            raster order; a map with no positive value points nowhere: a miss.
        ground_truth: ``[N, H, W] bool`` object masks, or ``[N, 4]`` boxes ``(y0, x0, y1, x1)``
            end exclusive (an empty box or mask is never hit).
        tolerance: pixels, ``>= 0``; 0 requires the point to be on the object itself.
    """
    hms = _maps(heatmaps, "pointing_hits", ndim=3)
    if isinstance(tolerance, bool) or not np.isscalar(tolerance) or not tolerance >= 0:
        raise ValueError(f"tolerance is a distance in pixels >= 0, got {tolerance!r}.")
    n, h, w = hms.shape
    flat = hms.reshape(n, -1)
    idx = np.argmax(flat, axis=1) if flat.shape[1] else np.zeros(n, np.int64)
    peak = flat[np.arange(n), idx] if flat.shape[1] else np.zeros(n)
    py, px = np.divmod(idx, max(w, 1))
    points = peak > 0
    gt = _ground_truth(ground_truth, n, (h, w))
    if gt.ndim == 2:  # boxes: distance from the point to the nearest pixel of the box
        y0, x0, y1, x1 = gt.T
        dy = np.maximum.reduce([y0 - py, np.zeros(n), py - (y1 - 1)])
        dx = np.maximum.reduce([x0 - px, np.zeros(n), px - (x1 - 1)])
        inside = (dy**2 + dx**2 <= tolerance**2) & (y1 > y0) & (x1 > x0)
        return points & inside
    t = int(np.floor(tolerance))
    hits = np.zeros(n, bool)
    for i in np.flatnonzero(points):
        ya, yb = max(py[i] - t, 0), min(py[i] + t + 1, h)
        xa, xb = max(px[i] - t, 0), min(px[i] + t + 1, w)
        yy, xx = np.ogrid[ya:yb, xa:xb]
        disk = (yy - py[i]) ** 2 + (xx - px[i]) ** 2 <= tolerance**2
        hits[i] = bool((gt[i, ya:yb, xa:xb] & disk).any())
    return hits


def pointing_game(heatmaps: Any, ground_truth: Any, tolerance: float = POINTING_TOLERANCE) -> float:
    """The pointing game's hit rate in ``[0, 1]``: the mean of :func:`pointing_hits`.

    Zhang et al., ECCV 2016 (the per-category mean of that paper is this mean taken over the
    images of each category).
    """
    return float(np.mean(pointing_hits(heatmaps, ground_truth, tolerance)))


# ============================================================================ faithfulness
@dataclass
class PerturbationCurve:
    """A deletion or insertion curve for ``N`` images sampled at ``S + 1`` points.

    Attributes:
        fractions: ``[S + 1] float64`` the fraction of pixels removed (deletion) or inserted
            (insertion) at each point, from 0 to 1: the x axis.
        scores: ``[N, S + 1] float64`` the target class's probability at each point.
        aucs: ``[N] float64`` area under each curve (trapezoid rule over ``fractions``), in [0, 1].
        targets: ``[N] int64`` the class scored per image.
    """

    fractions: np.ndarray
    scores: np.ndarray
    aucs: np.ndarray
    targets: np.ndarray

    @property
    def auc(self) -> float:
        """The mean AUC over the images."""
        return float(np.mean(self.aucs))


def deletion_curve(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> PerturbationCurve:
    r"""The deletion curve (Petsiuk et al., RISE, BMVC 2018).

    Pixels are removed (set to the ``baseline``) in order of decreasing saliency, all channels
    of a pixel at once; after each of ``steps`` equal steps the target class's probability is
    recorded. Point ``k`` has :math:`\mathrm{round}(kP/S)` of the ``P`` pixels removed; ties in
    the map are broken in raster order. A map that finds the evidence makes the probability
    fall fast: **lower AUC is better**.

    Args:
        model: a ``keras.Model`` with one input and one ``[N, C]`` output (or any callable
            ``images -> [N, C]``).
        images: ``[N, *S, C]`` (or ``[N, *S]``) float images in the model's input space.
        heatmaps: ``[N, *S]`` maps at the image's resolution, any real values (only their order
            matters), or an Explanation.
        targets: ``None`` (top class, or the Explanation's targets), an int, or ``N`` ints.
        steps: number of steps ``S >= 1``; the curve has ``S + 1`` points. RISE used one step
            per 224 pixels (224 steps on a 224 x 224 image); the cost is ``N (S + 1)`` images.
        baseline: what a removed pixel becomes: a number (default 0, RISE's deletion), ``"blur"``
            (the image blurred by an 11 x 11 Gaussian of sigma 5, 2D images only), or an array
            broadcastable to ``images``.
        batch_size: images per model call.
        apply_softmax: ``"auto"``, ``True`` or ``False`` (see the module docstring).

    Returns:
        A :class:`PerturbationCurve`.
    """
    return _perturbation_curve(
        model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, insert=False
    )


def insertion_curve(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = "blur",
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> PerturbationCurve:
    """The insertion curve (Petsiuk et al., RISE, BMVC 2018).

    Starting from the ``baseline`` (by default RISE's blurred copy of the image), the image's
    pixels are put back in order of decreasing saliency; the target class's probability is
    recorded after each step. **Higher AUC is better.** Arguments as :func:`deletion_curve`.
    """
    return _perturbation_curve(
        model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, insert=True
    )


def deletion_auc(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    """Mean area under the deletion curve, in ``[0, 1]`` (lower is better).

    The x axis is the fraction of pixels removed, from 0 to 1; the y axis the target class's
    softmax probability; the area is taken by the trapezoid rule. See :func:`deletion_curve`
    (RISE, Petsiuk et al., BMVC 2018) for the arguments and per-image values.
    """
    return deletion_curve(
        model,
        images,
        heatmaps,
        targets,
        steps=steps,
        baseline=baseline,
        batch_size=batch_size,
        apply_softmax=apply_softmax,
    ).auc


def insertion_auc(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = "blur",
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    """Mean area under the insertion curve, in ``[0, 1]`` (higher is better).

    See :func:`insertion_curve` (RISE, Petsiuk et al., BMVC 2018).
    """
    return insertion_curve(
        model,
        images,
        heatmaps,
        targets,
        steps=steps,
        baseline=baseline,
        batch_size=batch_size,
        apply_softmax=apply_softmax,
    ).auc


def average_drop(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    r"""Average drop in confidence, in percent (Chattopadhyay et al., Grad-CAM++, WACV 2018).

    .. math::
        \mathrm{Average\ Drop} = \frac{100}{N} \sum_i \frac{\max(0, Y_i^c - O_i^c)}{Y_i^c}

    ``Y^c`` is the target class's probability on the image, ``O^c`` on the explanation map
    ``image * heatmap`` (the map broadcast over the channels). A map that keeps what the model
    needs loses little: **lower is better**. An image with ``Y^c = 0`` contributes 0.

    Args:
        model, images, targets, batch_size, apply_softmax: as :func:`deletion_curve`.
        heatmaps: ``[N, *S]`` maps in ``[0, 1]`` at the image's resolution (an Explanation's
            ``heatmaps`` are), or an Explanation.

    Returns:
        A float in ``[0, 100]``.
    """
    y, o = _confidence_pair(model, images, heatmaps, targets, batch_size, apply_softmax)
    drop = np.maximum(0.0, y - o)
    ratio = np.where(y > 0, drop / np.where(y > 0, y, 1.0), 0.0)
    return float(100.0 * np.mean(ratio))


def increase_in_confidence(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    r"""Increase in confidence, in percent (Chattopadhyay et al., Grad-CAM++, WACV 2018).

    .. math::
        \mathrm{Increase\ in\ Confidence} = \frac{100}{N} \sum_i \mathbb{1}[Y_i^c < O_i^c]

    The share of images whose target probability *rises* when only the explanation map
    ``image * heatmap`` is shown: **higher is better**. Arguments as :func:`average_drop`.

    Returns:
        A float in ``[0, 100]``.
    """
    y, o = _confidence_pair(model, images, heatmaps, targets, batch_size, apply_softmax)
    return float(100.0 * np.mean(y < o))


# ============================================================================ model scoring
class _Scorer:
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
        if self.softmax is None and _ends_in_squashing(model):
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


def _ends_in_squashing(model: Any) -> bool:
    """Whether the model's output goes through a softmax/sigmoid layer or activation."""
    if not isinstance(model, keras.Model):
        return False
    from tf_gradcam.core import targets as targets_lib

    try:
        return bool(targets_lib.logit_overrides(model))
    except Exception:  # a model the graph walker does not understand: decide on the numbers
        return False


def _resolve_targets(
    targets: TargetsLike,
    explanation_targets: np.ndarray | None,
    scorer: _Scorer,
    images: np.ndarray,
) -> np.ndarray:
    """``[N] int64`` classes; ``None`` -> the Explanation's or the top class on ``images``."""
    n = len(images)
    if targets is None and explanation_targets is not None and (explanation_targets >= 0).all():
        targets = explanation_targets
    if targets is None:
        top = np.empty(n, np.int64)
        for idx, probs in scorer.batches(n, lambda idx: images[idx]):
            top[idx] = probs.argmax(axis=1)
        return top
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError("targets must be None, an int or a sequence of ints.")
    if isinstance(targets, (int, np.integer)):
        arr = np.full(n, int(targets), np.int64)
    else:
        arr = np.asarray(targets)
        if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"targets must be one int or {n} ints (one class per image); got shape {arr.shape} "
                f"and dtype {arr.dtype}."
            )
        arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"Class index {int(arr[arr < 0][0])} is negative.")
    return arr


def _check_classes(targets: np.ndarray, num_classes: int | None) -> None:
    if num_classes is not None and (targets >= num_classes).any():
        bad = int(targets[targets >= num_classes][0])
        raise ValueError(
            f"Class index {bad} is out of range for a model with {num_classes} outputs: use 0 "
            f"to {num_classes - 1}."
        )


# ============================================================================ internals
def _perturbation_curve(
    model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, *, insert: bool
) -> PerturbationCurve:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")
    expl_targets = _explanation_targets(heatmaps)
    imgs, hms, channel = _images_and_maps(images, heatmaps)
    n = len(imgs)
    spatial = hms.shape[1:]
    pixels = int(np.prod(spatial))
    counts = np.round(np.linspace(0, pixels, int(steps) + 1)).astype(np.int64)
    fractions = counts / max(pixels, 1)
    base_of = _baseline_fn(baseline, imgs, len(spatial))
    scorer = _Scorer(model, apply_softmax, batch_size)
    chosen = _resolve_targets(targets, expl_targets, scorer, imgs)

    points = int(steps) + 1
    scores = np.empty((n, points), np.float64)
    current: dict[str, Any] = {"i": -1}

    def sample(i: int) -> tuple[np.ndarray, np.ndarray]:
        # Ranks and baseline of one image, computed once: the (image, step) pairs come in order.
        if current["i"] != i:
            order = np.argsort(-hms[i].ravel(), kind="stable")
            rank = np.empty(pixels, np.int64)
            rank[order] = np.arange(pixels)
            current.update(i=i, rank=rank.reshape(spatial + (1,) * channel), base=base_of(i))
        return current["rank"], current["base"]

    def make(idx: np.ndarray) -> np.ndarray:
        batch = np.empty((len(idx),) + imgs.shape[1:], np.float32)
        for j, flat in enumerate(idx):
            i, k = divmod(int(flat), points)
            rank, base = sample(i)
            changed = rank < counts[k]
            batch[j] = (
                np.where(changed, imgs[i], base) if insert else np.where(changed, base, imgs[i])
            )
        return batch

    for idx, probs in scorer.batches(n * points, make):
        if not len(idx):
            continue
        _check_classes(chosen, scorer.num_classes)
        i, k = np.divmod(idx, points)
        scores[i, k] = probs[np.arange(len(idx)), chosen[i]]
    widths = np.diff(fractions)
    aucs = ((scores[:, 1:] + scores[:, :-1]) / 2 * widths).sum(axis=1)
    return PerturbationCurve(fractions=fractions, scores=scores, aucs=aucs, targets=chosen)


def _confidence_pair(model, images, heatmaps, targets, batch_size, apply_softmax):
    """``(Y [N], O [N])``: target probabilities on the images and on ``image * heatmap``."""
    expl_targets = _explanation_targets(heatmaps)
    imgs, hms, channel = _images_and_maps(images, heatmaps)
    lo, hi = (float(hms.min()), float(hms.max())) if hms.size else (0.0, 0.0)
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"heatmaps must be in [0, 1] to mask the images (got values in [{lo:.3g}, {hi:.3g}]); "
            "scale each map by its maximum first (an Explanation's heatmaps already are)."
        )
    scorer = _Scorer(model, apply_softmax, batch_size)
    chosen = _resolve_targets(targets, expl_targets, scorer, imgs)
    n = len(imgs)
    y = np.empty(n, np.float64)
    o = np.empty(n, np.float64)
    maps = hms.reshape(hms.shape + (1,) * channel)
    for dest, make in ((y, lambda idx: imgs[idx]), (o, lambda idx: imgs[idx] * maps[idx])):
        for idx, probs in scorer.batches(n, make):
            _check_classes(chosen, scorer.num_classes)
            dest[idx] = probs[np.arange(len(idx)), chosen[idx]]
    return y, o


def _explanation_targets(heatmaps: Any) -> np.ndarray | None:
    t = getattr(heatmaps, "targets", None)
    return None if t is None or not hasattr(heatmaps, "heatmaps") else np.asarray(t)


def _maps(heatmaps: Any, fn: str, ndim: int | None = None) -> np.ndarray:
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


def _images_and_maps(images: Any, heatmaps: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(images float32, maps, 1 if images have a channel axis else 0)`` after shape checks."""
    hms = _maps(heatmaps, "metric")
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


def _baseline_fn(
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
    return (lambda i: full[i]) if full is not None else (lambda i: one)


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    arr = np.asarray(boxes.numpy() if hasattr(boxes, "numpy") else boxes, np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 4:
        raise ValueError(
            f"{name} must be boxes [..., 4] as (y0, x0, y1, x1), got shape {arr.shape}."
        )
    return arr


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _ground_truth(gt: Any, n: int, size: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(gt.numpy() if hasattr(gt, "numpy") else gt)
    if arr.ndim == 2 and arr.shape == (n, 4):
        return arr.astype(np.int64)
    if arr.ndim == 3 and arr.shape == (n,) + size:
        return arr.astype(bool)
    raise ValueError(
        f"ground_truth must be masks [N, H, W] = {(n,) + size} or boxes [N, 4] = {(n, 4)}, "
        f"got shape {arr.shape}."
    )
