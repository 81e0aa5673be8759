"""Boxes and masks from heatmaps: weakly supervised localization.

The Grad-CAM paper (Selvaraju et al., ICCV 2017, arXiv:1610.02391, section 4.1) localizes an
object by keeping the pixels whose value is at least 15% of the map's maximum and drawing a box
around the single largest connected segment. :func:`bbox` is that rule; :func:`mask` keeps the
thresholded pixels (all of them, or only that segment).

Conventions, shared with :func:`tf_gradcam.data.make_shapes` and :mod:`tf_gradcam.metrics`:

* a heatmap is one 2D map ``[H, W]`` (any real dtype, e.g. one of ``Explanation.heatmaps``);
  the batched helpers take ``[N, H, W]`` (or an :class:`~tf_gradcam.Explanation`);
* a box is ``(y0, x0, y1, x1)`` in pixels, start inclusive, end exclusive, so
  ``heatmap[y0:y1, x0:x1]`` is the region and ``(y1 - y0) * (x1 - x0)`` its area;
* a pixel is kept when ``value >= threshold * max`` **and** ``value > 0``: ``threshold=1``
  keeps the maxima, ``threshold=0`` keeps the map's positive support, and a map with no positive
  value keeps nothing. Its box is then the empty box ``(0, 0, 0, 0)`` (area 0, IoU 0 with
  anything), never an error: a fully suppressed class simply localizes nothing.

Only 2D maps are handled (OpenCV's connected components are 2D). A 1D or 3D map, or a batch
passed to a single-map function, raises a ``ValueError`` that says what to pass instead.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["EMPTY_BOX", "bbox", "bboxes", "mask", "masks"]

#: The box of a map with nothing above the threshold: zero area, IoU 0 with every box.
EMPTY_BOX: tuple[int, int, int, int] = (0, 0, 0, 0)

DEFAULT_THRESHOLD = 0.15


def bbox(
    heatmap: Any, threshold: float = DEFAULT_THRESHOLD, *, connectivity: int = 8
) -> tuple[int, int, int, int]:
    """The box around the largest connected region of ``heatmap >= threshold * max``.

    Args:
        heatmap: ``[H, W]`` real map (NumPy array, tensor or nested list); values need not be
            scaled, only their ratio to the maximum matters.
        threshold: fraction of the maximum in ``[0, 1]``; 0.15 is the Grad-CAM paper's value.
        connectivity: 8 (pixels touching at a corner are connected, OpenCV's default) or 4.

    Returns:
        ``(y0, x0, y1, x1)`` Python ints, end exclusive. The largest region is the one with the
        most pixels; a tie goes to the region holding more total heat, then to the first in
        raster order. :data:`EMPTY_BOX` ``(0, 0, 0, 0)`` when no pixel is positive.

    Raises:
        ValueError: a map that is not 2D, holds NaN or infinity, or a threshold outside [0, 1].
    """
    hm = _check_map(heatmap, "bbox")
    labels, stats, best = _largest_component(hm, threshold, connectivity)
    if best is None:
        return EMPTY_BOX
    left, top, width, height = (int(v) for v in stats[best, :4])
    return (top, left, top + height, left + width)


def mask(
    heatmap: Any,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    largest_only: bool = False,
    connectivity: int = 8,
) -> np.ndarray:
    """``[H, W] bool``: the pixels with ``value >= threshold * max`` (and ``value > 0``).

    Args:
        heatmap: ``[H, W]`` real map.
        threshold: fraction of the maximum in ``[0, 1]``.
        largest_only: keep only the largest connected region (the one :func:`bbox` boxes);
            by default every pixel above the threshold is kept, wherever it is.
        connectivity: 8 or 4, used with ``largest_only``.

    Returns:
        A boolean mask; all ``False`` for a map with no positive value.
    """
    hm = _check_map(heatmap, "mask")
    if not largest_only:
        _check_threshold(threshold)
        return _above(hm, threshold)
    labels, _, best = _largest_component(hm, threshold, connectivity)
    if best is None:
        return np.zeros(hm.shape, bool)
    return labels == best


def bboxes(
    heatmaps: Any, threshold: float = DEFAULT_THRESHOLD, *, connectivity: int = 8
) -> np.ndarray:
    """``[N, 4] int64`` boxes ``(y0, x0, y1, x1)``, one :func:`bbox` per map of ``[N, H, W]``.

    ``heatmaps`` may also be an :class:`~tf_gradcam.Explanation` (its ``heatmaps`` are used).
    Rows of empty maps are ``(0, 0, 0, 0)``.
    """
    hms = _check_batch(heatmaps, "bboxes")
    out = np.zeros((len(hms), 4), np.int64)
    for i, hm in enumerate(hms):
        out[i] = bbox(hm, threshold, connectivity=connectivity)
    return out


def masks(
    heatmaps: Any,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    largest_only: bool = False,
    connectivity: int = 8,
) -> np.ndarray:
    """``[N, H, W] bool``: :func:`mask` of each map of ``[N, H, W]`` (or of an Explanation)."""
    hms = _check_batch(heatmaps, "masks")
    if not largest_only:
        _check_threshold(threshold)
        peak = (
            hms.reshape(len(hms), -1).max(axis=1, initial=0.0) if hms.size else np.zeros(len(hms))
        )
        peak = peak.reshape((-1,) + (1,) * (hms.ndim - 1))
        return (hms >= threshold * peak) & (hms > 0)
    return (
        np.stack([mask(hm, threshold, largest_only=True, connectivity=connectivity) for hm in hms])
        if len(hms)
        else np.zeros(hms.shape, bool)
    )


# ------------------------------------------------------------------------ helpers
def _above(hm: np.ndarray, threshold: float) -> np.ndarray:
    peak = float(hm.max()) if hm.size else 0.0
    if peak <= 0:
        return np.zeros(hm.shape, bool)
    return (hm >= threshold * peak) & (hm > 0)


def _largest_component(hm: np.ndarray, threshold: float, connectivity: int):
    """``(labels [H, W] int32, stats [K, 5], best label or None)`` of the thresholded map."""
    _check_threshold(threshold)
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}.")
    keep = _above(hm, threshold)
    if not keep.any():
        return None, None, None
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        keep.astype(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
    )
    # Label 0 is the background. Largest area first, then most heat, then the lowest label
    # (OpenCV numbers regions in raster order of their first pixel).
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    heat = np.bincount(labels.ravel(), weights=hm.ravel().astype(np.float64), minlength=count)[1:]
    order = np.lexsort((np.arange(1, count), -heat, -areas))
    return labels, stats, int(order[0]) + 1


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not (
            0 <= float(threshold) <= 1):
        raise ValueError(
            f"threshold is a fraction of the map's maximum in [0, 1], got {threshold!r} "
            "(the Grad-CAM paper uses 0.15)."
        )


def _as_array(heatmap: Any) -> np.ndarray:
    heatmap = getattr(heatmap, "heatmaps", heatmap)  # an Explanation
    if hasattr(heatmap, "numpy"):
        heatmap = heatmap.numpy()
    arr = np.asarray(heatmap)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"A heatmap must hold real numbers, got dtype {arr.dtype}.")
    return arr


def _check_finite(arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError("The heatmap contains NaN or infinity: no region can be defined.")


def _check_map(heatmap: Any, fn: str) -> np.ndarray:
    arr = _as_array(heatmap)
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 3:
            batched = {"bbox": "bboxes", "mask": "masks"}[fn]
            hint = (
                f" A batch [N, H, W] goes to {batched}(); for one [H, W, 1] map drop the "
                "channel axis, e.g. heatmap[..., 0]."
            )
        elif arr.ndim in (1, 4):
            hint = " Boxes and masks are defined for 2D maps only (not 1D or 3D maps)."
        raise ValueError(f"{fn}() takes one 2D heatmap [H, W], got shape {arr.shape}.{hint}")
    _check_finite(arr)
    return arr


def _check_batch(heatmaps: Any, fn: str) -> np.ndarray:
    arr = _as_array(heatmaps)
    if arr.ndim != 3:
        hint = (
            " For one map [H, W] add the batch axis, e.g. heatmap[None]."
            if arr.ndim == 2
            else (" Boxes and masks are defined here for 2D maps only.")
        )
        raise ValueError(
            f"{fn}() takes a batch of 2D heatmaps [N, H, W], got shape {arr.shape}.{hint}"
        )
    _check_finite(arr)
    return arr
