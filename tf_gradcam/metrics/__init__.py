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
* :func:`average_drop` and :func:`increase_in_confidence`: Chattopadhyay et al.,
  "Grad-CAM++", WACV 2018. Lower average drop and higher increase are better.

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
  ``O(batch_size * image size)`` beyond the inputs themselves, whatever ``steps`` is.
"""

from __future__ import annotations

from tf_gradcam.metrics.confidence import average_drop, increase_in_confidence
from tf_gradcam.metrics.deletion import (
    PerturbationCurve,
    deletion_auc,
    deletion_curve,
    insertion_auc,
    insertion_curve,
)
from tf_gradcam.metrics.localization import (
    POINTING_TOLERANCE,
    box_iou,
    localization_accuracy,
    pointing_game,
    pointing_hits,
)

__all__ = [
    "POINTING_TOLERANCE",
    "PerturbationCurve",
    "average_drop",
    "box_iou",
    "deletion_auc",
    "deletion_curve",
    "increase_in_confidence",
    "insertion_auc",
    "insertion_curve",
    "localization_accuracy",
    "pointing_game",
    "pointing_hits",
]
