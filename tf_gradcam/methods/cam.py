"""CAM (Zhou et al., CVPR 2016, arXiv:1512.04150)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose import tensors
from tf_gradcam.choose.targets import Plan
from tf_gradcam.engine import graph
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

L = keras.layers

_POOLS = (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)
# Layers that are the identity at inference (or only drop the pooled map's unit axes), allowed
# between the pooling and the classifier, e.g. EfficientNet's top dropout.
_PASS_THROUGH = (L.Dropout, L.GaussianDropout, L.GaussianNoise, L.AlphaDropout, L.Identity,
                 L.Flatten)
# Allowed between the classifier and the model's output: its squashing, which CAM ignores.
_SQUASH = (L.Softmax, L.Activation)

ARCHITECTURE = "conv -> GlobalAveragePooling -> Dense"


@dataclass(frozen=True)
class Head:
    """A ``GlobalAveragePooling -> Dense`` classifier head and the layers whose output it pools."""

    features: tuple  # the layer feeding the pooling first, then the nested models returning it
    pool: keras.layers.Layer
    dense: keras.layers.Layer


def find_heads(model: keras.Model) -> list[Head]:
    """Every ``GlobalAveragePooling -> Dense`` head whose Dense gives the model's output.

    The search follows the dataflow through nested models (a backbone whose last layer feeds a
    pooling layer in the outer model, or a whole ``keras.applications`` classifier nested in a
    ``Sequential``), in execution order.
    """
    calls, outputs, _ = graph.trace(model)
    consumers: dict[int, list[graph.Call]] = {}
    producers: dict[int, list[keras.layers.Layer]] = {}
    for call in calls:
        for v in call.outputs:
            producers.setdefault(id(v), []).append(call.layer)
        if not graph.is_graph_model(call.layer):
            for v in call.inputs:
                consumers.setdefault(id(v), []).append(call)
    output_ids = {id(v) for v in outputs}

    def only_consumer(value):
        nxt = consumers.get(id(value), [])
        return nxt[0] if len(nxt) == 1 else None

    def reaches_output(value) -> bool:
        while id(value) not in output_ids:
            nxt = only_consumer(value)
            if nxt is None or not isinstance(nxt.layer, _SQUASH) or len(nxt.outputs) != 1:
                return False
            value = nxt.outputs[0]
        return len(output_ids) == 1

    heads = []
    for call in calls:
        if not isinstance(call.layer, _POOLS) or len(call.inputs) != 1:
            continue
        nxt = only_consumer(call.outputs[0])
        while nxt is not None and isinstance(nxt.layer, _PASS_THROUGH):
            nxt = only_consumer(nxt.outputs[0])
        if (nxt is not None and isinstance(nxt.layer, L.Dense) and len(nxt.inputs) == 1
                and reaches_output(nxt.outputs[0])):
            features = tuple(producers.get(id(call.inputs[0]), ()))
            heads.append(Head(features, call.layer, nxt.layer))
    return heads


class CAM(Explainer):
    r"""CAM: channels weighted by the classifier's weights, for networks ending in
    global average pooling and one dense layer.

    On ``conv -> GlobalAveragePooling -> Dense`` the class score is
    :math:`y^c = \sum_k w_k^c \frac{1}{Z}\sum_{ij} A^k_{ij} + b^c`, and

    .. math::
        L^c_{\mathrm{CAM}} = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big)

    with :math:`w^c` the column of the Dense kernel for class :math:`c` (the bias is left out).
    Grad-CAM on the same layer is this map divided by :math:`Z`, the number of positions.

    The layer must be the one whose output is pooled (the default); nested models are searched,
    so ``Sequential([backbone, GlobalAveragePooling2D(), Dense(k, "softmax")])`` and a
    ``keras.applications`` model built with ``include_top=True`` both work. No gradients are
    computed, and ``targets`` must be classes (``None``, an int or one per sample): the weights
    are a kernel column, undefined for a callable score.

    Raises:
        ValueError: the model has no such head after the layer (e.g. it flattens before its
            classifier); :class:`~tf_gradcam.GradCAM` works on any architecture.
    """

    name = "cam"
    uses_gradients = False

    def __init__(self, model: keras.Model, layer: tensors.LayerSpec = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        tensors.check_built(model)
        heads = find_heads(model)
        if layer is None and heads:
            layer = heads[-1].features[0]
        super().__init__(model, layer, **options)
        matching = [h for h in heads if any(f is self.layer for f in h.features)]
        if not matching:
            raise ValueError(self._no_head_message(heads))
        self.head = matching[-1]

    def _no_head_message(self, heads: list[Head]) -> str:
        msg = (
            f"CAM needs the architecture {ARCHITECTURE}: the explained layer's output globally "
            "average-pooled and fed to the Dense layer that gives the model's output. "
        )
        if heads:
            paths = {id(lyr): path for path, lyr, _ in graph.walk(self.model)}
            feeders = ", ".join(repr(paths.get(id(h.features[0]), h.features[0].name))
                                for h in heads)
            return msg + (f"Layer {self.layer_names!r} is not pooled by it; the layer that is: "
                          f"{feeders}.")
        return msg + (f"Model {self.model.name!r} has no such head (e.g. it flattens before "
                      "its classifier). Use tfg.GradCAM, which needs no particular architecture "
                      "(and equals CAM up to a constant on this one).")

    def check_plan(self, plan: Plan) -> None:
        if plan.fn is not None or plan.target is not None:
            raise ValueError(
                "CAM weights the channels by the classifier's kernel column of a class, so it "
                "needs class targets (None, an int or one int per sample), not a callable."
            )

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        kernel = tf.cast(self.head.dense.kernel, tf.float32)  # [K, classes]
        if self.head_info.binary:  # one logit z: the negative class scores -z
            kernel = tf.concat([-kernel, kernel], axis=1)
        return tf.gather(tf.transpose(kernel), ctx.targets)  # [N, K]
