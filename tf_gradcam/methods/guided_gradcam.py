"""Guided Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import resize
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import ExplainerOptions
from tf_gradcam.methods.gradcam import GradCAM
from tf_gradcam.methods.guided import guided_overrides, magnitude

if TYPE_CHECKING:
    from typing_extensions import Unpack


class GuidedGradCAM(GradCAM):
    r"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map, elementwise.

    .. math::
        G^c = R_{\mathrm{guided}} \odot \mathrm{Up}(L^c_{\mathrm{Grad\text{-}CAM}}) / \max

    The Grad-CAM map (ordinary gradients) is upsampled to the input and scaled into ``[0, 1]``
    (exactly :class:`GradCAM`'s heatmap), then multiplies every input channel of the guided
    gradients (a second forward/backward pass, with guided ReLUs). The result holds:

    * ``extras["gradients"]``: ``[N, *input shape]`` that product, signed;
    * ``heatmaps``: its per-pixel magnitude ``max_c |.|``, scaled into ``[0, 1]``;
    * ``raw`` and ``weights``: Grad-CAM's map at the layer's resolution and its channel weights.
    """

    name = "guidedgradcam"

    def __init__(self, model: keras.Model, layer: LayerSpec = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        super().__init__(model, layer, **options)
        self._guided = guided_overrides(model)

    def heatmap(self, ctx: Context, raw: tf.Tensor) -> tf.Tensor:
        cam = resize.scale_by_max(super().heatmap(ctx, raw))  # [N, *input spatial] in [0, 1]
        grads = ctx.input_gradients(self._guided)  # a second pass, through guided ReLUs
        spatial = cam.shape.rank - 1
        cam = tf.reshape(cam, tf.concat(
            [tf.shape(cam), tf.ones([grads.shape.rank - 1 - spatial], tf.int32)], 0))
        product = grads * cam
        ctx.extras["gradients"] = product
        return magnitude(product, spatial)
