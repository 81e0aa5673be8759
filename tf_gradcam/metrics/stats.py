"""Confidence intervals over images, for tables of per-image scores.

* :func:`bootstrap_ci`: the percentile bootstrap of a mean (Efron 1979): resample the ``N``
  per-image values with replacement ``resamples`` times (10 000 by default) and take the
  ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means. No assumption on
  the shape of the scores, which are often bounded and skewed (average drop has many zeros).
* :func:`wilson_ci`: the Wilson score interval of a proportion (Wilson 1927), for hit rates
  (pointing game, localization accuracy, increase in confidence). Unlike the normal
  approximation ``p +- z sqrt(p (1 - p) / N)`` it stays inside ``[0, 1]`` and does not collapse
  to a point at 0 % or 100 %.
* :func:`paired_bootstrap_ci`: the bootstrap of the mean per-image *difference* between two
  methods scored on the same images. Per-image scores of two methods are strongly correlated,
  so "A beats B" should rest on this interval excluding 0, not on two overlapping intervals.

NaN values (a map whose correlation is undefined) are dropped; intervals of no values are NaN.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["bootstrap_ci", "paired_bootstrap_ci", "wilson_ci"]

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 10_000
_CHUNK = 1_000  # resamples drawn at a time: memory O(_CHUNK * N)


def bootstrap_ci(
    values: Any, *, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite ``values`` and its percentile-bootstrap
    interval at ``level``. One value gives ``(v, v, v)``; none gives NaNs."""
    v = _finite(values)
    _check_level(level)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or (
            resamples < 1):
        raise ValueError(f"resamples must be a positive int, got {resamples!r}.")
    if not len(v):
        return (np.nan, np.nan, np.nan)
    mean = float(v.mean())
    if len(v) == 1 or np.all(v == v[0]):
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = np.empty(int(resamples))
    for start in range(0, int(resamples), _CHUNK):
        stop = min(start + _CHUNK, int(resamples))
        means[start:stop] = v[rng.integers(0, len(v), (stop - start, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (mean, float(lo), float(hi))


def paired_bootstrap_ci(
    a: Any, b: Any, *, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the per-image differences ``a - b`` (images where both are
    finite), by :func:`bootstrap_ci`."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold one value per image each, got {x.shape} and "
                         f"{y.shape}.")
    return bootstrap_ci(x - y, level=level, resamples=resamples, seed=seed)


def wilson_ci(successes: Any, n: Any = None, *, level: float = DEFAULT_LEVEL
              ) -> tuple[float, float, float]:
    r"""``(proportion, low, high)``: the Wilson score interval at ``level``.

    .. math::
        \frac{\hat p + \frac{z^2}{2N} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{N}
        + \frac{z^2}{4N^2}}}{1 + \frac{z^2}{N}}

    Args:
        successes: a count (with ``n``), or per-image booleans / 0-1 values (``n=None``;
            NaNs dropped).
        n: the number of trials when ``successes`` is a count.
    """
    _check_level(level)
    if n is None:
        v = _finite(successes)
        if len(v) and not np.isin(v, (0.0, 1.0)).all():
            raise ValueError("wilson_ci() takes per-image hits (booleans or 0/1 values).")
        k, total = float(v.sum()), len(v)
    else:
        k, total = float(successes), int(n)
        if total < 0 or not 0 <= k <= total:
            raise ValueError(f"successes must be in [0, n], got {successes!r} of {n!r}.")
    if total == 0:
        return (np.nan, np.nan, np.nan)
    z = NormalDist().inv_cdf((1 + level) / 2)
    p = k / total
    centre = p + z * z / (2 * total)
    spread = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    scale = 1 + z * z / total
    # at p = 0 (p = 1) the bound is 0 (1) exactly; rounding would leave 1e-17 otherwise
    lo = 0.0 if k == 0 else max(0.0, (centre - spread) / scale)
    hi = 1.0 if k == total else min(1.0, (centre + spread) / scale)
    return (p, float(lo), float(hi))


def _finite(values: Any) -> np.ndarray:
    v = np.asarray(values, np.float64).ravel()
    return v[np.isfinite(v)]


def _check_level(level: Any) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.number)) or not (
            0 < float(level) < 1):
        raise ValueError(f"level is a coverage in (0, 1), e.g. 0.95; got {level!r}.")
