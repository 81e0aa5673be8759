"""Deletion and insertion (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018): the class probability as pixels are removed or put back in order
of saliency. Lower deletion and higher insertion AUC are better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tf_gradcam.metrics._inputs import (
    DEFAULT_BATCH_SIZE,
    Baseline,
    Scorer,
    TargetsLike,
    baseline_fn,
    check_classes,
    explanation_targets,
    images_and_maps,
    resolve_targets,
)

DEFAULT_STEPS = 50


@dataclass
class PerturbationCurve:
    """A deletion or insertion curve for ``N`` images sampled at ``S + 1`` points.

    Attributes:
        fractions: ``[S + 1] float64`` the fraction of pixels removed (deletion) or inserted
            (insertion) at each point, from 0 to 1: the x axis.
        scores: ``[N, S + 1] float64`` the target class's probability at each point.
        aucs: ``[N] float64`` area under each curve (trapezoid rule over ``fractions``), in [0, 1].
        targets: ``[N] int64`` the class scored per image.
    """

    fractions: np.ndarray
    scores: np.ndarray
    aucs: np.ndarray
    targets: np.ndarray

    @property
    def auc(self) -> float:
        """The mean AUC over the images."""
        return float(np.mean(self.aucs))


def deletion_curve(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> PerturbationCurve:
    r"""The deletion curve (Petsiuk et al., RISE, BMVC 2018).

    Pixels are removed (set to the ``baseline``) in order of decreasing saliency, all channels
    of a pixel at once; after each of ``steps`` equal steps the target class's probability is
    recorded. Point ``k`` has :math:`\mathrm{round}(kP/S)` of the ``P`` pixels removed; ties in
    the map are broken in raster order. A map that finds the evidence makes the probability
    fall fast: **lower AUC is better**.

    Args:
        model: a ``keras.Model`` with one input and one ``[N, C]`` output (or any callable
            ``images -> [N, C]``).
        images: ``[N, *S, C]`` (or ``[N, *S]``) float images in the model's input space.
        heatmaps: ``[N, *S]`` maps at the image's resolution, any real values (only their order
            matters), or an Explanation.
        targets: ``None`` (top class, or the Explanation's targets), an int, or ``N`` ints.
        steps: number of steps ``S >= 1``; the curve has ``S + 1`` points. RISE used one step
            per 224 pixels (224 steps on a 224 x 224 image); the cost is ``N (S + 1)`` images.
        baseline: what a removed pixel becomes: a number (default 0, RISE's deletion), ``"blur"``
            (the image blurred by an 11 x 11 Gaussian of sigma 5, 2D images only), or an array
            broadcastable to ``images``.
        batch_size: images per model call.
        apply_softmax: ``"auto"``, ``True`` or ``False`` (see the module docstring).

    Returns:
        A :class:`PerturbationCurve`.
    """
    return _perturbation_curve(
        model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, insert=False
    )


def insertion_curve(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = "blur",
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> PerturbationCurve:
    """The insertion curve (Petsiuk et al., RISE, BMVC 2018).

    Starting from the ``baseline`` (by default RISE's blurred copy of the image), the image's
    pixels are put back in order of decreasing saliency; the target class's probability is
    recorded after each step. **Higher AUC is better.** Arguments as :func:`deletion_curve`.
    """
    return _perturbation_curve(
        model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, insert=True
    )


def deletion_auc(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    """Mean area under the deletion curve, in ``[0, 1]`` (lower is better).

    The x axis is the fraction of pixels removed, from 0 to 1; the y axis the target class's
    softmax probability; the area is taken by the trapezoid rule. See :func:`deletion_curve`
    (RISE, Petsiuk et al., BMVC 2018) for the arguments and per-image values.
    """
    return deletion_curve(
        model,
        images,
        heatmaps,
        targets,
        steps=steps,
        baseline=baseline,
        batch_size=batch_size,
        apply_softmax=apply_softmax,
    ).auc


def insertion_auc(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: Baseline = "blur",
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
) -> float:
    """Mean area under the insertion curve, in ``[0, 1]`` (higher is better).

    See :func:`insertion_curve` (RISE, Petsiuk et al., BMVC 2018).
    """
    return insertion_curve(
        model,
        images,
        heatmaps,
        targets,
        steps=steps,
        baseline=baseline,
        batch_size=batch_size,
        apply_softmax=apply_softmax,
    ).auc


def _perturbation_curve(
    model, images, heatmaps, targets, steps, baseline, batch_size, apply_softmax, *, insert: bool
) -> PerturbationCurve:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")
    expl_targets = explanation_targets(heatmaps)
    imgs, hms, channel = images_and_maps(images, heatmaps)
    n = len(imgs)
    spatial = hms.shape[1:]
    pixels = int(np.prod(spatial))
    counts = np.round(np.linspace(0, pixels, int(steps) + 1)).astype(np.int64)
    fractions = counts / max(pixels, 1)
    base_of = baseline_fn(baseline, imgs, len(spatial))
    scorer = Scorer(model, apply_softmax, batch_size)
    chosen = resolve_targets(targets, expl_targets, scorer, imgs)

    points = int(steps) + 1
    scores = np.empty((n, points), np.float64)
    current: dict[str, Any] = {"i": -1}

    def sample(i: int) -> tuple[np.ndarray, np.ndarray]:
        # Ranks and baseline of one image, computed once: the (image, step) pairs come in order.
        if current["i"] != i:
            order = np.argsort(-hms[i].ravel(), kind="stable")
            rank = np.empty(pixels, np.int64)
            rank[order] = np.arange(pixels)
            current.update(i=i, rank=rank.reshape(spatial + (1,) * channel), base=base_of(i))
        return current["rank"], current["base"]

    def make(idx: np.ndarray) -> np.ndarray:
        batch = np.empty((len(idx),) + imgs.shape[1:], np.float32)
        for j, flat in enumerate(idx):
            i, k = divmod(int(flat), points)
            rank, base = sample(i)
            changed = rank < counts[k]
            batch[j] = (
                np.where(changed, imgs[i], base) if insert else np.where(changed, base, imgs[i])
            )
        return batch

    for idx, probs in scorer.batches(n * points, make):
        if not len(idx):
            continue
        check_classes(chosen, scorer.num_classes)
        i, k = np.divmod(idx, points)
        scores[i, k] = probs[np.arange(len(idx)), chosen[i]]
    widths = np.diff(fractions)
    aucs = ((scores[:, 1:] + scores[:, :-1]) / 2 * widths).sum(axis=1)
    return PerturbationCurve(fractions=fractions, scores=scores, aucs=aucs, targets=chosen)


