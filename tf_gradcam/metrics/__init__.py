"""How good is a saliency map? Localization and faithfulness metrics from the CAM literature.

Localization (no model needed; maps and ground truth only):

* :func:`pointing_game` / :func:`pointing_hits`: does the map's maximum fall on the object
  (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016)?
* :func:`box_iou` and :func:`localization_accuracy`: the Grad-CAM paper's weakly supervised
  localization (Selvaraju et al., ICCV 2017): box around the largest region above 15% of the
  maximum (:func:`tf_gradcam.localize.bbox`), correct when its IoU with the ground truth is >= 0.5.

Faithfulness (the model is run on perturbed images):

* :func:`deletion_auc` / :func:`insertion_auc` (and the full curves :func:`deletion_curve`,
  :func:`insertion_curve`): Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC 2018. Lower deletion and higher insertion AUC are better.
* :func:`average_drop` and :func:`increase_in_confidence` (per image:
  :func:`confidence_scores`): Chattopadhyay et al., "Grad-CAM++", WACV 2018. Lower average drop
  and higher increase are better.
* :func:`road` (:mod:`~tf_gradcam.metrics.imputation`): ROAD, Rong et al., ICML 2022: the
  probability after the most / least relevant pixels are removed and filled by noisy linear
  imputation (:func:`noisy_linear_imputation`), and pytorch-grad-cam's combined
  ``(LeRF - MoRF) / 2``.
* :func:`mu_fidelity`: Bhatt et al., IJCAI 2020: the correlation between a map's mass on random
  subsets and the drop they cause. Higher is better.

Sanity checks (Adebayo et al., NeurIPS 2018; :mod:`~tf_gradcam.metrics.sanity`): does the map
change when the model is randomised (:func:`model_randomization`, on a copy; the user's model is
never touched) or trained on random labels (:func:`label_randomization`)? Similarities
(:func:`rank_correlation`, :func:`structural_similarity`, :func:`hog_similarity`) should be low.

Concision and stability:

* :func:`sparseness` (Gini index, higher is sparser) and :func:`complexity` (entropy, lower is
  simpler): functions of the map alone;
* :func:`max_sensitivity` (Yeh et al., NeurIPS 2019) and :func:`local_lipschitz`
  (Alvarez-Melis and Jaakkola 2018): how far the map moves under small input noise, lower is
  better; they take the explainer, not maps.

Confidence intervals over images (:mod:`~tf_gradcam.metrics.stats`): :func:`bootstrap_ci`
(percentile bootstrap of a mean), :func:`wilson_ci` (proportions), :func:`paired_bootstrap_ci`
(the difference of two methods on the same images). ``tfg.evaluate`` runs every method against
every metric and tabulates them with these intervals.

Conventions:

* heatmaps are ``[N, *S]`` (``S`` the input's spatial shape, e.g. ``[H, W]``): the
  ``heatmaps`` of an :class:`~tf_gradcam.Explanation` (which may be passed whole), upsampled to
  the input. Boxes are ``(y0, x0, y1, x1)`` pixels, end exclusive; masks are ``[N, H, W] bool``
  (the format of :func:`tf_gradcam.data.make_shapes`).
* images are ``[N, *S, C]`` (or ``[N, *S]`` for a model without a channel axis) in the model's
  own input space: pass what you would pass to ``model.predict`` (a baseline of 0 means 0 there).
* the score is the **probability** of the target class, as in the papers. ``apply_softmax``
  says how to get it from the model's output ``[N, C]``: ``"auto"`` (default) uses the output
  as is when the model ends in a softmax (or sigmoid) layer or activation, found by walking the
  graph into nested models, or when the outputs of the first batch are non-negative rows that
  sum to 1; otherwise it applies a softmax. ``True`` always applies a softmax (a logits model),
  ``False`` never does (a probabilities model).
* ``targets``: ``None`` is each image's top class on the unperturbed image (or, when an
  :class:`~tf_gradcam.Explanation` is passed as ``heatmaps``, the classes it explained, unless
  a callable chose its scores), an int is one class for all, or a sequence of ``N`` ints.
* the model runs on at most ``batch_size`` images at a time, built on the fly: memory stays
  ``O(batch_size * image size)`` beyond the inputs themselves, whatever ``steps`` is. The newer
  metrics build their perturbed batches in-graph, in the same compiled step as the model.
* the metrics with random draws (ROAD's noise, MuFidelity's subsets, the stability metrics'
  noise) take a ``seed``; each image's draws come from their own stream, so results do not
  depend on ``batch_size``. Per-image values are returned (NaN where a value is undefined, e.g.
  the correlation of a constant map), so that intervals can be put on them.
* long runs take ``verbose=1`` for a ``keras.utils.Progbar``.
"""

from __future__ import annotations

from tf_gradcam.metrics.concision import complexity, sparseness
from tf_gradcam.metrics.confidence import (
    ConfidenceScores,
    average_drop,
    confidence_scores,
    increase_in_confidence,
)
from tf_gradcam.metrics.deletion import (
    PerturbationCurve,
    deletion_auc,
    deletion_curve,
    insertion_auc,
    insertion_curve,
)
from tf_gradcam.metrics.fidelity import mu_fidelity
from tf_gradcam.metrics.localization import (
    POINTING_TOLERANCE,
    box_iou,
    localization_accuracy,
    mask_iou,
    pointing_game,
    pointing_hits,
)
from tf_gradcam.metrics.imputation import RoadResult, noisy_linear_imputation, road
from tf_gradcam.metrics.sanity import (
    SanityResult,
    label_randomization,
    model_randomization,
    randomizable_layers,
)
from tf_gradcam.metrics.similarity import hog_similarity, rank_correlation, structural_similarity
from tf_gradcam.metrics.stability import local_lipschitz, max_sensitivity
from tf_gradcam.metrics.stats import bootstrap_ci, paired_bootstrap_ci, wilson_ci

__all__ = [
    "POINTING_TOLERANCE",
    "ConfidenceScores",
    "PerturbationCurve",
    "RoadResult",
    "SanityResult",
    "average_drop",
    "bootstrap_ci",
    "box_iou",
    "complexity",
    "confidence_scores",
    "deletion_auc",
    "deletion_curve",
    "hog_similarity",
    "increase_in_confidence",
    "insertion_auc",
    "insertion_curve",
    "label_randomization",
    "local_lipschitz",
    "localization_accuracy",
    "mask_iou",
    "max_sensitivity",
    "model_randomization",
    "mu_fidelity",
    "noisy_linear_imputation",
    "paired_bootstrap_ci",
    "pointing_game",
    "pointing_hits",
    "randomizable_layers",
    "rank_correlation",
    "road",
    "sparseness",
    "structural_similarity",
    "wilson_ci",
]
