"""Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class GradCAM(Explainer):
    r"""Grad-CAM: channels weighted by their spatially averaged gradient.

    .. math::
        \alpha_k^c = \frac{1}{Z}\sum_{ij} \frac{\partial y^c}{\partial A^k_{ij}}, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)

    On a network that ends in global average pooling and one dense layer, ``alpha_k^c`` is that
    layer's weight ``w_k^c`` divided by ``Z``: Grad-CAM is CAM up to a positive constant.
    """

    name = "gradcam"

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        return tf.reduce_mean(ctx.gradients, axis=ctx.spatial_axes)
