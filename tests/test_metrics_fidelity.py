"""MuFidelity, sparseness and complexity, the stability metrics and the intervals, each against
a case whose answer is known in closed form."""

import math

import keras
import numpy as np
import pytest
from scipy import stats

import tf_gradcam as tfg
from tf_gradcam import metrics

L = keras.layers
H = W = 12


@pytest.fixture(scope="module")
def linear():
    """class-0 logit = sum(w * x) over pixels and channels, class-1 logit = 0 (raw scores)."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((H, W, 2))
    out = L.Dense(2, use_bias=False)(L.Flatten()(inp))
    model = keras.Model(inp, out)
    weights = np.random.default_rng(5).normal(size=(H * W * 2, 1)).astype(np.float32)
    model.layers[-1].set_weights([np.concatenate([weights, np.zeros_like(weights)], axis=1)])
    return model, weights.reshape(H, W, 2)


def test_mu_fidelity_of_the_exact_attribution_is_one(linear, rng):
    model, w = linear
    images = rng.random((3, H, W, 2)).astype(np.float32)
    exact = (images * w).sum(axis=-1)  # the drop of a subset is exactly its mass
    for correlation in ("spearman", "pearson"):
        got = metrics.mu_fidelity(model, images, exact, 0, apply_softmax=False, samples=60,
                                  grid_size=4, correlation=correlation)
        np.testing.assert_allclose(got, 1.0, atol=1e-6)
    np.testing.assert_allclose(
        metrics.mu_fidelity(model, images, -exact, 0, apply_softmax=False, samples=60),
        -1.0, atol=1e-6)
    counted = metrics.mu_fidelity(model, images, exact, 0, apply_softmax=False, samples=60,
                                  exact_count=True, grid_size=None)
    np.testing.assert_allclose(counted, 1.0, atol=1e-6)
    noise = metrics.mu_fidelity(model, images, rng.random((3, H, W)), 0, apply_softmax=False,
                                samples=200, grid_size=None)
    assert np.abs(noise).max() < 0.3
    # the draws belong to the image, not to the batch
    a = metrics.mu_fidelity(model, images, noise[:, None, None] * exact, 0, samples=30,
                            batch_size=7, seed=4)
    b = metrics.mu_fidelity(model, images, noise[:, None, None] * exact, 0, samples=30,
                            batch_size=64, seed=4)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_mu_fidelity_undefined_correlations(linear, rng):
    model, _ = linear
    images = rng.random((2, H, W, 2)).astype(np.float32)
    empty = np.zeros((2, H, W))
    assert np.isnan(metrics.mu_fidelity(model, images, empty, 0, samples=10)).all()
    np.testing.assert_array_equal(
        metrics.mu_fidelity(model, images, empty, 0, samples=10, nan_as_zero=True), 0.0)
    with pytest.raises(ValueError, match="subset_fraction"):
        metrics.mu_fidelity(model, images, empty, subset_fraction=1.0)
    with pytest.raises(ValueError, match="correlation"):
        metrics.mu_fidelity(model, images, empty, correlation="kendall")


def test_sparseness_and_complexity_hand_computed():
    maps = np.zeros((5, 2, 2))
    maps[0] = [[0, 0], [1, 3]]  # sorted 0, 0, 1, 3: (-3*0 - 0 + 1 + 9) / (4 * 4)
    maps[1] = [[0, 0], [0, 2]]  # one pixel holds everything: (n - 1) / n
    maps[2] = 0.7  # constant
    maps[3] = 0.0  # nothing
    maps[4] = [[1, 1], [2, 0]]  # sorted 0, 1, 1, 2: (0 - 1 + 1 + 6) / 16; P = 1/4, 1/4, 1/2
    np.testing.assert_allclose(metrics.sparseness(maps), [10 / 16, 3 / 4, 0, 0, 6 / 16])
    np.testing.assert_allclose(
        metrics.complexity(maps),
        [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), 0, math.log(4), math.log(4),
         -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))])
    signed = -maps
    np.testing.assert_allclose(metrics.sparseness(signed), metrics.sparseness(maps))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.complexity(signed, absolute=False)


class Identity:
    """An explainer whose map is its (one-channel) input: known sensitivity and Lipschitz."""

    def __call__(self, images, classes):
        return tfg.Explanation(heatmaps=images[..., 0], raw=images[..., 0],
                               targets=np.zeros(len(images), np.int64),
                               scores=np.zeros(len(images), np.float32))


def test_stability_of_known_explainers(rng):
    images = rng.random((3, 8, 8, 1)).astype(np.float32) + 1
    # Phi(x) = x: the Lipschitz ratio is exactly 1, sensitivity is ||delta|| / ||x||
    np.testing.assert_allclose(metrics.local_lipschitz(Identity(), images, samples=5), 1.0,
                               rtol=1e-5)
    small = metrics.max_sensitivity(Identity(), images, radius=0.1, samples=5)
    large = metrics.max_sensitivity(Identity(), images, radius=0.3, samples=5)
    np.testing.assert_allclose(large, 3 * small, rtol=1e-5)  # the same draws, scaled
    norms = np.sqrt((images[..., 0] ** 2).sum(axis=(1, 2)))
    assert np.all(small <= 0.1 * 8 / norms + 1e-6)  # ||delta|| <= r sqrt(P)
    zero = lambda x, c: np.zeros((len(x), 8, 8))
    assert np.isnan(metrics.max_sensitivity(zero, images, targets=0, samples=3)).all()


def test_stability_with_a_compiled_explainer(rng):
    keras.utils.set_random_seed(3)
    inp = keras.Input((10, 10, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    model = keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    images = rng.random((4, 10, 10, 3)).astype(np.float32)
    explainer = tfg.GradCAM(model, "conv")
    a = metrics.max_sensitivity(explainer, images, samples=6, batch_size=5, seed=1)
    b = metrics.max_sensitivity(explainer, images, samples=6, batch_size=32, seed=1)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # NaN (an empty map) where both are
    assert a.shape == (4,) and np.isfinite(a).any() and np.all(a[np.isfinite(a)] >= 0)
    # the map is continuous in the input: vanishing noise, vanishing change
    tiny = metrics.max_sensitivity(explainer, images, radius=1e-7, samples=3)
    assert np.nanmax(tiny) < 1e-3
    with pytest.raises(ValueError, match="radius"):
        metrics.max_sensitivity(explainer, images, radius=0)


# ============================================================================ intervals
def test_wilson_interval_hand_computed():
    z = 1.959963984540054
    p, lo, hi = metrics.wilson_ci(0, 10)
    assert (p, lo) == (0.0, 0.0) and hi == pytest.approx(z * z / (10 + z * z))
    p, lo, hi = metrics.wilson_ci([1, 0] * 5)
    assert p == 0.5 and (lo, hi) == pytest.approx((0.2365931, 0.7634069), abs=1e-6)
    p, lo, hi = metrics.wilson_ci(10, 10)
    assert p == 1.0 and hi == 1.0 and lo == pytest.approx(10 / (10 + z * z))
    assert np.isnan(metrics.wilson_ci([])[0])
    with pytest.raises(ValueError, match="hits"):
        metrics.wilson_ci([0.5, 1.0])


def test_bootstrap_interval(rng):
    values = rng.normal(2.0, 1.0, 400)
    mean, lo, hi = metrics.bootstrap_ci(values, seed=1)
    assert mean == pytest.approx(values.mean())
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # the normal approximation
    assert lo == pytest.approx(mean - half, abs=0.2 * half)
    assert hi == pytest.approx(mean + half, abs=0.2 * half)
    assert metrics.bootstrap_ci(values, seed=1) == (mean, lo, hi)  # seeded
    assert metrics.bootstrap_ci([3.0, np.nan, 3.0]) == (3.0, 3.0, 3.0)  # NaN dropped
    assert np.isnan(metrics.bootstrap_ci([np.nan])[0])
    # paired differences: a constant shift is known exactly, however noisy the values
    d, dlo, dhi = metrics.paired_bootstrap_ci(values + 0.5, values)
    assert d == pytest.approx(0.5) and dlo == pytest.approx(0.5) and dhi == pytest.approx(0.5)
    # against SciPy's percentile bootstrap of the mean
    ref = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                          rng=np.random.default_rng(0)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=0.02)


def test_confidence_scores_and_mask_iou():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(inp)))
    images = np.ones((3, 4, 4, 1), np.float32)
    heat = np.full((3, 4, 4), 0.5, np.float32)
    scores = metrics.confidence_scores(model, images, heat, [0, 1, 0])
    assert metrics.average_drop(model, images, heat, [0, 1, 0]) == pytest.approx(
        scores.drops.mean())
    assert metrics.increase_in_confidence(model, images, heat, [0, 1, 0]) == pytest.approx(
        100 * scores.increases.mean())
    maps = np.zeros((2, 6, 6))
    maps[0, :2, :3] = 1.0  # 6 pixels, 4 of them on the 4 x 2 object below: 4 / (6 + 8 - 4)
    maps[1, 5, 5] = 0.1  # above 15 % of its own maximum: the one pixel, off the object
    masks = np.zeros((2, 6, 6), bool)
    masks[:, :4, 1:3] = True
    np.testing.assert_allclose(metrics.mask_iou(maps, masks), [4 / 10, 0.0])
