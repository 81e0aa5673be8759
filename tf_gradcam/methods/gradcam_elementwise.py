"""Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class GradCAMElementWise(Explainer):
    r"""Grad-CAM element-wise: each product of gradient and activation rectified, then summed.

    .. math::
        L^c = \sum_k \mathrm{ReLU}\Big(\frac{\partial S^c}{\partial A^k} \odot A^k\Big)

    The ReLU comes before the sum over channels, so negative evidence in one channel cannot
    cancel positive evidence in another: the map is never below HiResCAM's
    (:math:`\mathrm{ReLU}(\sum_k g^k A^k)`), and equals it where no product is negative.

    This is pytorch-grad-cam's formula, which cites Pillai & Pirsiavash, "Explainable Models
    with Consistent Interpretations", AAAI 2021. That paper's own code sums first and rectifies
    after (HiResCAM up to a positive factor, which tf_gradcam has as :class:`HiResCAM`); the
    method is kept here for what it adds, the per-channel ReLU.

    ``counterfactual=True`` explains :math:`-S^c`; ``eigen_smooth`` takes the first principal
    component of the rectified products :math:`\mathrm{ReLU}(g \odot A)`, as pytorch-grad-cam.
    """

    name = "gradcamelementwise"

    def weighted_activations(self, ctx: Context, weights: None) -> tf.Tensor:
        return tf.nn.relu(ctx.gradients * ctx.activations)
