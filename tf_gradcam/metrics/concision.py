r"""How concentrated is a map? Functions of the map alone, no model.

* :func:`sparseness`: the Gini index of the map's absolute values (Chalasani et al., "Concise
  Explanations of Neural Networks using Adversarial Training", ICML 2020, after Hurley and
  Rickard 2009). With the ``n`` values sorted ascending,

  .. math:: G = \frac{\sum_{i=1}^n (2i - n - 1)\, a_{(i)}}{n \sum_i a_{(i)}} \in [0, (n-1)/n]

  0 for a constant map, close to 1 when one pixel holds everything: **higher is sparser**.
* :func:`complexity`: the entropy of the map's fractional contributions ``P(i) = |a_i| / sum |a|``
  (Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based Model Explanations",
  IJCAI 2020): :math:`-\sum_{P(i) > 0} P(i) \ln P(i) \in [0, \ln n]`, **lower is simpler**.

"Better" here means more concise, not more faithful. Both depend on the resolution: compute
them on maps of one size (an Explanation's heatmaps are at the input's). An all-zero map says
nothing: its Gini index is 0 (the constant-map value, as Quantus) and its entropy ``ln n`` (the
uniform limit), so both rank it as the least concise map; no epsilon is added anywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_gradcam.metrics._inputs import maps

__all__ = ["complexity", "sparseness"]


def sparseness(heatmaps: Any, *, absolute: bool = True) -> np.ndarray:
    """``[N] float64`` Gini index of each map of ``[N, *S]`` (or of an Explanation).

    ``absolute=False`` needs non-negative maps (the index is defined for magnitudes).
    """
    a = _magnitudes(heatmaps, "sparseness", absolute)
    n = a.shape[1]
    a = np.sort(a, axis=1)
    total = a.sum(axis=1)
    weights = 2 * np.arange(1, n + 1) - n - 1
    num = (a * weights).sum(axis=1)
    return np.where(total > 0, num / (n * np.where(total > 0, total, 1.0)), 0.0)


def complexity(heatmaps: Any, *, absolute: bool = True) -> np.ndarray:
    """``[N] float64`` entropy (natural log) of each map's fractional contributions; divide by
    ``ln n`` (``n`` pixels) for a value in ``[0, 1]``."""
    a = _magnitudes(heatmaps, "complexity", absolute)
    n = a.shape[1]
    total = a.sum(axis=1, keepdims=True)
    p = a / np.where(total > 0, total, 1.0)
    logs = np.log(np.where(p > 0, p, 1.0))
    h = -(p * logs).sum(axis=1)
    return np.where(total[:, 0] > 0, h, np.log(n))


def _magnitudes(heatmaps: Any, fn: str, absolute: bool) -> np.ndarray:
    a = maps(heatmaps, fn).astype(np.float64)
    a = a.reshape(len(a), -1)
    if absolute:
        return np.abs(a)
    if (a < 0).any():
        raise ValueError(f"{fn}(absolute=False) needs non-negative maps; these have negative "
                         "values. Leave absolute=True to use their magnitudes.")
    return a
