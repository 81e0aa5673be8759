"""FEM, the Feature Explanation Method (Fuad et al., IPTA 2020,
doi:10.1109/IPTA50016.2020.9286629)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

WEIGHTINGS = ("mean", "fraction")


class FEM(Explainer):
    r"""FEM: where each channel is unusually strong (the k-sigma rule), weighted by its mean.

    With :math:`\mu_k` and :math:`\sigma_k` the spatial mean and (population) standard
    deviation of channel :math:`k`,

    .. math::
        B^k = \mathbb 1\big[A^k > \mu_k + k\,\sigma_k\big], \qquad
        L = \mathrm{ReLU}\Big(\sum_k \mu_k B^k\Big)

    the paper's binary maps weighted by the channels' means (Fuad, Martin, Giot, Bourqui,
    Benois-Pineau, Zemmari, "Features understanding in 3D CNNs for actions recognition in
    video", IPTA 2020; no arXiv id), ``k = 2``. The comparison is strict, as in the authors'
    code, so a constant (or dead) channel, :math:`\sigma_k = 0`, contributes nothing.

    ``weighting="fraction"`` computes pytorch-grad-cam's ``FEM`` instead, a different map:
    :math:`\sum_k \big(\tfrac1P \sum_p B^k_p\big) A^k`, the activations weighted by the fraction
    of positions above the threshold. ``Explanation.weights`` holds :math:`\mu_k` (or the
    fractions); ``eigen_smooth`` takes the first principal component of the weighted binary
    maps :math:`\mu_k B^k` (of :math:`w_k A^k` with ``"fraction"``).

    The paper assumes post-ReLU activations; on a layer with negative means the final ReLU
    drops what they contribute. Class-agnostic and gradient-free: ``targets`` only choose the
    reported score; no ``counterfactual``.
    """

    name = "fem"
    uses_gradients = False

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, k: float = 2.0,
                 weighting: str = "mean", **options: Unpack[ExplainerOptions]) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        if not k >= 0:
            raise ValueError(f"k (standard deviations above the mean) must be >= 0, got {k!r}.")
        self.k, self.weighting = float(k), weighting
        super().__init__(model, layer, **options)

    def binary_maps(self, ctx: Context) -> tf.Tensor:
        """``[M, *S, K]`` float32: 1 where a channel exceeds its mean by ``k`` deviations."""
        mean, variance = tf.nn.moments(ctx.activations, axes=ctx.spatial_axes, keepdims=True)
        return tf.cast(ctx.activations > mean + self.k * tf.sqrt(variance), tf.float32)

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        if self.weighting == "fraction":
            return tf.reduce_mean(self.binary_maps(ctx), axis=ctx.spatial_axes)
        return tf.reduce_mean(ctx.activations, axis=ctx.spatial_axes)

    def weighted_activations(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        if self.weighting == "fraction":
            return super().weighted_activations(ctx, weights)
        assert weights is not None
        per_position = (slice(None),) + (tf.newaxis,) * (ctx.activations.shape.rank - 2)
        return self.binary_maps(ctx) * weights[per_position]
