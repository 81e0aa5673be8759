"""Localization metrics: does the map find the object? No model needed, maps and ground truth.

* :func:`pointing_game` / :func:`pointing_hits`: Zhang et al., "Top-down Neural Attention by
  Excitation Backprop", ECCV 2016;
* :func:`box_iou` and :func:`localization_accuracy`: the Grad-CAM paper's weakly supervised
  localization (Selvaraju et al., ICCV 2017), boxes by :func:`tf_gradcam.localize.bbox`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_gradcam import localize
from tf_gradcam.metrics._inputs import maps

#: The pointing game's tolerance in pixels (Zhang et al. 2016).
POINTING_TOLERANCE = 15


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


def mask_iou(
    heatmaps: Any, gt_masks: Any, threshold: float = localize.DEFAULT_THRESHOLD
) -> np.ndarray:
    """``[N] float64``: IoU of each map's region above ``threshold * max`` with its object mask.

    The region is :func:`tf_gradcam.localize.masks` (every pixel with ``value >= threshold *
    max`` and ``value > 0``, not only the largest segment), the Grad-CAM paper's 15 % by
    default. An empty region and an empty mask have IoU 0.

    Args:
        heatmaps: ``[N, H, W]`` maps (or an Explanation).
        gt_masks: ``[N, H, W] bool`` object masks (:func:`tf_gradcam.data.make_shapes`'s).
        threshold: fraction of each map's maximum, in ``[0, 1]``.
    """
    region = localize.masks(heatmaps, threshold)
    gt = np.asarray(gt_masks.numpy() if hasattr(gt_masks, "numpy") else gt_masks)
    if gt.shape != region.shape:
        raise ValueError(f"gt_masks must be [N, H, W] = {region.shape}, got shape {gt.shape}.")
    gt = gt.astype(bool)
    n = len(region)
    inter = (region & gt).reshape(n, -1).sum(axis=1)
    union = (region | gt).reshape(n, -1).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


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
    hms = maps(heatmaps, "pointing_hits", ndim=3)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)) or not (
            float(tolerance) >= 0):
        raise ValueError(f"tolerance is a distance in pixels >= 0, got {tolerance!r}.")
    tolerance = float(tolerance)
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
