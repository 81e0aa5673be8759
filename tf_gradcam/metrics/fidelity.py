r"""MuFidelity (Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020, definition 3), as xplique implements it.

For random subsets ``S`` of the image set to a baseline, the correlation over subsets between
the map's mass on ``S`` and the drop of the target probability:

.. math::
    \mu_F = \operatorname{corr}_S\Big(\sum_{i \in S} g_i,\; f(x) - f(x_{[x_S = \bar x_S]})\Big)

A map whose mass sits where the evidence is predicts the drops: **higher is better**, in
``[-1, 1]``. Defaults are xplique's ``MuFidelity``: a ``9 x 9`` grid of cells resized to the
image (nearest neighbour, so cells differ by a pixel), each cell removed **independently with
probability 0.2** (so the number removed varies; ``exact_count=True`` removes exactly
``round(0.2 * 81)`` cells, the paper's fixed ``|S|``), 200 subsets per image, baseline 0,
Spearman's correlation (``correlation="pearson"`` is the paper's). The score is the target
class's probability (tf_gradcam's convention, ``apply_softmax``); xplique's default scores the
raw output, which ``apply_softmax=False`` gives. A map with no mass, or a model whose score never
moves, has no correlation: NaN (xplique returns 0 there, ``nan_as_zero=True``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tf_gradcam.engine import checks
from tf_gradcam.metrics._inputs import (
    DEFAULT_BATCH_SIZE,
    Baseline,
    Scorer,
    TargetsLike,
    baseline_fn,
    check_classes,
    check_seed,
    explanation_targets,
    images_and_maps,
    per_row,
    progress,
    resolve_targets,
    row_seeds,
)
from tf_gradcam.metrics.similarity import pearson_tf, spearman_tf

__all__ = ["mu_fidelity"]

_RNG_TAG = 2


def mu_fidelity(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    grid_size: int | None = 9,
    subset_fraction: float = 0.2,
    samples: int = 200,
    baseline: Baseline = 0.0,
    correlation: str = "spearman",
    exact_count: bool = False,
    nan_as_zero: bool = False,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
    verbose: int = 0,
) -> np.ndarray:
    """``[N] float64``: MuFidelity of each map (higher is better).

    Args:
        model, images, targets, batch_size, apply_softmax: as :func:`deletion_curve`.
        heatmaps: ``[N, H, W]`` maps at the image's resolution (or an Explanation).
        grid_size: cells per side (clamped to the image size); ``None``: one cell per pixel.
        subset_fraction: probability that a cell is removed (or the share removed, with
            ``exact_count``), in ``(0, 1)``.
        samples: random subsets per image; the cost is ``N * (samples + 1)`` forward passes.
        baseline: what removed pixels become: a number, ``"blur"`` or an array (as deletion).
        correlation: ``"spearman"`` (xplique) or ``"pearson"`` (the paper).
        exact_count: remove exactly ``round(subset_fraction * cells)`` cells per subset.
        nan_as_zero: report an undefined correlation as 0 (xplique) instead of NaN.
        seed: seeds the subsets; image ``i``'s subsets do not depend on ``batch_size``.
        verbose: 0 silent, 1 a progress bar, 2 one line at the end.
    """
    if correlation not in ("spearman", "pearson"):
        raise ValueError(f"correlation must be 'spearman' or 'pearson', got {correlation!r}.")
    if isinstance(subset_fraction, bool) or not 0 < float(subset_fraction) < 1:
        raise ValueError(f"subset_fraction must be in (0, 1), got {subset_fraction!r}.")
    samples = checks.positive_int(samples, "samples")
    if samples < 3:
        raise ValueError(f"samples must be >= 3 to correlate anything, got {samples}.")
    seed = check_seed(seed)
    expl_targets = explanation_targets(heatmaps)
    imgs, hms, channel = images_and_maps(images, heatmaps)
    if hms.ndim != 3:
        raise ValueError(f"mu_fidelity() needs 2D maps [N, H, W], got {hms.shape}.")
    n, h, w = hms.shape
    if grid_size is None:
        gh, gw = h, w
    else:
        g = checks.positive_int(grid_size, "grid_size")
        gh, gw = min(g, h), min(g, w)
    count = int(round(float(subset_fraction) * gh * gw))
    base_of = baseline_fn(baseline, imgs, 2)

    scorer = Scorer(model, apply_softmax, batch_size)
    chosen = resolve_targets(targets, expl_targets, scorer, imgs)
    clean = np.empty(n, np.float64)
    for idx, probs in scorer.batches(n, lambda idx: imgs[idx]):
        check_classes(chosen, scorer.num_classes)
        clean[idx] = probs[np.arange(len(idx)), chosen[idx]]
    scorer.decide(imgs)
    fraction = float(subset_fraction)

    def build(x, base, heat, seeds):
        u = per_row(lambda s: tf.random.stateless_uniform([gh * gw], s), seeds, tf.float32)
        if exact_count:
            rank = tf.argsort(tf.argsort(u, axis=1, stable=True), axis=1, stable=True)
            cells = tf.cast(rank < count, tf.float32)
        else:
            cells = tf.cast(u < fraction, tf.float32)
        removed = tf.image.resize(tf.reshape(cells, [-1, gh, gw, 1]), (h, w), "nearest")
        mass = tf.reduce_sum(tf.cast(heat, tf.float64) * tf.cast(removed[..., 0], tf.float64),
                             axis=[1, 2])
        mask = removed if channel else removed[..., 0]
        return x * (1 - mask) + base * mask, {"mass": mass}

    step = scorer.compile(build, key=("mu_fidelity", gh, gw, h, w, count, fraction,
                                      bool(exact_count), channel))
    drops = np.empty((n, samples), np.float64)
    masses = np.empty((n, samples), np.float64)
    rows = n * samples
    bar = progress(n, verbose)
    for start in range(0, rows, scorer.batch_size):
        r = np.arange(start, min(start + scorer.batch_size, rows))
        i, s = np.divmod(r, samples)
        base = np.stack([np.broadcast_to(base_of(int(j)), imgs.shape[1:]) for j in i])
        probs, aux = step(imgs[i], base.astype(np.float32), hms[i].astype(np.float32),
                          row_seeds(seed, _RNG_TAG, r))
        check_classes(chosen, scorer.num_classes)
        drops[i, s] = clean[i] - probs[np.arange(len(r)), chosen[i]]
        masses[i, s] = aux["mass"]
        bar.update(int(r[-1] + 1) // samples)
    corr = spearman_tf if correlation == "spearman" else pearson_tf
    out = corr(tf.constant(masses), tf.constant(drops)).numpy()
    return np.nan_to_num(out, nan=0.0) if nan_as_zero else out
