"""Grad-CAM++ (Chattopadhyay et al., WACV 2018, arXiv:1710.11063)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class GradCAMPlusPlus(Explainer):
    r"""Grad-CAM++: positive gradients weighted per position, in the paper's closed form.

    With :math:`g_{ij} = \partial S^c / \partial A^k_{ij}` (``S^c`` the explained score):

    .. math::
        \alpha^{kc}_{ij} = \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{ab} A^k_{ab}\, g_{ij}^3}, \qquad
        w^c_k = \sum_{ij} \alpha^{kc}_{ij}\, \mathrm{ReLU}(g_{ij}), \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)

    The paper explains :math:`Y^c = \exp(S^c)` and assumes the score is piecewise linear in the
    activations (a ReLU network), so higher derivatives of ``S^c`` vanish and the second and
    third derivatives of ``Y^c`` are :math:`\exp(S^c) g^2` and :math:`\exp(S^c) g^3`. The factor
    :math:`\exp(S^c)` cancels in :math:`\alpha`, and in :math:`w^c_k` it is one positive number per
    sample, removed by the scaling of the heatmap; so ``exp`` is never computed (it would
    overflow for large scores) and ``raw`` and ``weights`` omit that factor. The sum in the
    denominator runs over all positions (a sum, not a mean); where the denominator is 0 (e.g. a
    zero gradient) :math:`\alpha = 0`.

    When the gradients are constant over space (a ``GlobalAveragePooling -> Dense`` head) the
    weights are :math:`Z\,\mathrm{ReLU}(g_k) / (2 + g_k \sum_{ab} A^k_{ab})`: Grad-CAM's
    :math:`g_k` (for positive :math:`g_k`) exactly when :math:`g_k \sum_{ab} A^k_{ab} = Z - 2`,
    i.e. :math:`\alpha = 1/Z`.

    ``counterfactual=True`` explains :math:`-S^c`: the gradients change sign before the formula.
    """

    name = "gradcam++"
    aliases = ("gradcampp",)

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        g = ctx.gradients
        g2 = tf.square(g)
        return closed_form_weights(ctx.activations, g, g2, g2 * g)


def closed_form_weights(acts: tf.Tensor, d1: tf.Tensor, d2: tf.Tensor, d3: tf.Tensor
                        ) -> tf.Tensor:
    """``[M, K]`` Grad-CAM++ weights from the first, second and third derivative terms ``d1``,
    ``d2``, ``d3`` (``g``, ``g^2``, ``g^3``; their averages over noisy inputs for Smooth
    Grad-CAM++), all ``[M, *S, K]``, and the activations they weigh."""
    axes = list(range(1, acts.shape.rank - 1))
    total = tf.reduce_sum(acts, axis=axes, keepdims=True)
    alpha = tf.math.divide_no_nan(d2, 2.0 * d2 + total * d3)
    return tf.reduce_sum(alpha * tf.nn.relu(d1), axis=axes)
