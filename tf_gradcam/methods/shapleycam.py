"""ShapleyCAM (Cai, "CAMs as Shapley Value-based Explainers", 2025, arXiv:2501.06261)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

UTILITIES = ("rest", "logit")


class ShapleyCAM(Explainer):
    r"""ShapleyCAM: Grad-CAM's weights corrected by the second-order term of the score.

    Every activation is a player of a cooperative game whose coalitions keep some activations
    and zero the others; the utility :math:`u` is expanded to second order around the actual
    activations, for which the Shapley values have a closed form,
    :math:`\phi_{pk} = A_{pk}\,(g_{pk} - \tfrac12 (HA)_{pk})`, with :math:`g = \nabla_A u` and
    :math:`HA` the Hessian of :math:`u` (over all positions and channels) applied to :math:`A`.
    Averaged over positions as Grad-CAM does:

    .. math::
        w_k = \frac1P \sum_p \Big(g_{pk} - \tfrac12 (HA)_{pk}\Big), \qquad
        L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)

    :math:`HA` comes from the engine (``uses_hessian``): an outer tape differentiates the
    backward pass once more, only through the layers after the target.

    The utility (``utility=``) is the paper's ReST, the Residual Softmax Target-class score
    :math:`u = y_c + \log \mathrm{softmax}(y)_c` (``"rest"``, the default; for a sigmoid or
    one-logit head :math:`y_c + \log \sigma(y_c)`), or the logit itself (``"logit"``,
    pytorch-grad-cam's default target). ``Explanation.scores`` holds the utility. With the
    logit utility and a head that is piecewise linear after the layer (ReLU, max-pooling,
    inference batch norm, dense), :math:`H = 0` and ShapleyCAM is Grad-CAM exactly. ReST needs
    logits (``score="logits"``); a callable target is its own utility.

    Paper: Huaiguang Cai, arXiv:2501.06261 (2025); the author wrote pytorch-grad-cam's port,
    whose computation (a vector-Jacobian product of the gradients with the activations) this
    follows. ``counterfactual=True`` negates the utility, so :math:`g` and :math:`HA` both.
    Ops without second derivatives after the layer cannot be explained (TensorFlow raises).
    """

    name = "shapleycam"
    uses_hessian = True

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, utility: str = "rest",
                 **options: Unpack[ExplainerOptions]) -> None:
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}.")
        self.utility = utility
        super().__init__(model, layer, **options)
        if utility == "rest" and self.score != "logits":
            raise ValueError("utility='rest' adds the log-probability to the logit and needs "
                             "score='logits'; use utility='logit' to explain the model's output.")

    def class_scores(self, logits: tf.Tensor, codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores, chosen = targets_lib.select_classes(logits, codes)
        if self.utility == "logit":
            return scores, chosen
        if self.head_info.sigmoid:
            return scores + tf.math.log_sigmoid(scores), chosen
        log_p = tf.nn.log_softmax(logits, axis=-1)
        return scores + tf.gather(log_p, chosen, axis=1, batch_dims=1), chosen

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        assert ctx.gradients is not None and ctx.hessian_activations is not None
        return tf.reduce_mean(ctx.gradients - 0.5 * ctx.hessian_activations,
                              axis=ctx.spatial_axes)
