"""Random-CAM: random channel weights, the sanity baseline (after pytorch-grad-cam's
``RandomCAM`` and Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
arXiv:1810.03292)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: spreads consecutive integers over 32 bits


def _u32(value: int) -> tf.Tensor:
    return tf.constant(value % 2**32, tf.uint32)


def _mix(h: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finaliser: every input bit flips about half the output bits."""
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, _u32(shift))) * _u32(factor)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, _u32(16)))


def content_keys(x: tf.Tensor) -> tf.Tensor:
    """``[M] uint32``: a hash of each row of ``x [M, ...]``, exact in its bits (integer sums
    wrap and commute, so it does not depend on the batch, the order of the rows or XLA)."""
    values = tf.cast(x, tf.float32) if x.dtype.is_floating else tf.cast(x, tf.int32)
    bits = tf.bitcast(values, tf.uint32)
    flat = tf.reshape(bits, tf.stack([tf.shape(bits)[0], -1]))
    where = tf.bitcast(tf.range(tf.shape(flat)[1], dtype=tf.int32), tf.uint32) * _u32(_GOLDEN)
    return _mix(tf.reduce_sum(_mix(tf.bitwise.bitwise_xor(flat, _mix(where))), axis=1))


def uniform_weights(keys: tf.Tensor, channels: int) -> tf.Tensor:
    """``[M, channels]`` float32 in ``[-1, 1)``, a counter-based draw per (key, channel)."""
    counters = tf.bitcast(tf.range(1, channels + 1, dtype=tf.int32), tf.uint32) * _u32(_GOLDEN)
    bits = _mix(tf.bitwise.bitwise_xor(keys[:, None], _mix(counters)[None, :]))
    unit = tf.cast(tf.bitwise.right_shift(bits, _u32(8)), tf.float32) / float(2**24)  # [0, 1)
    return 2.0 * unit - 1.0


class RandomCAM(Explainer):
    r"""Random-CAM: channels weighted by random numbers, the baseline every metric needs.

    .. math::
        w_k \sim \mathcal U[-1, 1) \ \text{i.i.d.}, \qquad
        L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)

    A map that knows nothing of the class or of the score, yet is drawn from the same
    activations: a method that does no better than it on a metric (deletion, insertion, the
    pointing game) explains nothing there. About half the weights are negative, so some maps
    are all zero.

    pytorch-grad-cam draws from NumPy's global generator, unseeded, so no two runs agree.
    Here the weights are a counter-based draw keyed by ``seed``, the sample's content (a hash
    of the bits of its spatial input) and the explained class: the same call gives the same
    maps, whatever the batch size, the order of the samples or ``jit_compile``; another seed,
    sample or class gives independent weights. ``Explanation.weights`` holds them.

    No gradients: no ``counterfactual``; ``eigen_smooth`` smooths :math:`w_k A^k` as usual.
    """

    name = "randomcam"
    uses_gradients = False

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, seed: int = 0,
                 **options: Unpack[ExplainerOptions]) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}.")
        self.seed = seed
        super().__init__(model, layer, **options)

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        channels = ctx.activations.shape[-1]
        if channels is None:
            raise ValueError(f"Layer {self.layer_names!r} has an unknown number of channels.")
        keys = content_keys(ctx.inputs[self.spatial_input])
        classes = _mix(tf.bitcast(ctx.targets, tf.uint32) * _u32(_GOLDEN) + _u32(self.seed))
        return uniform_weights(_mix(tf.bitwise.bitwise_xor(keys, classes)), int(channels))
