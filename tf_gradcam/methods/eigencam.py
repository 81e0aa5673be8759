"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class EigenCAM(Explainer):
    r"""Eigen-CAM: the activations projected on their first principal component.

    For each sample the activations form a matrix :math:`A \in \mathbb{R}^{S \times K}`
    (positions by channels). With :math:`\bar A` the matrix centred over positions (each
    channel's mean subtracted; the PCA convention, as pytorch-grad-cam does) and
    :math:`\bar A = U \Sigma V^\top` its SVD,

    .. math::
        L = \mathrm{ReLU}\big(\pm\, \bar A\, v_1\big)

    where :math:`v_1` is the first right singular vector. Its sign is arbitrary, so it is chosen
    to make the map correlate positively with the mean activation over channels (the map then
    shows where the layer is active, not where it is not). ``center=False`` projects the
    uncentred :math:`A`, as written in the Eigen-CAM paper; for non-negative (post-ReLU)
    activations that map is close to the mean activation over channels. A layer with a single
    position (a 1x1 map) is never centred: centring would leave nothing.

    Class-agnostic and gradient-free: ``targets`` only choose the reported score; there is no
    ``counterfactual`` form.
    """

    name = "eigencam"
    uses_gradients = False

    def __init__(self, model: keras.Model, layer=None, *, center: bool = True, **options) -> None:
        self.center = bool(center)
        super().__init__(model, layer, **options)

    def combine(self, ctx: Context, weights: None) -> tf.Tensor:
        shape = tf.shape(ctx.activations)
        acts = tf.reshape(ctx.activations, tf.stack([shape[0], -1, shape[-1]]))  # [N, S, K]
        # One position has nothing to centre on (the centred matrix is zero): project it as is.
        positions = ctx.activations.shape[1:-1].num_elements()  # static; None if unknown
        center = self.center and positions != 1
        matrix = acts - tf.reduce_mean(acts, axis=1, keepdims=True) if center else acts
        _, _, v = tf.linalg.svd(matrix, full_matrices=False)  # v: [N, K, min(S, K)]
        projection = tf.einsum("nsk,nk->ns", matrix, v[:, :, 0])
        mean = tf.reduce_mean(acts, axis=-1)  # [N, S]
        covariance = tf.reduce_sum(
            (projection - tf.reduce_mean(projection, axis=1, keepdims=True))
            * (mean - tf.reduce_mean(mean, axis=1, keepdims=True)), axis=1, keepdims=True)
        # Where the covariance cannot tell (a single position), the plain dot product decides.
        agreement = tf.where(covariance != 0, covariance,
                             tf.reduce_sum(projection * mean, axis=1, keepdims=True))
        projection = tf.where(agreement < 0, -projection, projection)
        return tf.nn.relu(tf.reshape(projection, shape[:-1]))
