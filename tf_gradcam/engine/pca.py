"""The first principal component of per-sample activation matrices, with its sign fixed.

Shared by Eigen-CAM (the activations), ``eigen_smooth`` (the weighted activations of any
method) and the Eigen variants: an SVD's singular vectors have an arbitrary sign, so the sign
is chosen to make the projection agree with a reference map (the mean activation, or the
method's own map), never left to the solver.
"""

from __future__ import annotations

import tensorflow as tf


def first_component(values: tf.Tensor, reference: tf.Tensor, *, center: bool = True
                    ) -> tf.Tensor:
    """``[M, *S]``: ``values [M, *S, K]`` projected on their first principal component.

    Each sample's ``[S, K]`` matrix (positions by channels) is centred over positions
    (``center=True``, the PCA convention; never for a single position, which would leave
    nothing), decomposed by SVD, and projected on the first right singular vector. The sign
    makes the projection covary positively with ``reference [M, *S]`` (or, where the
    covariance is 0, e.g. one position, have a positive dot product with it). Not rectified.
    """
    shape = tf.shape(values)
    flat = tf.reshape(values, tf.stack([shape[0], -1, shape[-1]]))  # [M, S, K]
    ref = tf.reshape(tf.cast(reference, flat.dtype), tf.stack([shape[0], -1]))  # [M, S]
    positions = values.shape[1:-1].num_elements()  # static; None if unknown
    matrix = flat - tf.reduce_mean(flat, axis=1, keepdims=True) if (
        center and positions != 1) else flat
    _, _, v = tf.linalg.svd(matrix, full_matrices=False)  # v: [M, K, min(S, K)]
    projection = tf.einsum("nsk,nk->ns", matrix, v[:, :, 0])
    return tf.reshape(orient(projection, ref), shape[:-1])


def orient(projection: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """``projection [M, P]`` (an eigenvector's, any sign) times the sign that makes it covary
    positively with ``reference [M, P]``; where the covariance is 0 (e.g. one position), the
    sign of their dot product instead. Deterministic, whatever the solver returned."""
    reference = tf.cast(reference, projection.dtype)
    covariance = tf.reduce_sum(
        (projection - tf.reduce_mean(projection, axis=1, keepdims=True))
        * (reference - tf.reduce_mean(reference, axis=1, keepdims=True)), axis=1, keepdims=True)
    agreement = tf.where(covariance != 0, covariance,
                         tf.reduce_sum(projection * reference, axis=1, keepdims=True))
    return tf.where(agreement < 0, -projection, projection)
