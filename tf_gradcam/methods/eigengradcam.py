"""Eigen-Grad-CAM (pytorch-grad-cam's class-discriminative Eigen-CAM; no paper)."""

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


class EigenGradCAM(Explainer):
    r"""Eigen-Grad-CAM: the first principal component of the gradients times the activations.

    For each sample the elementwise product forms a matrix
    :math:`M = (G \odot A) \in \mathbb{R}^{S \times K}` (positions by channels, with
    :math:`G = \partial S^c / \partial A`). With :math:`\bar M` its columns centred over
    positions and :math:`v_1` the first right singular vector of :math:`\bar M`,

    .. math::
        L^c = \mathrm{ReLU}\big(\sigma\, \bar M v_1\big), \qquad
        \sigma = \operatorname{sign} \operatorname{cov}\big(\bar M v_1,\ M \mathbf{1}\big)

    :math:`M\mathbf 1 = \sum_k G^k \odot A^k` is HiResCAM's map before its ReLU: the sign of
    the singular vector, which the SVD leaves arbitrary, is chosen so the map agrees with it.
    So Eigen-Grad-CAM is HiResCAM with ``eigen_smooth=True``: what no single direction of the
    channels explains is dropped.

    There is no paper: the method comes from pytorch-grad-cam ("like EigenCAM but with class
    discrimination"), after Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299).
    pytorch-grad-cam leaves the sign to LAPACK, so its map can come out as the complement of
    the evidence; here the sign rule above decides, as for :class:`EigenCAM`. ``center=False``
    projects the uncentred :math:`M`; one position (a 1x1 map) is never centred.

    ``counterfactual=True`` explains :math:`-S^c`: :math:`G \to -G`, which flips the reference
    too, so the map becomes the rectified other half of the signed projection.
    ``eigen_smooth`` is not defined: the method already is the first principal component.
    """

    name = "eigengradcam"
    eigen_smooth_defined = False

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, center: bool = True,
                 **options: Unpack[ExplainerOptions]) -> None:
        self.center = bool(center)
        super().__init__(model, layer, **options)

    def weighted_activations(self, ctx: Context, weights: None) -> tf.Tensor:
        return ctx.gradients * ctx.activations

    def combine(self, ctx: Context, weights: None) -> tf.Tensor:
        products = self.weighted_activations(ctx, weights)
        signed = pca.first_component(products, tf.reduce_sum(products, axis=-1),
                                     center=self.center)
        return tf.nn.relu(signed)
