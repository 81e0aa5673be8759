"""HiResCAM (Draelos & Carin, 2020, arXiv:2011.08891)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class HiResCAM(Explainer):
    r"""HiResCAM: activations multiplied elementwise by the gradients, summed over channels.

    .. math::
        L^c = \mathrm{ReLU}\Big(\sum_k \frac{\partial S^c}{\partial A^k} \odot A^k\Big)

    Unlike Grad-CAM, the gradients are not averaged over space first, so the map shows the
    positions that raise the score under a first-order view of the model. Where the gradients
    are constant over space (a ``GlobalAveragePooling -> Dense`` head) their mean is themselves,
    and HiResCAM is Grad-CAM.

    ``counterfactual=True`` explains :math:`-S^c`: the map becomes
    :math:`\mathrm{ReLU}(-\sum_k g^k \odot A^k)`.
    """

    name = "hirescam"

    def weighted_activations(self, ctx: Context, weights: None) -> tf.Tensor:
        return ctx.gradients * ctx.activations
