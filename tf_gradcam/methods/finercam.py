"""Finer-CAM (Zhang et al., CVPR 2025, arXiv:2501.11309)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import keras
import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.choose.scores import probability_fn
from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions, get_method

if TYPE_CHECKING:
    from typing_extensions import Unpack

WEIGHTINGS = ("probability", "mean")
Base = Union[str, type[Explainer]]


class FinerCAM(Explainer):
    r"""Finer-CAM: a gradient method explaining what separates the class from its look-alikes.

    The explained score of class :math:`c` becomes its logit minus the logits of its
    :math:`m` most similar classes :math:`R` (those whose logits are closest to :math:`y_c`,
    :math:`c` itself excluded), then the base method (``base="gradcam"`` by default) runs on it:

    .. math::
        u_c = y_c - \alpha \sum_{d \in R} \tilde p_d\, y_d, \qquad
        \tilde p_d = \frac{p_d}{\sum_{d' \in R} p_{d'}}, \quad p = \mathrm{softmax}(y)

    with ``weighting="probability"`` (default), or :math:`\tilde p_d = 1/m` with ``"mean"``
    (torchcam's). ``alpha`` :math:`\alpha = 0.6` and ``references`` :math:`m = 3` are the
    paper's code's defaults (pytorch-grad-cam uses :math:`\alpha = 1`); :math:`\alpha = 0` is
    the base method. For the top class the references are the runners-up; for a lower class
    they can be classes scoring higher.

    Paper: Zhang, Gu, Chowdhury, Mai, Carlyn, Berger-Wolf, Su, Chao, "Finer-CAM: Spotting the
    Difference Reveals Finer Details for Visual Explanation", CVPR 2025, arXiv:2501.11309.
    Deviation from pytorch-grad-cam (whose port is the first author's): the weights
    :math:`\tilde p` are constants (no gradient flows through the softmax), so the gradient is
    exactly :math:`\nabla y_c - \alpha \sum_d \tilde p_d \nabla y_d`, the paper's comparison of
    class gradients; pytorch-grad-cam also differentiates the weights. Ties in :math:`y` never
    put :math:`c` among its own references.

    ``base`` is any gradient method explaining one layer with the engine's class scores (a
    name or class: ``"gradcam++"``, ``"layercam"``, ``"hirescam"``, ...); ``base_options``
    are its own options. ``Explanation.scores`` holds :math:`u_c` and
    ``extras["references"]`` the reference classes ``[N, m]`` (as float32). Needs class
    targets on a softmax (or logit) head of at least two classes.
    """

    name = "finercam"

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, base: Base = "gradcam",
                 alpha: float = 0.6, references: int = 3, weighting: str = "probability",
                 base_options: dict[str, Any] | None = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        base_cls = get_method(base) if isinstance(base, str) else base
        if not (isinstance(base_cls, type) and issubclass(base_cls, Explainer)
                and base_cls.uses_gradients and base_cls.uses_layer
                and not base_cls.uses_hessian and not base_cls.rescores_activations
                and base_cls.class_scores is Explainer.class_scores):
            raise ValueError(
                f"Finer-CAM changes the score a gradient method differentiates; base={base!r} "
                "is not such a method (it must use gradients of the engine's class score at a "
                "layer: e.g. 'gradcam', 'gradcam++', 'layercam', 'hirescam', 'xgradcam').")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        if isinstance(references, bool) or not isinstance(references, int) or references < 1:
            raise ValueError(f"references must be a positive int, got {references!r}.")
        self.alpha, self.references, self.weighting = float(alpha), references, weighting
        super().__init__(model, layer, **options)
        if (self.num_classes or 0) < 2 or self.head_info.sigmoid:
            raise ValueError("Finer-CAM compares a class with other classes of one softmax "
                             "(or logit) output of at least two classes; this model has none.")
        self.base = base_cls(model, layer, **options, **(base_options or {}))

    # ------------------------------------------------------------------ the score
    def reference_classes(self, logits: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
        """``[R, k, m]`` int32: for each class of ``chosen [R, k]``, the ``m`` classes whose
        scores in ``logits [R, C]`` are closest to its own, nearest first (lower index on
        ties), never the class itself."""
        classes = int(logits.shape[-1])
        own = tf.gather(logits, chosen, axis=1, batch_dims=1)
        distance = tf.abs(logits[:, None, :] - own[..., None])  # [R, k, C]
        distance = tf.where(tf.one_hot(chosen, classes, on_value=True, off_value=False),
                            tf.constant(float("inf")), distance)
        return tf.math.top_k(-distance, k=min(self.references, classes - 1)).indices

    def class_scores(self, logits: tf.Tensor, codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores, chosen = targets_lib.select_classes(logits, codes)
        refs = self.reference_classes(logits, chosen)
        ref_scores = tf.gather(logits, refs, axis=1, batch_dims=1)  # [R, k, m]
        if self.weighting == "mean":
            comparison = tf.reduce_mean(ref_scores, axis=-1)
        else:
            probs = probability_fn(self.head_info)(logits) if self.score == "logits" else logits
            weights = tf.stop_gradient(tf.gather(probs, refs, axis=1, batch_dims=1))
            comparison = tf.math.divide_no_nan(tf.reduce_sum(weights * ref_scores, axis=-1),
                                               tf.reduce_sum(weights, axis=-1))
        return scores - self.alpha * comparison, chosen

    def check_plan(self, plan: targets_lib.Plan) -> None:
        if plan.fn is not None:
            raise ValueError("Finer-CAM compares class scores: it needs class targets (None, an "
                             "int, one per sample, [N, k] or top_k), not a callable.")
        self.base.check_plan(plan)

    # ------------------------------------------------------------------ the base method's map
    def compute(self, ctx: Context) -> tf.Tensor:
        logits = tf.cast(ctx.outputs, tf.float32)
        ctx.extras["references"] = self.reference_classes(logits, ctx.targets[:, None])[:, 0]
        return self.base.compute(ctx)

    def channel_weights(self, ctx: Context) -> tf.Tensor | None:
        return self.base.channel_weights(ctx)

    def weighted_activations(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        return self.base.weighted_activations(ctx, weights)

    def combine(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        return self.base.combine(ctx, weights)

    def heatmap(self, ctx: Context, raw: tf.Tensor) -> tf.Tensor:
        return self.base.heatmap(ctx, raw)

    def overrides(self) -> dict:
        return self.base.overrides()
