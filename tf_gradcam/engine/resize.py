"""In-graph upsampling and scaling of maps with one, two or three spatial axes."""

from __future__ import annotations

import tensorflow as tf


def upsample(maps: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Bilinear (trilinear in 3D) resize of ``[N, *S]`` maps to ``[N, *size]``.

    ``size`` is a 1-D int tensor with one entry per spatial axis (1, 2 or 3). Linear
    interpolation of non-negative maps stays non-negative, so a ReLU map remains one.
    """
    rank = maps.shape.rank - 1
    size = tf.cast(size, tf.int32)
    if rank == 1:
        # A [N, T] signal is an image of width one.
        out = tf.image.resize(maps[:, :, None, None], tf.stack([size[0], 1]))
        return out[:, :, 0, 0]
    if rank == 2:
        return tf.image.resize(maps[..., None], size)[..., 0]
    if rank == 3:
        # Separable: resize (H, W) slice by slice, then D with H*W folded into one axis.
        shape = tf.shape(maps)
        n, d = shape[0], shape[1]
        planes = tf.reshape(maps, tf.stack([n * d, shape[2], shape[3], 1]))
        planes = tf.image.resize(planes, size[1:])
        hw = size[1] * size[2]
        stacked = tf.reshape(planes, tf.stack([n, d, hw, 1]))
        stacked = tf.image.resize(stacked, tf.stack([size[0], hw]))
        return tf.reshape(stacked, tf.stack([n, size[0], size[1], size[2]]))
    raise ValueError(f"Maps need 1 to 3 spatial axes, got shape {maps.shape}.")


def scale_by_max(maps: tf.Tensor) -> tf.Tensor:
    """Scale each non-negative map of ``[N, *S]`` into ``[0, 1]`` by its maximum.

    Dividing by the max (not min-max) keeps zero meaning "no evidence"; a map whose max is 0
    (or not positive: a fully suppressed class) stays all zero instead of becoming NaN.
    """
    axes = list(range(1, maps.shape.rank))
    peak = tf.reduce_max(maps, axis=axes, keepdims=True)
    safe = tf.where(peak > 0, peak, tf.ones_like(peak))
    return tf.where(peak > 0, maps / safe, tf.zeros_like(maps))
