"""Average drop and increase in confidence (Chattopadhyay et al., "Grad-CAM++", WACV 2018):
the class probability on the explanation map ``image * heatmap`` against the image's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tf_gradcam.metrics._inputs import (
    DEFAULT_BATCH_SIZE,
    Scorer,
    TargetsLike,
    check_classes,
    explanation_targets,
    images_and_maps,
    resolve_targets,
)


@dataclass
class ConfidenceScores:
    """The target probability of ``N`` images and of their explanation maps ``image * heatmap``.

    Attributes:
        original: ``[N] float64`` ``Y^c`` on the images.
        masked: ``[N] float64`` ``O^c`` on the explanation maps.
        targets: ``[N] int64`` the class scored.
    """

    original: np.ndarray
    masked: np.ndarray
    targets: np.ndarray

    @property
    def drops(self) -> np.ndarray:
        """``[N]`` per-image drop in percent, ``100 max(0, Y - O) / Y`` (0 where ``Y = 0``);
        their mean is :func:`average_drop`."""
        y, o = self.original, self.masked
        return 100.0 * np.where(y > 0, np.maximum(0.0, y - o) / np.where(y > 0, y, 1.0), 0.0)

    @property
    def increases(self) -> np.ndarray:
        """``[N] bool`` whether the probability rose (``Y < O``); their mean times 100 is
        :func:`increase_in_confidence`."""
        return self.original < self.masked


def confidence_scores(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> ConfidenceScores:
    """The per-image numbers behind :func:`average_drop` and :func:`increase_in_confidence`
    (arguments as :func:`average_drop`)."""
    y, o, chosen = _confidence_pair(model, images, heatmaps, targets, batch_size, apply_softmax)
    return ConfidenceScores(original=y, masked=o, targets=chosen)


def average_drop(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    r"""Average drop in confidence, in percent (Chattopadhyay et al., Grad-CAM++, WACV 2018).

    .. math::
        \mathrm{Average\ Drop} = \frac{100}{N} \sum_i \frac{\max(0, Y_i^c - O_i^c)}{Y_i^c}

    ``Y^c`` is the target class's probability on the image, ``O^c`` on the explanation map
    ``image * heatmap`` (the map broadcast over the channels). A map that keeps what the model
    needs loses little: **lower is better**. An image with ``Y^c = 0`` contributes 0.

    Args:
        model, images, targets, batch_size, apply_softmax: as :func:`deletion_curve`.
        heatmaps: ``[N, *S]`` maps in ``[0, 1]`` at the image's resolution (an Explanation's
            ``heatmaps`` are), or an Explanation.

    Returns:
        A float in ``[0, 100]``.
    """
    scores = confidence_scores(model, images, heatmaps, targets, batch_size=batch_size,
                               apply_softmax=apply_softmax)
    return float(np.mean(scores.drops))


def increase_in_confidence(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    r"""Increase in confidence, in percent (Chattopadhyay et al., Grad-CAM++, WACV 2018).

    .. math::
        \mathrm{Increase\ in\ Confidence} = \frac{100}{N} \sum_i \mathbb{1}[Y_i^c < O_i^c]

    The share of images whose target probability *rises* when only the explanation map
    ``image * heatmap`` is shown: **higher is better**. Arguments as :func:`average_drop`.

    Returns:
        A float in ``[0, 100]``.
    """
    scores = confidence_scores(model, images, heatmaps, targets, batch_size=batch_size,
                               apply_softmax=apply_softmax)
    return float(100.0 * np.mean(scores.increases))


def _confidence_pair(model, images, heatmaps, targets, batch_size, apply_softmax):
    """``(Y [N], O [N], targets [N])``: target probabilities on the images and on
    ``image * heatmap``."""
    expl_targets = explanation_targets(heatmaps)
    imgs, hms, channel = images_and_maps(images, heatmaps)
    lo, hi = (float(hms.min()), float(hms.max())) if hms.size else (0.0, 0.0)
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"heatmaps must be in [0, 1] to mask the images (got values in [{lo:.3g}, {hi:.3g}]); "
            "scale each map by its maximum first (an Explanation's heatmaps already are)."
        )
    scorer = Scorer(model, apply_softmax, batch_size)
    chosen = resolve_targets(targets, expl_targets, scorer, imgs)
    n = len(imgs)
    y = np.empty(n, np.float64)
    o = np.empty(n, np.float64)
    maps = hms.reshape(hms.shape + (1,) * channel)
    for dest, make in ((y, lambda idx: imgs[idx]), (o, lambda idx: imgs[idx] * maps[idx])):
        for idx, probs in scorer.batches(n, make):
            check_classes(chosen, scorer.num_classes)
            dest[idx] = probs[np.arange(len(idx)), chosen[idx]]
    return y, o, chosen


