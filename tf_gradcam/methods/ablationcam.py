"""Ablation-CAM (Desai and Ramaswamy, WACV 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import perturb
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Smallest denominator ``|y^c|``: keeps the weights finite when the score is 0 or tiny.
EPSILON = 1e-7


class AblationCAM(Explainer):
    r"""Ablation-CAM: each channel weighted by the relative drop of the score when it is zeroed.

    .. math::
        w_k^c = \frac{y^c - y^c_k}{\max(|y^c|, \epsilon)}, \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big)

    ``y^c`` is the explained score (the engine's: the logit under ``score="logits"``, the model's
    output under ``"probabilities"``, or a callable's value) and ``y^c_k`` the same score with
    channel ``k`` of the layer's output set to zero everywhere (the layers after it see the
    ablated tensor; nothing before it changes). A callable target must score each row of the
    outputs on its own: its rows are ablated copies of different images.

    The paper divides by ``y^c``, assuming it positive. A logit can be negative, and dividing a
    drop by a negative number flips every weight: a channel whose removal lowers the score (it
    supports the class) would get a negative weight and vanish under the ReLU, while channels
    that speak against the class would light up (pytorch-grad-cam does this). We divide by
    ``|y^c|``: the weight keeps the sign of the drop, positive for supporting channels, and is
    the paper's for ``y^c > 0``. A score of (almost) zero is divided by ``epsilon = 1e-7``
    instead, which keeps the weights finite. The denominator is one positive number per image,
    so it scales ``raw`` and ``weights`` but never changes ``heatmaps``.

    Args:
        perturbation_batch_size: ablated copies per pass: the ``N * K`` ablations (one input
            with one channel zeroed, through the layers after the target) run this many at a
            time. (``batch_size``, its former name, is still accepted, with a warning.)
    """

    name = "ablationcam"
    uses_gradients = False
    rescores_activations = True

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *,
                 perturbation_batch_size: int = perturb.DEFAULT_CHUNK,
                 batch_size: int | None = None, **options: Unpack[ExplainerOptions]) -> None:
        super().__init__(model, layer, **options)
        self.perturbation_batch_size = perturb.chunk_option(perturbation_batch_size, batch_size)

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        acts = ctx.activations
        channels = perturb.static_channels(acts, self.layer_names)
        spatial = acts.shape.rank - 2

        def ablated_scores(rows, ks):
            # [B, 1.., K]: True at the channel each copy loses
            off = tf.one_hot(ks, channels, on_value=True, off_value=False, dtype=tf.bool)
            off = tf.reshape(off, tf.concat([tf.shape(off)[:1], [1] * spatial, [channels]], 0))
            return ctx.rescore_activations(lambda a: tf.where(off, tf.zeros_like(a), a), rows)

        ablated = perturb.per_channel(ablated_scores, tf.shape(acts)[0], channels,
                                      self.perturbation_batch_size)
        y = ctx.scores[:, None]
        return (y - ablated) / tf.maximum(tf.abs(y), EPSILON)
