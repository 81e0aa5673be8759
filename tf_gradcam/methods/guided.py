"""Guided backpropagation (Springenberg et al., ICLR Workshop 2015, arXiv:1412.6806), and the
guided ReLUs that Guided Grad-CAM (``guided_gradcam.py``) shares.

The guided ReLUs are engine overrides (``id(layer) -> fn(call, *args, **kwargs)``) used for one
forward pass: the user's layers, their activations and weights are never touched. A ReLU is found
as a layer (``keras.layers.ReLU`` in any configuration, e.g. ReLU6 in MobileNetV2;
``keras.layers.Activation("relu")`` or ``"relu6"``) or as the ``activation`` argument of a dense or
convolution layer (``Conv2D(..., activation="relu")``, ``Dense(..., activation="relu")``): that
layer then runs as a weight-sharing twin without activation, followed by the guided ReLU. ReLUs
hidden inside a custom layer's ``call`` are not reached and backpropagate as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import graph
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

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

    def __init__(self, model: keras.Model, layer: LayerSpec = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        super().__init__(model, layer, **options)
        self._guided = guided_overrides(model)

    def overrides(self) -> dict:
        return self._guided

    def compute(self, ctx: Context) -> tf.Tensor:
        assert ctx.gradients is not None  # a gradient method
        ctx.extras["gradients"] = ctx.gradients
        return magnitude(ctx.gradients, ctx.gradients.shape.rank - 2)
