"""One score per (image, channel) pair, a bounded number of pairs per forward pass, in-graph.

Score-CAM masks the input with each channel's map and Ablation-CAM zeroes each channel: both
need ``N * K`` extra forward passes (``K`` up to 2048). Building all ``N * K`` perturbed inputs at
once would hold ``N * K`` input-sized tensors; here the pairs are enumerated ``(n, k)`` in row
order and scored ``chunk`` at a time by a ``tf.while_loop`` that runs one chunk after another
(``parallel_iterations=1``), so at most ``chunk`` perturbed inputs exist at any moment.
"""

from __future__ import annotations

import warnings
from typing import Callable

import tensorflow as tf

from tf_gradcam.engine import checks

#: Default number of perturbed inputs per forward pass.
DEFAULT_CHUNK = 32


def chunk_option(perturbation_batch_size: int, batch_size: int | None = None) -> int:
    """The perturbed inputs per forward pass as a positive int (or a ValueError).

    ``batch_size`` is the option's name before 0.2, when it clashed with the call's
    ``batch_size`` (samples per step): still accepted for one release, with a warning.
    """
    if batch_size is not None:
        warnings.warn(
            "The constructor's batch_size= is now perturbation_batch_size= (perturbed copies per "
            "forward pass); batch_size= on the call stays samples per step. The old spelling "
            "goes away in the next release.", DeprecationWarning, stacklevel=3)
        perturbation_batch_size = batch_size
    return checks.positive_int(perturbation_batch_size, "perturbation_batch_size")


def static_channels(activations: tf.Tensor, layer_path: str) -> int:
    """The static channel count ``K`` of ``[N, *S, K]`` activations (the loops need it)."""
    k = activations.shape[-1]
    if k is None:
        raise ValueError(
            f"Layer {layer_path!r} has an unknown number of channels: a perturbation method "
            "needs it to loop over them."
        )
    return int(k)


def per_channel(
    score_pairs: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    n: tf.Tensor,
    k: int,
    batch_size: int,
) -> tf.Tensor:
    """``[n, k]`` float32: ``score_pairs(images, channels)`` for every (image, channel) pair.

    Args:
        score_pairs: ``([B] int32 image indices, [B] int32 channel indices) -> [B]`` scores.
            It always receives exactly ``B = min(batch_size, k)`` pairs (a static size, also
            under XLA): the last chunk repeats the last pair, and the repeats are dropped.
        n: number of images (a scalar tensor; the batch axis is dynamic).
        k: number of channels (static).
        batch_size: pairs per call of ``score_pairs``.
    """
    chunk = min(int(batch_size), int(k))
    n = tf.cast(n, tf.int32)
    total = n * k
    steps = (total + chunk - 1) // chunk
    offsets = tf.range(chunk, dtype=tf.int32)

    def body(i, scores):
        pairs = tf.minimum(i * chunk + offsets, total - 1)
        values = tf.cast(score_pairs(pairs // k, pairs % k), tf.float32)
        return i + 1, scores.write(i, tf.reshape(values, [chunk]))

    scores = tf.TensorArray(tf.float32, size=steps, element_shape=tf.TensorShape([chunk]))
    _, scores = tf.while_loop(
        lambda i, _: i < steps, body, [tf.constant(0, tf.int32), scores],
        parallel_iterations=1,  # one chunk in flight: memory stays bounded by ``chunk``
    )
    flat = tf.reshape(scores.stack(), [-1])[:total]
    return tf.reshape(flat, tf.stack([n, k]))
