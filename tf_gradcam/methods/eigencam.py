"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec

from tf_gradcam.engine import pca
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
    eigen_smooth_defined = False  # it is already the first principal component

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, center: bool = True,
                 **options: Unpack[ExplainerOptions]) -> None:
        self.center = bool(center)
        super().__init__(model, layer, **options)

    def combine(self, ctx: Context, weights: None) -> tf.Tensor:
        mean = tf.reduce_mean(ctx.activations, axis=-1)  # where the layer is active
        return tf.nn.relu(pca.first_component(ctx.activations, mean, center=self.center))
