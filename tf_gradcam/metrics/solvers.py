"""ROAD's noisy linear imputation, the noise-free part: one sparse linear system per image and
mask, solved exactly by SciPy's ``spsolve`` on a CPU or by batched conjugate gradients in
TensorFlow (float64, XLA) where a GPU is (see :mod:`tf_gradcam.metrics.imputation`)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import tensorflow as tf

#: Weights of the 4 edge and the 4 diagonal neighbours (ROAD's ``neighbors_weights``).
EDGE_WEIGHT, DIAGONAL_WEIGHT = 1.0 / 6.0, 1.0 / 12.0
#: Conjugate gradient: stop at this residual relative to the start, or after
#: ``CG_ITERATIONS_PER_PIXEL * max(H, W) + 20`` iterations (the iterations needed grow with
#: the diameter of the largest hole: about 3 per pixel of it for 1e-5 of spsolve).
CG_TOLERANCE = 1e-10
CG_ITERATIONS_PER_PIXEL = 4

_OFFSETS = tuple(
    (dy, dx, DIAGONAL_WEIGHT if dy and dx else EDGE_WEIGHT)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dy, dx) != (0, 0)
)


@functools.lru_cache(maxsize=8)
def _coupling(h: int, w: int) -> tuple[Any, np.ndarray]:
    """``(W [P, P] CSR, S [P])`` of an ``h x w`` image: ``W[p, q]`` the weight of in-image
    neighbour ``q`` of pixel ``p``, ``S[p]`` the sum of a pixel's in-image weights."""
    import scipy.sparse as sparse

    ys, xs = np.divmod(np.arange(h * w), w)
    rows, cols, vals = [], [], []
    for dy, dx, weight in _OFFSETS:
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        rows.append(np.flatnonzero(ok))
        cols.append(ny[ok] * w + nx[ok])
        vals.append(np.full(int(ok.sum()), weight))
    coupling = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w)
    )
    return coupling, np.asarray(coupling.sum(axis=1)).ravel()


def _solve_scipy(plane: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``plane [H, W, C]`` with the ``removed [H, W]`` pixels imputed (noise-free), float64."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import spsolve

    h, w, c = plane.shape
    idx = np.flatnonzero(removed.ravel())
    flat = plane.reshape(h * w, c).astype(np.float64)
    if not len(idx):
        return flat.reshape(h, w, c)
    coupling, sums = _coupling(h, w)
    rows = coupling[idx]  # [n, P]: each removed pixel's neighbours
    known = np.where(removed.ravel()[:, None], 0.0, flat)
    rhs = rows @ known  # [n, C]: the known neighbours' weighted sum
    system = (sparse.diags(sums[idx]) - rows[:, idx]).tocsc()
    solution = spsolve(system, rhs)
    out = flat.copy()
    out[idx] = solution.reshape(len(idx), c)
    return out.reshape(h, w, c)


def _stencil(t: tf.Tensor) -> tf.Tensor:
    """The weighted sum of each pixel's 8 in-image neighbours, ``[B, H, W, C]`` (zero outside):
    the separable ``[1, 2, 1] x [1, 2, 1] / 12`` minus the centre's ``4 / 12``."""
    p = tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]])
    r = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]
    s = r[:, :-2] + 2 * r[:, 1:-1] + r[:, 2:]
    return s / 12 - t * (4 / 12)


def _cg_solve(v: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
    """``v [B, H, W, C] float64`` with the pixels of ``m [B, H, W, 1]`` (1 = removed) imputed
    (noise-free), every ``(image, channel)`` system solved at once by conjugate gradients."""
    size = tf.cast(tf.maximum(tf.shape(v)[1], tf.shape(v)[2]), tf.int32)
    max_iter = CG_ITERATIONS_PER_PIXEL * size + 20
    sums = _stencil(tf.ones_like(m))
    apply = lambda u: m * (sums * u - _stencil(m * u))
    dot = lambda a, b: tf.reduce_sum(a * b, axis=[1, 2], keepdims=True)  # [B, 1, 1, C]
    rhs = m * _stencil((1 - m) * v)
    rr0 = dot(rhs, rhs)
    threshold = CG_TOLERANCE**2 * rr0

    def body(i, x, r, p, rr):
        # Systems that have converged are frozen: dividing their tiny residuals again would
        # turn them into NaN.
        active = rr > threshold
        kp = apply(p)
        alpha = tf.where(active, tf.math.divide_no_nan(rr, dot(p, kp)), tf.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * kp
        rr_new = dot(r, r)
        beta = tf.where(active, tf.math.divide_no_nan(rr_new, rr), tf.zeros_like(rr))
        return i + 1, x, r, tf.where(active, r + beta * p, p), tf.where(active, rr_new, rr)

    def cond(i, x, r, p, rr):
        return tf.logical_and(i < max_iter, tf.reduce_any(rr > threshold))

    _, x, *_ = tf.while_loop(cond, body, (tf.constant(0), tf.zeros_like(v), rhs, rhs, rr0))
    return (1 - m) * v + x


# Compiled by XLA on its own, also when called inside another tf.function (the ROAD step, whose
# model stays out of XLA): the loop's stencil passes fuse, 3-4 times faster on a CPU.
_cg_solve_xla = tf.function(_cg_solve, jit_compile=True, reduce_retracing=True)
