r"""Does the map stay put when the input barely moves? Both metrics explain ``samples`` noisy
copies of each image **for the same class** as the clean image and keep the worst case:
**lower is better**. The cost is ``N * samples`` explanations (Score-CAM's are ``K`` forward
passes each).

* :func:`max_sensitivity` (Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and
  Sensitivity of Explanations", NeurIPS 2019):
  :math:`\max_j \lVert \Phi(x + \delta_j) - \Phi(x) \rVert_2 / \lVert \Phi(x) \rVert_2` with
  ``delta`` uniform in the L-infinity ball of radius ``r`` (the authors' Monte Carlo over
  ``U[-r, r]`` per input value, ``r = 0.2``, 50 samples, no clipping, the relative Frobenius
  norm of their code). Scale-free in the map; an all-zero clean map gives NaN.
* :func:`local_lipschitz` (Alvarez-Melis and Jaakkola, "On the Robustness of Interpretability
  Methods", ICML 2018 workshop): :math:`\max_j \lVert \Phi(x) - \Phi(x'_j) \rVert_2 /
  \lVert x - x'_j \rVert_2` with ``x' = x + N(0, sigma^2)`` per value (Quantus' Monte Carlo,
  ``sigma = 0.1``; the authors searched the box by Bayesian optimisation, which finds larger
  maxima than sampling). It depends on the input's scale.

``radius`` and ``sigma`` are in the model's input units: the defaults are meant for ``[0, 1]``
images; scale them for other preprocessing. ``Phi`` is the explainer's ``heatmaps`` (max-normalised
per image, so a number does not depend on which images share a batch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_gradcam.engine import checks
from tf_gradcam.metrics._inputs import check_seed, per_row, progress, row_seeds

__all__ = ["local_lipschitz", "max_sensitivity"]

_RNG_TAG = {"sensitivity": 3, "lipschitz": 4}
DEFAULT_BATCH_SIZE = 32


def max_sensitivity(
    explainer: Any,
    images: Any,
    targets: Any = None,
    *,
    radius: float = 0.2,
    samples: int = 50,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verbose: int = 0,
) -> np.ndarray:
    """``[N] float64``: the largest relative change of each image's map under uniform noise.

    Args:
        explainer: a tf_gradcam explainer (``tfg.GradCAM(model)``; its compiled step is reused
            for the noisy copies), or any callable ``(images, classes) -> Explanation or
            heatmaps [N, ...]``.
        images: ``[N, *input_shape]`` float images in the model's input space (one input).
        targets: ``None`` (each image's top class), an int or ``N`` ints; the noisy copies are
            explained for the class the clean image was.
        radius: half-width of the L-infinity ball, in input units (> 0).
        samples: noisy copies per image.
        seed: seeds the noise; image ``i``'s copies do not depend on ``batch_size``.
        batch_size: images per explainer call.
        verbose: 0 silent, 1 a progress bar, 2 one line at the end.
    """
    return _stability("sensitivity", explainer, images, targets, radius, samples, seed,
                      batch_size, verbose)


def local_lipschitz(
    explainer: Any,
    images: Any,
    targets: Any = None,
    *,
    sigma: float = 0.1,
    samples: int = 50,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verbose: int = 0,
) -> np.ndarray:
    """``[N] float64``: the largest ``|| map change || / || input change ||`` under Gaussian
    noise of standard deviation ``sigma`` (input units). Arguments as :func:`max_sensitivity`."""
    return _stability("lipschitz", explainer, images, targets, sigma, samples, seed,
                      batch_size, verbose)


def _stability(kind, explainer, images, targets, scale, samples, seed, batch_size, verbose):
    from tf_gradcam.engine.explainer import Explainer

    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) or not (
            float(scale) > 0 and np.isfinite(scale)):
        name = "radius" if kind == "sensitivity" else "sigma"
        raise ValueError(f"{name} must be a positive number (input units), got {scale!r}.")
    scale = float(scale)
    samples = checks.positive_int(samples, "samples")
    batch_size = checks.positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    compiled = isinstance(explainer, Explainer)
    if not compiled and not callable(explainer):
        raise TypeError(f"explainer must be a tf_gradcam explainer or a callable "
                        f"(images, classes) -> heatmaps; got {type(explainer).__name__}.")
    if compiled:
        if len(explainer.input_specs) != 1:
            raise ValueError("The stability metrics perturb one input; this model has "
                             f"{len(explainer.input_specs)}.")
        imgs = explainer.prepare_inputs(images)[0]
        clean = explainer(imgs, targets, batch_size=batch_size)
    else:
        imgs = np.asarray(images.numpy() if hasattr(images, "numpy") else images, np.float32)
        clean = explainer(imgs, targets)
    h0, classes = _heatmaps_and_classes(clean, len(imgs), targets)
    n = len(imgs)
    norms0 = np.sqrt((h0.reshape(n, -1).astype(np.float64) ** 2).sum(axis=1))

    @tf.function(reduce_retracing=True)
    def perturb(x, seeds):
        shape = tf.shape(x)[1:]
        if kind == "sensitivity":
            draw = lambda s: tf.random.stateless_uniform(shape, s, -scale, scale, tf.float32)
        else:
            draw = lambda s: tf.random.stateless_normal(shape, s, 0.0, scale, tf.float32)
        delta = per_row(draw, seeds, tf.float32)
        size = tf.sqrt(tf.reduce_sum(tf.reshape(tf.cast(delta, tf.float64) ** 2,
                                                [tf.shape(x)[0], -1]), axis=1))
        return x + delta, size

    worst = np.full(n, -np.inf)
    rows = n * samples
    bar = progress(n, verbose)
    for start in range(0, rows, batch_size):
        r = np.arange(start, min(start + batch_size, rows))
        i = r // samples
        noisy, size = perturb(imgs[i], row_seeds(seed, _RNG_TAG[kind], r))
        if compiled:
            out = explainer.explain_batch([noisy], classes[i])["heatmaps"].numpy()
        else:
            out, _ = _heatmaps_and_classes(explainer(noisy.numpy(), classes[i]), len(r),
                                            classes[i])
        diff = np.sqrt(((out.reshape(len(r), -1).astype(np.float64)
                         - h0[i].reshape(len(r), -1)) ** 2).sum(axis=1))
        if kind == "sensitivity":
            value = np.where(norms0[i] > 0, diff / np.where(norms0[i] > 0, norms0[i], 1.0),
                             np.nan)
        else:
            value = diff / size.numpy()
        np.fmax.at(worst, i, value)
        bar.update(int(r[-1] + 1) // samples)
    if kind == "sensitivity":
        worst[norms0 == 0] = np.nan  # no map to be relative to
    return worst


def _heatmaps_and_classes(result: Any, n: int, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    heat = getattr(result, "heatmaps", result)
    heat = np.asarray(heat.numpy() if hasattr(heat, "numpy") else heat, np.float64)
    if heat.ndim < 2 or len(heat) != n:
        raise ValueError(f"The explainer must return one map per image ([{n}, ...]), got shape "
                         f"{heat.shape}.")
    found = getattr(result, "targets", None)
    if found is not None:
        classes = np.asarray(found, np.int64)
        if classes.ndim != 1:
            raise ValueError("The stability metrics explain one class per image (no top_k).")
    elif targets is None:
        raise ValueError("A callable explainer that returns bare heatmaps needs explicit "
                         "targets (one class per image).")
    else:
        classes = np.broadcast_to(np.asarray(targets, np.int64), (n,)).copy()
    if (classes < 0).any():
        raise ValueError("The stability metrics need class targets: the noisy copies are "
                         "explained for the clean image's class (not a callable score).")
    return heat, classes
