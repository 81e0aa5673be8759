r"""ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022, arXiv:2202.00449).

Removing pixels by a map and filling them with a constant leaks the class through the *shape*
of the hole. ROAD fills each removed pixel with a noisy linear interpolation of its neighbours,
so that the filled values say (almost) nothing about where the mask was, then scores the
unchanged model:

* **MoRF** (most relevant first): remove the top fraction ``phi`` of the pixels by the map. A
  faithful map makes the probability fall fast: **lower is better**.
* **LeRF** (least relevant first): remove the bottom fraction. The probability should stay
  high: **higher is better**.
* ``combined = mean over phi of (p_LeRF - p_MoRF) / 2``, in ``[-0.5, 0.5]``, **higher is better**:
  pytorch-grad-cam's ``ROADCombined`` (a single number of that library, not of the paper; the
  paper reports the two curves).

**The imputation** (:func:`noisy_linear_imputation`). For every removed pixel ``p`` and channel,

.. math::
    S_p u_p - \sum_{q \in N(p) \cap R} w_{pq} u_q = \sum_{q \in N(p) \setminus R} w_{pq} v_q,
    \qquad S_p = \sum_{q \in N(p)} w_{pq},

over the 8 neighbours ``N(p)`` inside the image, with weight ``1/6`` for the 4 edge neighbours
and ``1/12`` for the 4 diagonal ones (ROAD's ``neighbors_weights``): each removed pixel is the
weighted mean of its neighbours, known or removed. Out-of-image neighbours are dropped and the
equation divides by the weights left (``S = 1`` inside, ``2/3`` on an edge, ``5/12`` in a
corner), as ROAD's code does. One sparse symmetric positive definite system per image and mask,
all channels sharing its matrix; then ``noise * N(0, 1)`` is added to the removed pixels only
(``noise=0.01`` as ROAD, no clipping; ``noise=0`` for a deterministic imputation). The noise
lives in the model's input units, like everything in :mod:`tf_gradcam.metrics`: ROAD's own
experiments added 0.01 in ``[0, 1]`` pixel units, the same for a model fed ``[0, 1]`` images
(use 0.02 for ``[-1, 1]`` inputs).

**Solvers.** ``solver="scipy"`` assembles the system (vectorised, the 8-neighbour coupling
matrix of an image size built once) and factorises it with SciPy's ``spsolve`` (SuperLU, all
channels in one factorisation): exact to rounding, and on a CPU the fastest way. This is why
SciPy is a dependency of tf_gradcam. ``solver="cg"`` solves all systems of a batch at once in
TensorFlow by a conjugate gradient in float64 on the stencil form of the operator (no matrix is
built; systems that have converged are frozen; the loop compiled by XLA), inside the same
compiled step as the model: it matches ``spsolve`` to about 1e-7 and is what an accelerator
should run. On 2 CPU cores ROAD with SciPy took 0.26 s per 64 x 64 image (nine fractions, both
orders; 10x the model's forward passes) against 0.71 s with the conjugate gradient, and 1.3 s
against 16 s at 128 x 128 (``benchmarks/results/metrics.json``): SciPy's factorisation wins
by 3-12x on a CPU and the gap grows with the image (the iterations grow with the size of the
largest hole). ``"auto"`` takes ``"cg"`` when TensorFlow sees a GPU, else ``"scipy"``. Both
draw the same noise, so they agree to solver precision.

Ranking: ties in the map are broken in raster order (as :func:`deletion_curve`); removing a
fraction ``phi`` removes exactly ``floor(phi * H * W)`` pixels (ROAD's ``int(H * W * p)``), all
channels of a pixel together; ``tie_break="jitter"`` reproduces ROAD's code instead (the map
min-max normalised plus one fixed ``1e-4 * N(0, 1)`` field, the same for every image).

Conventions of the three implementations differ (ROAD's code counts LeRF's ``p`` as the fraction
*kept*, pytorch-grad-cam counts both as kept, Quantus only does MoRF): here ``fractions`` are the
fraction **removed** for both orders, ``0.1 .. 0.9`` by default (pytorch-grad-cam's nine levels).
ROAD itself reports accuracy against the true labels; :class:`RoadResult` holds both the target
probability and that hit per image and fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from tf_gradcam.metrics.solvers import _cg_solve_xla, _solve_scipy
from tf_gradcam.metrics._inputs import (
    DEFAULT_BATCH_SIZE,
    Scorer,
    TargetsLike,
    check_classes,
    check_seed,
    explanation_targets,
    images_and_maps,
    labels_or_top,
    per_row,
    pixel_ranks,
    progress,
    resolve_targets,
    row_seeds,
)

__all__ = ["DEFAULT_FRACTIONS", "RoadResult", "noisy_linear_imputation", "road"]

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_NOISE = 0.01
SOLVERS = ("auto", "scipy", "cg")
_RNG_TAG = 1  # this metric's stream of random numbers (see row_seeds)


@dataclass
class RoadResult:
    """ROAD for ``N`` images at ``F`` removal fractions.

    Attributes:
        fractions: ``[F] float64`` fraction of the pixels removed (both orders).
        morf: ``[N, F] float64`` target probability with the most relevant pixels imputed.
        lerf: ``[N, F] float64`` target probability with the least relevant pixels imputed.
        morf_hits, lerf_hits: ``[N, F] bool`` whether the top class after imputation is the
            image's label (the ground truth if given, else the top class on the clean image):
            ROAD's accuracy, per image.
        original: ``[N] float64`` target probability on the unperturbed image.
        targets: ``[N] int64`` the class scored; labels: ``[N] int64`` the class hits compare to.
    """

    fractions: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    morf_hits: np.ndarray
    lerf_hits: np.ndarray
    original: np.ndarray
    targets: np.ndarray
    labels: np.ndarray

    @property
    def morf_change(self) -> np.ndarray:
        """``[N, F]`` probability after MoRF imputation minus on the clean image (<= 0 is usual)."""
        return self.morf - self.original[:, None]

    @property
    def lerf_change(self) -> np.ndarray:
        """``[N, F]`` probability after LeRF imputation minus on the clean image."""
        return self.lerf - self.original[:, None]

    @property
    def combined_per_image(self) -> np.ndarray:
        """``[N]``: ``mean over fractions of (lerf - morf) / 2`` per image (higher is better)."""
        return (self.lerf - self.morf).mean(axis=1) / 2

    @property
    def combined(self) -> float:
        """``(LeRF - MoRF) / 2`` averaged over fractions and images, in ``[-0.5, 0.5]``."""
        return float(self.combined_per_image.mean())

    @property
    def morf_score(self) -> float:
        """Mean MoRF probability over fractions and images (lower is better)."""
        return float(self.morf.mean())

    @property
    def lerf_score(self) -> float:
        """Mean LeRF probability over fractions and images (higher is better)."""
        return float(self.lerf.mean())

    @property
    def morf_accuracy(self) -> np.ndarray:
        """``[F]`` share of images still classified as their label after MoRF (ROAD's curve)."""
        return self.morf_hits.mean(axis=0)

    @property
    def lerf_accuracy(self) -> np.ndarray:
        """``[F]`` the same after LeRF."""
        return self.lerf_hits.mean(axis=0)


def road(
    model: Callable,
    images: Any,
    heatmaps: Any,
    targets: TargetsLike = None,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    tie_break: str = "raster",
    solver: str = "auto",
    labels: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply_softmax: bool | str = "auto",
    verbose: int = 0,
) -> RoadResult:
    """ROAD's MoRF and LeRF curves with noisy linear imputation (Rong et al., ICML 2022).

    For each image, order and fraction the pixels are imputed (see the module docstring) and the
    model scored: ``2 * F + 1`` forward passes and ``2 * F`` imputations per image.

    Args:
        model: a ``keras.Model`` with one ``[N, C]`` output (or a callable ``images -> [N, C]``).
        images: ``[N, H, W, C]`` (or ``[N, H, W]``) float images in the model's input space.
        heatmaps: ``[N, H, W]`` maps (only their order matters), or an Explanation.
        targets: ``None`` (top class, or the Explanation's targets), an int, or ``N`` ints.
        fractions: fractions of pixels removed, each in ``[0, 1)`` (``0`` is the clean image).
        noise: standard deviation of the noise added to imputed pixels, in input units;
            ``0`` for a reproducible, noise-free imputation.
        seed: seeds the noise (and the ``"jitter"`` tie break); the draws depend on the image's
            index, order and fraction only, not on ``batch_size``.
        tie_break: ``"raster"`` (stable order) or ``"jitter"`` (ROAD's code).
        solver: ``"auto"``, ``"scipy"`` or ``"cg"`` (see the module docstring).
        labels: ``[N]`` ground-truth classes for the hits (default: the clean top class).
        batch_size: imputed images per model call (and per conjugate-gradient batch).
        apply_softmax: ``"auto"``, ``True`` or ``False`` (see :mod:`tf_gradcam.metrics`).
        verbose: 0 silent, 1 a progress bar, 2 one line at the end.

    Returns:
        A :class:`RoadResult` (per image and fraction; ``.combined``, ``.morf_score``, ...).
    """
    expl_targets = explanation_targets(heatmaps)
    imgs, hms, channel = images_and_maps(images, heatmaps)
    if hms.ndim != 3:
        raise ValueError(f"road() imputes 2D images: heatmaps must be [N, H, W], got {hms.shape}.")
    fracs = _check_fractions(fractions)
    noise = _check_noise(noise)
    seed = check_seed(seed)
    use = _choose_solver(solver)
    if tie_break not in ("raster", "jitter"):
        raise ValueError(f"tie_break must be 'raster' or 'jitter', got {tie_break!r}.")
    n, h, w = hms.shape
    pixels = h * w
    counts = np.floor(fracs * pixels + 1e-9).astype(np.int64)

    scorer = Scorer(model, apply_softmax, batch_size)
    chosen = resolve_targets(targets, expl_targets, scorer, imgs)
    clean = np.empty((n, 0))
    for idx, probs in scorer.batches(n, lambda idx: imgs[idx]):
        check_classes(chosen, scorer.num_classes)
        if not clean.shape[1]:
            clean = np.empty((n, probs.shape[1]))
        clean[idx] = probs
    original = clean[np.arange(n), chosen]
    truth = clean.argmax(axis=1) if labels is None else labels_or_top(labels, scorer, imgs,
                                                                      "labels")
    check_classes(truth, scorer.num_classes)

    if tie_break == "jitter":
        lo = hms.reshape(n, -1).min(axis=1).reshape(n, 1, 1)
        hi = hms.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
        field = 1e-4 * np.random.default_rng(seed).standard_normal((h, w))
        ranks = pixel_ranks((hms - lo) / (hi - lo + 1e-5) + field)
    else:
        ranks = pixel_ranks(hms)
    ranks = ranks.reshape(n, h, w).astype(np.int32)
    planes = imgs if channel else imgs[..., None]

    nf = len(fracs)
    rows = n * 2 * nf  # row r: image r // (2F), order (r // F) % 2 (0 MoRF, 1 LeRF), fraction r % F
    probs_of = np.empty((n, 2, nf), np.float64)
    hits = np.empty((n, 2, nf), bool)
    scorer.decide(imgs)
    step = _compiled_step(scorer, use, channel)
    level = np.float32(noise)
    bar = progress(n, verbose)
    for start in range(0, rows, scorer.batch_size):
        r = np.arange(start, min(start + scorer.batch_size, rows))
        i, o, f = r // (2 * nf), (r // nf) % 2, r % nf
        k = counts[f]
        seeds = row_seeds(seed, _RNG_TAG, r)
        if use == "cg":
            probs, _ = step(planes[i], ranks[i], k.astype(np.int32), o.astype(bool), seeds, level)
        else:
            removed = _removed(ranks[i], k, o.astype(bool), pixels)
            filled = np.stack([_solve_scipy(planes[j], m) for j, m in zip(i, removed)])
            probs, _ = step(filled.astype(np.float32), removed, seeds, level)
        check_classes(chosen, scorer.num_classes)
        probs_of[i, o, f] = probs[np.arange(len(r)), chosen[i]]
        hits[i, o, f] = probs.argmax(axis=1) == truth[i]
        bar.update(int(r[-1] + 1) // (2 * nf))
    return RoadResult(
        fractions=fracs,
        morf=probs_of[:, 0],
        lerf=probs_of[:, 1],
        morf_hits=hits[:, 0],
        lerf_hits=hits[:, 1],
        original=original,
        targets=chosen,
        labels=truth,
    )


def noisy_linear_imputation(
    images: Any,
    removed: Any,
    *,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    solver: str = "auto",
) -> np.ndarray:
    """ROAD's noisy linear imputation of the ``removed`` pixels of each image.

    Args:
        images: ``[N, H, W, C]`` or ``[N, H, W]`` float images.
        removed: ``[N, H, W]`` bool, the pixels to impute (all channels). At least one pixel of
            every image must stay known, else the system is singular (constant fields solve it).
        noise: standard deviation of the Gaussian noise added to the imputed pixels.
        seed: seeds the noise; image ``i`` draws from its own stream ``(seed, i)``.
        solver: ``"auto"``, ``"scipy"`` or ``"cg"`` (see the module docstring).

    Returns:
        ``[N, H, W(, C)] float32``: known pixels unchanged, removed ones imputed.
    """
    imgs = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    if not (np.issubdtype(imgs.dtype, np.floating) or np.issubdtype(imgs.dtype, np.integer)):
        raise ValueError(f"images must hold real numbers, got dtype {imgs.dtype}.")
    mask = np.asarray(removed.numpy() if hasattr(removed, "numpy") else removed)
    if mask.dtype != bool:
        raise ValueError(f"removed must be a bool mask [N, H, W], got dtype {mask.dtype}.")
    if mask.ndim != 3 or imgs.shape[:3] != mask.shape or imgs.ndim not in (3, 4):
        raise ValueError(
            f"images must be [N, H, W(, C)] and removed [N, H, W] of the same N, H, W; got "
            f"{imgs.shape} and {mask.shape}."
        )
    if mask.reshape(len(mask), -1).all(axis=1).any():
        raise ValueError("An image has every pixel removed: there is nothing to impute from.")
    noise = _check_noise(noise)
    seed = check_seed(seed)
    use = _choose_solver(solver)
    channel = imgs.ndim == 4
    planes = (imgs if channel else imgs[..., None]).astype(np.float64)
    seeds = row_seeds(seed, _RNG_TAG, np.arange(len(imgs)))
    if use == "cg":
        filled = _cg_solve_xla(tf.constant(planes),
                               tf.constant(mask[..., None], tf.float64)).numpy()
    else:
        filled = np.stack([_solve_scipy(p, m) for p, m in zip(planes, mask)])
    out = _with_noise(
        tf.constant(filled, tf.float32), tf.constant(mask), tf.constant(seeds), noise
    ).numpy()
    return out if channel else out[..., 0]


def _with_noise(filled: tf.Tensor, removed: tf.Tensor, seeds: tf.Tensor, noise: Any
                ) -> tf.Tensor:
    """``filled [B, H, W, C] float32`` plus ``noise * N(0, 1)`` on the ``removed [B, H, W]``
    pixels, each row drawing from its own seed (``noise`` a number, or a tensor in-graph)."""
    if isinstance(noise, float) and noise == 0:
        return filled
    shape = tf.shape(filled)[1:]
    eps = per_row(lambda s: tf.random.stateless_normal(shape, s, dtype=tf.float32), seeds,
                  tf.float32)
    return filled + noise * eps * tf.cast(removed, tf.float32)[..., None]


def _removed(ranks: np.ndarray, k: np.ndarray, lerf: np.ndarray, pixels: int) -> np.ndarray:
    """``[B, H, W] bool``: the ``k`` most (MoRF) or least (LeRF) salient pixels of each row."""
    kk = k.reshape(-1, 1, 1)
    return np.where(lerf.reshape(-1, 1, 1), ranks >= pixels - kk, ranks < kk)


def _compiled_step(scorer: Scorer, solver: str, channel: int):
    """``step(..., noise) -> (probabilities, {})``: the noise (and the removal count, for
    ``"cg"``) are arguments, so one trace serves every ROAD call on the model."""

    def finish(filled, removed, seeds, noise):
        x = _with_noise(filled, removed, seeds, tf.cast(noise, tf.float32))
        return (x if channel else x[..., 0]), {}

    def solve_and_finish(planes, ranks, k, lerf, seeds, noise):
        pixels = tf.shape(ranks)[1] * tf.shape(ranks)[2]
        kk = k[:, None, None]
        removed = tf.where(lerf[:, None, None], ranks >= pixels - kk, ranks < kk)
        filled = _cg_solve_xla(tf.cast(planes, tf.float64),
                               tf.cast(removed, tf.float64)[..., None])
        return finish(tf.cast(filled, tf.float32), removed, seeds, noise)

    return scorer.compile(solve_and_finish if solver == "cg" else finish,
                          key=("road", solver, channel))


# ------------------------------------------------------------------------ checks
def _check_fractions(fractions: Any) -> np.ndarray:
    arr = np.asarray(fractions, np.float64).reshape(-1)
    if not len(arr) or not np.isfinite(arr).all() or (arr < 0).any() or (arr >= 1).any():
        raise ValueError(
            f"fractions are the share of pixels removed, each in [0, 1) (1 would leave nothing "
            f"to impute from); got {fractions!r}."
        )
    return arr


def _check_noise(noise: Any) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not (
            float(noise) >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise is a standard deviation >= 0, got {noise!r}.")
    return float(noise)


def _choose_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if solver == "auto":
        return "cg" if tf.config.list_logical_devices("GPU") else "scipy"
    return solver
