"""Score-CAM (Wang et al., CVPR Workshops 2020, arXiv:1910.01279)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import checks, perturb, resize
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ScoreCAM(Explainer):
    r"""Score-CAM: each channel weighted by the score of the input masked with its own map.

    .. math::
        H^k = s\big(\mathrm{Up}(A^k)\big), \quad
        s(M) = \frac{M - \min M}{\max M - \min M}, \qquad
        w_k^c = f^c(X \circ H^k) \;[\,- f^c(X_b)\,], \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big)

    ``Up`` is the bilinear upsampling to the input's spatial size; a constant map (``max = min``,
    e.g. a dead channel) gives an all-zero mask, never NaN. ``X \circ H^k`` multiplies every
    channel of the input by the mask; for a model with several inputs only the input with the
    spatial axes is masked, the others are passed unchanged.

    The score ``f^c`` is, as in the paper, a probability:

    * class targets, ``score="logits"`` (default): ``softmax(z)[c]`` of the model's logits ``z``
      (the pre-softmax scores, computed in-graph: no ``exp`` overflow). A model whose output is a
      sigmoid, or a single logit ``[N, 1]``, gets ``sigmoid(z_c)`` instead: a softmax over one
      logit is always 1, and over independent sigmoid logits it is not their probability;
    * class targets, ``score="probabilities"``: the model's own output ``[c]`` as it is (for a
      model ending in a softmax, the same probability; for a sigmoid head, the sigmoid's);
    * a callable target: the callable's value on the masked input's outputs. It must score
      each row of the outputs on its own: its rows are masked copies of different images.

    ``baseline=True`` gives the paper's Channel-wise Increase of Confidence,
    ``w_k^c = f^c(X \circ H^k) - f^c(X_b)``, with the baseline ``X_b = X \circ 0``: the spatial
    input all zero (other inputs unchanged), scored the same way. It subtracts one constant per
    image, so a constant activation map then gets weight exactly 0.

    ``Explanation.scores`` stays the engine's score of the unmasked input (the logit under
    ``score="logits"``); the weights are in ``Explanation.weights``.

    Args:
        perturbation_batch_size: masked inputs per forward pass. The ``N * K`` masked inputs
            are made and scored this many at a time inside the compiled step, so memory is
            bounded by it, not by the number of channels (2048 for ResNet50). (``batch_size``,
            its former name, is still accepted, with a deprecation warning.)
        baseline: subtract the baseline's score (CIC) from every weight.
        max_channels: score only each sample's ``max_channels`` channels of highest spatial
            standard deviation (of the layer's activations, before upsampling; ties to the
            lower index) and give the others weight 0: "Faster Score-CAM" (tabayashi0117's
            Keras Score-CAM, no paper; tf-keras-vis ``max_N``), about ``K / max_channels``
            times fewer forward passes. The channels are chosen per sample (tf-keras-vis takes
            the union over the batch, which makes a sample's map depend on its batch).
            ``None`` (default) or ``max_channels >= K`` is Score-CAM exactly.
    """

    name = "scorecam"
    uses_gradients = False

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *,
                 perturbation_batch_size: int = perturb.DEFAULT_CHUNK, baseline: bool = False,
                 max_channels: int | None = None, batch_size: int | None = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        super().__init__(model, layer, **options)
        spec = self.input_specs[self.spatial_input]
        if not spec.dtype.is_floating:
            # Scaling token ids by a mask turns them into other tokens, not a weaker signal.
            raise ValueError(
                f"Score-CAM masks the input by multiplying it, but input {spec.name!r} holds "
                f"{spec.dtype.name} values (token ids?). Explain a float input, e.g. a model "
                "that starts at the embedding output, or use a gradient method."
            )
        self.perturbation_batch_size = perturb.chunk_option(perturbation_batch_size, batch_size)
        self.baseline = bool(baseline)
        self.max_channels = (None if max_channels is None
                             else checks.positive_int(max_channels, "max_channels"))

    #: Scored copies of the masked input per channel, averaged into its weight: 1 here;
    #: SS-CAM's noisy masks and IS-CAM's integration steps.
    copies: int = 1

    def perturbation(self, ctx: Context) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        """``fn(x [B, ...], masks [B, *input spatial], copy [B] int32) -> [B, ...]``: copy
        ``copy`` of the input masked by a channel's map; here ``x`` times the mask."""
        return lambda x, masks, copy: _mask(x, masks)

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        acts = ctx.activations
        rank = acts.shape.rank
        channels = perturb.static_channels(acts, self.layer_names)
        kept = channels if self.max_channels is None else min(self.max_channels, channels)
        # [M, kept] the scored channels of each row: those of highest spatial deviation
        chosen = None if kept == channels else tf.math.top_k(
            tf.math.reduce_std(acts, axis=ctx.spatial_axes), k=kept).indices
        per_map = tf.transpose(acts, [0, rank - 1] + list(range(1, rank - 1)))  # [M, K, *S]
        x_at = self.spatial_input
        size = tf.shape(ctx.inputs[x_at])[1: rank - 1]
        perturbed, copies = self.perturbation(ctx), self.copies

        def masked_scores(rows, slots):
            slot, copy = slots // copies, slots % copies
            ks = slot if chosen is None else tf.gather_nd(chosen, tf.stack([rows, slot], axis=1))
            maps = tf.gather_nd(per_map, tf.stack([rows, ks], axis=1))  # [B, *S]
            masks = _min_max(resize.upsample(maps, size))  # [B, *input spatial] in [0, 1]
            inputs = [tf.gather(x, rows) for x in ctx.inputs]
            inputs[x_at] = perturbed(inputs[x_at], masks, copy)
            return ctx.rescore_inputs(inputs, rows, probability=True)

        n = tf.shape(acts)[0]
        scores = perturb.per_channel(masked_scores, n, kept * copies,
                                     self.perturbation_batch_size)
        weights = tf.reduce_mean(tf.reshape(scores, tf.stack([n, kept, copies])), axis=-1)
        if self.baseline:
            inputs = list(ctx.inputs)
            inputs[x_at] = tf.zeros_like(inputs[x_at])
            base = ctx.rescore_inputs(inputs, tf.range(n), probability=True)
            weights = weights - base[:, None]
        if chosen is None:
            return weights
        # back to [M, K]: the unscored channels weigh exactly 0
        return tf.einsum("nmk,nm->nk", tf.one_hot(chosen, channels), weights)


def _min_max(maps: tf.Tensor) -> tf.Tensor:
    """Each map of ``[B, *S]`` scaled into ``[0, 1]`` by its min and max; a constant map gives 0."""
    axes = list(range(1, maps.shape.rank))
    lo = tf.reduce_min(maps, axis=axes, keepdims=True)
    span = tf.reduce_max(maps, axis=axes, keepdims=True) - lo
    safe = tf.where(span > 0, span, tf.ones_like(span))
    return tf.where(span > 0, (maps - lo) / safe, tf.zeros_like(maps))


def _mask(x: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """``x [B, *S, ...]`` times ``masks [B, *S]``, broadcast over the trailing (channel) axes."""
    extra = x.shape.rank - masks.shape.rank
    masks = tf.reshape(masks, tf.concat([tf.shape(masks), tf.ones([extra], tf.int32)], axis=0))
    return tf.cast(tf.cast(x, tf.float32) * masks, x.dtype)
