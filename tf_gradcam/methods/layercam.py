"""Layer-CAM (Jiang et al., IEEE TIP 2021, doi:10.1109/TIP.2021.3089943)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_gradcam.engine import resize
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer


class LayerCAM(Explainer):
    r"""Layer-CAM: each position's activations weighted by its own positive gradients.

    .. math::
        L^c = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}\Big(\frac{\partial S^c}{\partial A^k_{ij}}
        \Big) A^k_{ij}\Big)

    No per-channel weights: the weights vary over space, so shallow layers give fine maps.

    Several layers, ``LayerCAM(model, layer=["conv1", "conv3"])``, are explained in one forward
    and backward pass and fused as in the paper: each layer's map :math:`M_l` is upsampled to the
    input, scaled to :math:`\tanh(\gamma M_l / \max M_l)` (every layer, ``gamma`` = 2 by
    default, which lifts the weak values of shallow layers' maps) and the maps are combined by
    their elementwise maximum. The fused ``raw`` map is then at the input's resolution, in
    :math:`[0, \tanh\gamma]`.

    ``counterfactual=True`` explains :math:`-S^c`, so the negative gradients weigh the positions.
    """

    name = "layercam"

    def __init__(self, model: keras.Model, layer=None, *, gamma: float = 2.0, **options) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma!r}.")
        self.gamma = float(gamma)
        super().__init__(model, layer, **options)

    def weighted_activations(self, ctx: Context, weights: None) -> tf.Tensor:
        return tf.nn.relu(ctx.gradients) * ctx.activations

    def fuse(self, maps: list[tf.Tensor]) -> tf.Tensor:
        scaled = [tf.tanh(self.gamma * resize.scale_by_max(m)) for m in maps]
        return tf.reduce_max(tf.stack(scaled), axis=0)
