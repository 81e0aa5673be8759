"""Guided backpropagation (Springenberg et al., ICLR Workshop 2015, arXiv:1412.6806) and
Guided Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391).

The guided ReLUs are engine overrides (``id(layer) -> fn(call, *args, **kwargs)``) used for one
forward pass: the user's layers, their activations and weights are never touched. A ReLU is found
as a layer (``keras.layers.ReLU`` in any configuration, e.g. ReLU6 in MobileNetV2;
``keras.layers.Activation("relu")`` or ``"relu6"``) or as the ``activation`` argument of a dense or
convolution layer (``Conv2D(..., activation="relu")``, ``Dense(..., activation="relu")``): that
layer then runs as a weight-sharing twin without activation, followed by the guided ReLU. ReLUs
hidden inside a custom layer's ``call`` are not reached and backpropagate as usual.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from tf_gradcam.core import graph, resize
from tf_gradcam.core.engine import Context, Explainer
from tf_gradcam.methods.gradcam import GradCAM

_RELUS = ("relu", "relu6")

# Layers that apply ``self.activation`` last, to their whole output.
_WITH_ACTIVATION = (
    keras.layers.Dense, keras.layers.EinsumDense,
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
)


def _is_relu(fn) -> bool:
    return getattr(fn, "__name__", None) in _RELUS


def guided(fn: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    r"""``fn`` (a ReLU) forward; backward, its own derivative applied to the positive part of the
    incoming gradient: :math:`\partial x = f'(x)\,\max(\partial y, 0)`.

    For a ReLU, ``f'(x) = [x > 0]``: only positive gradients reach positive inputs. For ReLU6
    (or a ``max_value``) the derivative is also 0 above the cap, where the output is constant.
    """

    @tf.custom_gradient
    def guided_fn(x):
        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
            return tape.gradient(y, x, output_gradients=tf.nn.relu(dy))

        return fn(x), grad

    return guided_fn


def guided_overrides(model: keras.Model) -> dict:
    """Engine overrides making every ReLU of ``model`` (nested models included) guided."""
    overrides = {}
    for _, layer, _ in graph.walk(model):
        if isinstance(layer, keras.layers.ReLU) or (
                isinstance(layer, keras.layers.Activation) and _is_relu(layer.activation)):
            overrides[id(layer)] = (
                lambda call, x, *args, **kwargs: guided(lambda t: call(t, *args, **kwargs))(x))
        elif isinstance(layer, _WITH_ACTIVATION) and _is_relu(layer.activation):
            twin = graph.without_activation(layer)
            overrides[id(layer)] = (
                lambda call, *args, _twin=twin, _relu=layer.activation, **kwargs:
                guided(_relu)(_twin(*args, **kwargs)))
    return overrides


def guided_gradients(explainer: Explainer, overrides: dict, inputs: list, score_fn,
                     target_arg: tf.Tensor) -> tuple:
    """One forward pass with guided ReLUs; ``(gradients [N, *input shape] float32 of the score
    w.r.t. the spatial input, outputs, scores [N], targets [N])``."""
    inputs = list(inputs)
    x = inputs[explainer._spatial_input]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        _, outputs = explainer.forward(inputs, overrides=overrides)
        scores, chosen = explainer._select(outputs, score_fn, target_arg)
        objective = -scores if explainer.counterfactual else scores
    grads = tape.gradient(objective, x)
    if grads is None:
        raise ValueError(
            f"The explained score has no gradient with respect to the model input of dtype "
            f"{x.dtype.name} and shape {x.shape}; guided backpropagation needs a float input "
            "that the score depends on."
        )
    return tf.cast(grads, tf.float32), outputs, tf.cast(scores, tf.float32), chosen


def magnitude(grads: tf.Tensor, spatial: int) -> tf.Tensor:
    """``[N, *S]`` per-position magnitude of ``[N, *S, ...]``: the max of ``|g|`` over the
    channel (and any further) axes, as in Simonyan et al.'s saliency maps."""
    return tf.reduce_max(tf.abs(grads), axis=list(range(1 + spatial, grads.shape.rank)))


class GuidedBackprop(Explainer):
    r"""Guided backpropagation: the input gradient of the score through guided ReLUs.

    .. math::
        R^{(l)} = [f^{(l)} > 0] \cdot [R^{(l+1)} > 0] \cdot R^{(l+1)}

    It explains the input, not a layer (``layer`` must be ``None``); the input is the first model
    input with spatial axes, channels last. The result holds:

    * ``extras["gradients"]``: ``[N, *input shape]`` the guided gradients, signed;
    * ``raw``: ``[N, *input spatial]`` their per-pixel magnitude, ``max_c |g_c|``, unscaled
      (there is no layer map: ``raw`` is at the input's resolution);
    * ``heatmaps``: ``raw`` divided by its maximum, in ``[0, 1]``.
    """

    name = "guidedbackprop"
    uses_layer = False

    def __init__(self, model, layer=None, **options) -> None:
        super().__init__(model, layer, **options)
        self._guided = guided_overrides(model)

    def gradients_and_activations(self, inputs: list, score_fn, target_arg) -> Context:
        """The "activations" of a layer-less method are the explained input itself."""
        grads, outputs, scores, chosen = guided_gradients(
            self, self._guided, inputs, score_fn, target_arg)
        return Context(
            inputs=list(inputs),
            activations=tf.cast(inputs[self._spatial_input], tf.float32),
            gradients=grads,
            targets=chosen,
            scores=scores,
            outputs=outputs,
            score_fn=score_fn,
            target_arg=target_arg,
        )

    def compute(self, ctx: Context) -> tf.Tensor:
        ctx.extras["gradients"] = ctx.gradients
        return magnitude(ctx.gradients, ctx.gradients.shape.rank - 2)


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

    def __init__(self, model, layer=None, **options) -> None:
        super().__init__(model, layer, **options)
        self._guided = guided_overrides(model)

    def heatmap(self, ctx: Context, raw: tf.Tensor) -> tf.Tensor:
        cam = resize.scale_by_max(super().heatmap(ctx, raw))  # [N, *input spatial] in [0, 1]
        grads, _, _, _ = guided_gradients(self, self._guided, ctx.inputs, ctx.score_fn,
                                          ctx.target_arg)
        spatial = cam.shape.rank - 1
        cam = tf.reshape(cam, tf.concat(
            [tf.shape(cam), tf.ones([grads.shape.rank - 1 - spatial], tf.int32)], 0))
        product = grads * cam
        ctx.extras["gradients"] = product
        return magnitude(product, spatial)
