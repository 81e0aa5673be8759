"""How alike are two maps? The similarity measures of the sanity checks (Adebayo et al.,
"Sanity Checks for Saliency Maps", NeurIPS 2018), batched over pairs of maps.

* :func:`rank_correlation`: Spearman's rank correlation of the flattened maps (Pearson's of
  their ranks, average ranks for ties), optionally of their absolute values (Adebayo's "abs"
  and "no abs" variants; for non-negative maps such as every CAM the two agree).
* :func:`structural_similarity`: SSIM (Wang et al. 2004) of the maps min-max normalised to
  ``[0, 1]``: ``tf.image.ssim`` with an 11 x 11 Gaussian window of sigma 1.5, ``K1 = 0.01``,
  ``K2 = 0.03`` (scikit-image's Gaussian SSIM without its ``121 / 120`` sample-covariance
  factor, a 1e-4-level difference). ``max_val=1`` is the standard SSIM of ``[0, 1]`` maps;
  Adebayo's numbers came from scikit-image's float range of that time, ``max_val=2``.
* :func:`hog_similarity`: Spearman's correlation of the two maps' histograms of oriented
  gradients (16 x 16-pixel cells, 9 unsigned orientations, blocks of 3 x 3 cells, L2-Hys),
  the third measure of Adebayo's notebooks: it compares where the edges of the maps run.

A constant map has no ranking: its correlations are NaN (reported, never replaced by 0). Two
constant maps have SSIM 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_gradcam.metrics._inputs import maps

__all__ = ["hog_similarity", "rank_correlation", "structural_similarity"]

SSIM_FILTER, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
HOG_CELL, HOG_BLOCK, HOG_BINS, HOG_CLIP = 16, 3, 9, 0.2


def rank_correlation(a: Any, b: Any, *, absolute: bool = False) -> np.ndarray:
    """``[N] float64``: Spearman's rank correlation of each pair of maps ``a[i]``, ``b[i]``.

    Args:
        a, b: ``[N, ...]`` maps of the same shape (or Explanations).
        absolute: correlate ``|a|`` and ``|b|``.

    Returns:
        Values in ``[-1, 1]``; NaN where either map is constant.
    """
    x, y = _pair(a, b, "rank_correlation")
    if absolute:
        x, y = np.abs(x), np.abs(y)
    return spearman_tf(tf.constant(x.reshape(len(x), -1), tf.float64),
                       tf.constant(y.reshape(len(y), -1), tf.float64)).numpy()


def structural_similarity(a: Any, b: Any, *, max_val: float = 1.0) -> np.ndarray:
    """``[N] float64``: SSIM of each pair of 2D maps after min-max normalising each to [0, 1].

    Maps smaller than 11 pixels on a side use a window of their size.
    """
    x, y = _pair(a, b, "structural_similarity", ndim=3)
    size = min(SSIM_FILTER, x.shape[1], x.shape[2])
    out = tf.image.ssim(
        tf.constant(_minmax(x)[..., None], tf.float32),
        tf.constant(_minmax(y)[..., None], tf.float32),
        max_val=float(max_val), filter_size=size, filter_sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2,
    )
    return out.numpy().astype(np.float64)


def hog_similarity(a: Any, b: Any, *, cell: int | None = None) -> np.ndarray:
    """``[N] float64``: Spearman's correlation of the maps' HOG descriptors (:func:`hog`).

    ``cell``: pixels per cell side; default 16 (Adebayo's), or a quarter of the shorter side
    for maps under 64 pixels (at least 2), so that small maps still have 4 x 4 cells. NaN where a
    map has no gradient (a constant map) or is smaller than one block of cells.
    """
    x, y = _pair(a, b, "hog_similarity", ndim=3)
    if cell is None:
        cell = max(2, min(HOG_CELL, min(x.shape[1:]) // 4))
    fx, fy = hog(_minmax(x), cell=cell), hog(_minmax(y), cell=cell)
    if fx.shape[1] == 0:
        return np.full(len(x), np.nan)
    return spearman_tf(tf.constant(fx), tf.constant(fy)).numpy()


def hog(images: np.ndarray, *, cell: int = HOG_CELL, block: int = HOG_BLOCK,
        bins: int = HOG_BINS) -> np.ndarray:
    """``[N, D] float64`` histograms of oriented gradients of ``[N, H, W]`` grey images.

    Central-difference gradients (0 on the border rows / columns), unsigned orientations in
    ``[0, 180)`` degrees in ``bins`` bins, each pixel voting its gradient magnitude; per cell of
    ``cell x cell`` pixels the mean vote; blocks of ``block x block`` cells, one cell apart,
    each L2-normalised, clipped at 0.2 and normalised again (L2-Hys), concatenated.
    """
    imgs = np.asarray(images, np.float64)
    n, h, w = imgs.shape
    gy = np.zeros_like(imgs)
    gx = np.zeros_like(imgs)
    gy[:, 1:-1] = imgs[:, 2:] - imgs[:, :-2]
    gx[:, :, 1:-1] = imgs[:, :, 2:] - imgs[:, :, :-2]
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    which = np.minimum((angle / (180.0 / bins)).astype(np.int64), bins - 1)
    cy, cx = h // cell, w // cell
    if cy < block or cx < block:
        return np.zeros((n, 0))
    votes = np.zeros((n, cy * cell, cx * cell, bins))
    np.put_along_axis(votes, which[:, : cy * cell, : cx * cell, None],
                      magnitude[:, : cy * cell, : cx * cell, None], axis=-1)
    cells = votes.reshape(n, cy, cell, cx, cell, bins).mean(axis=(2, 4))  # [N, cy, cx, bins]
    blocks = []
    eps = 1e-5
    for by in range(cy - block + 1):
        for bx in range(cx - block + 1):
            v = cells[:, by: by + block, bx: bx + block].reshape(n, -1)
            v = v / np.sqrt((v**2).sum(axis=1, keepdims=True) + eps**2)
            v = np.minimum(v, HOG_CLIP)
            v = v / np.sqrt((v**2).sum(axis=1, keepdims=True) + eps**2)
            blocks.append(v)
    return np.concatenate(blocks, axis=1)


# ------------------------------------------------------------------------ in TensorFlow
def average_ranks(x: tf.Tensor) -> tf.Tensor:
    """``[N, D]`` 1-based ranks of each row of ``x [N, D]``, tied values sharing the mean of
    their positions (``scipy.stats.rankdata(method="average")`` row by row)."""
    n, d = tf.shape(x)[0], tf.shape(x)[1]
    order = tf.argsort(x, axis=1, stable=True)
    ordered = tf.gather(x, order, batch_dims=1)
    starts = tf.concat([tf.ones([n, 1], tf.bool), ordered[:, 1:] != ordered[:, :-1]], axis=1)
    group = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [N, D] tie group of each position
    ids = group + tf.range(n)[:, None] * d  # unique across rows
    positions = tf.cast(tf.tile(tf.range(d)[None], [n, 1]), x.dtype)
    mean = tf.math.unsorted_segment_mean(tf.reshape(positions, [-1]), tf.reshape(ids, [-1]), n * d)
    sorted_ranks = tf.reshape(tf.gather(mean, tf.reshape(ids, [-1])), [n, d]) + 1
    inverse = tf.argsort(order, axis=1, stable=True)
    return tf.gather(sorted_ranks, inverse, batch_dims=1)


def pearson_tf(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``[N]`` Pearson correlation of the rows of ``x`` and ``y`` (NaN for a constant row)."""
    x = x - tf.reduce_mean(x, axis=1, keepdims=True)
    y = y - tf.reduce_mean(y, axis=1, keepdims=True)
    sxx = tf.reduce_sum(x * x, axis=1)
    syy = tf.reduce_sum(y * y, axis=1)
    ok = (sxx > 0) & (syy > 0)
    r = tf.reduce_sum(x * y, axis=1) / tf.sqrt(tf.where(ok, sxx * syy, tf.ones_like(sxx)))
    nan = tf.fill(tf.shape(r), tf.constant(np.nan, r.dtype))
    return tf.where(ok, tf.clip_by_value(r, -1.0, 1.0), nan)


def spearman_tf(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``[N]`` Spearman correlation of the rows of ``x`` and ``y`` ``[N, D]``."""
    return pearson_tf(average_ranks(x), average_ranks(y))


# ------------------------------------------------------------------------ helpers
def _pair(a: Any, b: Any, fn: str, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = maps(a, fn, ndim).astype(np.float64)
    y = maps(b, fn, ndim).astype(np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{fn}() compares maps of one shape, got {x.shape} and {y.shape}.")
    return x, y


def _minmax(x: np.ndarray) -> np.ndarray:
    """Each map scaled to ``[0, 1]`` by its own minimum and maximum (a constant map -> 0)."""
    flat = x.reshape(len(x), -1)
    lo = flat.min(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    span = (flat.max(axis=1) - flat.min(axis=1)).reshape(lo.shape)
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)
