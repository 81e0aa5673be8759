"""XGrad-CAM (Fu et al., BMVC 2020, arXiv:2008.02312)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class XGradCAM(Explainer):
    r"""XGrad-CAM: gradients averaged over space with the activations as weights.

    .. math::
        w^c_k = \sum_{ij} \frac{A^k_{ij}}{\sum_{ab} A^k_{ab}}
                \frac{\partial S^c}{\partial A^k_{ij}}, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)

    A channel whose activations sum to 0 gets weight 0. Where the gradients are constant over
    space (a ``GlobalAveragePooling -> Dense`` head) the weights are the gradients, as Grad-CAM's.

    ``counterfactual=True`` explains :math:`-S^c`: the weights change sign.
    """

    name = "xgradcam"

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        axes = ctx.spatial_axes
        num = tf.reduce_sum(ctx.activations * ctx.gradients, axis=axes)
        return tf.math.divide_no_nan(num, tf.reduce_sum(ctx.activations, axis=axes))
