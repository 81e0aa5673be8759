"""Ablation-CAM (Desai and Ramaswamy, WACV 2020)."""

from __future__ import annotations

import tensorflow as tf

from tf_gradcam.core import graph, perturb
from tf_gradcam.core.engine import Context, Explainer

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
        batch_size: ablated copies per pass: the ``N * K`` ablations (one input with one
            channel zeroed, through the layers after the target) run this many at a time.
    """

    name = "ablationcam"
    uses_gradients = False

    def __init__(self, model, layer=None, *, batch_size: int = perturb.DEFAULT_CHUNK,
                 **options) -> None:
        super().__init__(model, layer, **options)
        self.batch_size = perturb.check_chunk(batch_size)

    def _replay(self, inputs: list):
        """``images -> overrides`` that hand every layer a change of the target's activations
        cannot reach its output from one forward pass of the ``N`` images, gathered for the
        ablated copies: each copy then computes only the layers after the target (skip
        connections that jump over it read the cached tensors). Without that split (a shared
        layer), no overrides: every copy runs the whole network."""
        upstream = graph.upstream_of(self.model, self.layer)
        if upstream is None:
            return lambda images: None
        cached: dict[int, object] = {}

        def record(key):
            def fn(call, *args, **kwargs):
                cached[key] = call(*args, **kwargs)
                return cached[key]
            return fn

        self.forward(inputs, overrides={key: record(key) for key in upstream | {id(self.layer)}})

        def overrides(images):
            def cached_rows(key):
                return lambda call, *args, **kwargs: tf.nest.map_structure(
                    lambda t: tf.gather(t, images), cached[key])
            return {key: cached_rows(key) for key in cached}

        return overrides

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        acts = ctx.activations
        channels = perturb.static_channels(acts, self.layer_ref.path)
        spatial = acts.shape.rank - 2

        def ablated_scores(images, ks):
            # [B, 1.., K]: True at the channel each copy loses
            off = tf.one_hot(ks, channels, on_value=True, off_value=False, dtype=tf.bool)
            off = tf.reshape(off, tf.concat([tf.shape(off)[:1], [1] * spatial, [channels]], 0))

            def ablate(a):
                return tf.where(off, tf.zeros_like(a), a)

            inputs = [tf.gather(x, images) for x in ctx.inputs]
            _, outputs = self.forward(inputs, on_activation=ablate, overrides=replay(images))
            return self._select_like(outputs, ctx, images)

        replay = self._replay(ctx.inputs)

        ablated = perturb.per_channel(ablated_scores, tf.shape(acts)[0], channels, self.batch_size)
        y = ctx.scores[:, None]
        return (y - ablated) / tf.maximum(tf.abs(y), EPSILON)
