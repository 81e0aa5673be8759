"""Sanity checks (Adebayo et al. 2018): randomising a copy never touches the model; the
similarity measures against references; a map that ignores the model stays identical."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import signal, stats

import tf_gradcam as tfg
from tf_gradcam import metrics
from tf_gradcam.metrics import sanity

L = keras.layers
TOP_FIRST = ["predictions", "last_conv", "block3_bn", "block3_conv", "block2_bn", "block2_conv",
             "block1_bn", "block1_conv"]


class InputMap(tfg.Explainer):
    """A "method" whose map is the image's channel mean: it ignores the model entirely."""

    uses_gradients = False

    def combine(self, ctx, weights):
        return tf.zeros_like(ctx.activations[..., 0])

    def heatmap(self, ctx, raw):
        return tf.reduce_mean(ctx.inputs[0], axis=-1)


@pytest.fixture(scope="module")
def net():
    """The demo's CNN (frozen edge front end, batch norm), untrained, on 32 x 32 shapes."""
    from tf_gradcam.data import make_shapes, small_cnn

    keras.utils.set_random_seed(1)
    model = small_cnn((32, 32, 3), width=8)
    bn = model.get_layer("block2_bn")  # trained-looking statistics, to see them kept
    bn.moving_mean.assign(np.linspace(0.1, 0.5, 8).astype(np.float32))
    bn.moving_variance.assign(np.full(8, 2.0, np.float32))
    return model, make_shapes(6, size=32, seed=3).images


def test_randomisation_never_touches_the_model(net):
    model, images = net
    weights = [v.numpy().copy() for v in model.weights]
    before = model.predict_on_batch(images)
    for mode in ("cascading", "independent"):
        metrics.model_randomization(model, images, "gradcam", mode=mode, batchnorm="reset")
    for v, w in zip(model.weights, weights):
        np.testing.assert_array_equal(v.numpy(), w, err_msg=v.path)
    np.testing.assert_array_equal(model.predict_on_batch(images), before)
    copy = sanity.clone(model)
    assert not {id(v) for v in copy.weights} & {id(v) for v in model.weights}
    np.testing.assert_allclose(copy.predict_on_batch(images), before, rtol=1e-6)


def test_layers_are_walked_top_down_and_frozen_ones_skipped(net):
    model, images = net
    assert metrics.randomizable_layers(model) == TOP_FIRST  # no "edges", "edge_magnitude"
    result = metrics.model_randomization(model, images[:2], InputMap)
    assert result.states == TOP_FIRST and result.mode == "cascading"
    assert result.spearman.shape == (8, 2)
    blocks = metrics.model_randomization(model, images[:2], InputMap,
                                         layers=["predictions", "block3", ["block1_conv"]])
    assert blocks.states == ["predictions", "block3_conv+block3_bn", "block1_conv"]
    with pytest.raises(ValueError, match="No layer with trainable weights matches 'edges'"):
        metrics.model_randomization(model, images[:2], InputMap, layers=["edges"])


def test_a_map_that_ignores_the_model_stays_identical(net):
    model, images = net
    for mode in ("cascading", "independent"):
        result = metrics.model_randomization(model, images, InputMap, mode=mode)
        for measure in ("spearman", "spearman_abs", "ssim", "hog"):
            np.testing.assert_allclose(getattr(result, measure), 1.0, atol=1e-6)


def test_gradcam_changes_and_modes_agree_where_they_must(net):
    model, images = net
    cascading = metrics.model_randomization(model, images, "gradcam", keep_maps=True)
    independent = metrics.model_randomization(model, images, "gradcam", mode="independent",
                                              keep_maps=True)
    assert cascading.heatmaps.shape == (9, 6, 32, 32)
    # state 1 randomises the same top layer with the same seed in both modes
    np.testing.assert_allclose(independent.heatmaps[1], cascading.heatmaps[1], atol=1e-6)
    # the last state: everything random (cascading) vs the first conv only (independent)
    assert not np.allclose(independent.heatmaps[-1], cascading.heatmaps[-1])
    np.testing.assert_allclose(cascading.heatmaps[0], tfg.GradCAM(model)(images).heatmaps,
                               atol=1e-6)
    # Adebayo's finding for Grad-CAM: once the model is random, the map is not the same map
    assert np.nanmean(cascading.final("spearman")) < 0.8
    assert cascading.mean("ssim").shape == (8,)
    top = metrics.model_randomization(model, images, "gradcam", layers=["predictions"],
                                      target="randomized")
    assert top.states == ["predictions"]


def test_reinitialisation_uses_each_layers_initializers(net):
    model, _ = net
    copy = sanity.clone(model)
    bn = copy.get_layer("block2_bn")
    bn.gamma.assign(np.full(8, 3.0, np.float32))
    sanity._reinitialise(bn, "keep", seed=0)
    np.testing.assert_array_equal(bn.gamma.numpy(), 1.0)  # gamma_initializer "ones"
    np.testing.assert_array_equal(bn.beta.numpy(), 0.0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 2.0)  # statistics kept
    sanity._reinitialise(bn, "reset", seed=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)
    dense = copy.get_layer("predictions")
    before = dense.kernel.numpy().copy()
    sanity._reinitialise(dense, "keep", seed=5)
    limit = np.sqrt(6 / sum(before.shape))  # Glorot uniform
    assert not np.allclose(dense.kernel.numpy(), before)
    assert np.abs(dense.kernel.numpy()).max() <= limit
    again = sanity.clone(model).get_layer("predictions")
    sanity._reinitialise(again, "keep", seed=5)
    np.testing.assert_array_equal(again.kernel.numpy(), dense.kernel.numpy())  # seeded
    depthwise = L.DepthwiseConv2D(3, depthwise_initializer="ones")
    depthwise.build((None, 5, 5, 2))
    sanity._reinitialise(depthwise, "keep", seed=0)
    np.testing.assert_array_equal(depthwise.kernel.numpy(), 1.0)


def test_label_randomization_trains_on_permuted_labels(net):
    model, images = net
    seen = {}
    labels = np.arange(20) % 3

    def train(x, y):
        seen["y"] = y
        keras.utils.set_random_seed(9)
        return keras.models.clone_model(model)  # a fresh, "randomly trained" network

    result = metrics.label_randomization(model, train, images, labels, images, InputMap)
    assert sorted(seen["y"]) == sorted(labels) and not np.array_equal(seen["y"], labels)
    assert result.states == ["random labels"] and result.mode == "labels"
    np.testing.assert_allclose(result.spearman, 1.0, atol=1e-6)
    grad = metrics.label_randomization(model, train, images, labels, images, "gradcam")
    assert grad.spearman.shape == (1, 6)
    with pytest.raises(TypeError, match="keras.Model"):
        metrics.label_randomization(model, lambda x, y: None, images, labels, images)


def test_a_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 3)
            self.head = L.Dense(2)

        def call(self, x):
            return self.head(tf.reduce_mean(self.conv(x), axis=(1, 2)))

    model = Net()
    model(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="functional or Sequential"):
        metrics.model_randomization(model, np.zeros((1, 8, 8, 1), np.float32))


# ============================================================================ similarity
def test_rank_correlation_against_scipy(rng):
    a = rng.integers(0, 5, (4, 7, 6)).astype(np.float32)  # many ties
    b = rng.integers(0, 5, (4, 7, 6)).astype(np.float32)
    want = [stats.spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.rank_correlation(a, b), want, rtol=1e-9)
    np.testing.assert_allclose(metrics.rank_correlation(a, a), 1.0)
    np.testing.assert_allclose(metrics.rank_correlation(a, np.exp(a)), 1.0)  # monotone map
    np.testing.assert_allclose(metrics.rank_correlation(a, -a), -1.0)
    signed = rng.normal(size=(2, 5, 5))
    np.testing.assert_allclose(metrics.rank_correlation(signed, -signed, absolute=True), 1.0)
    flat = np.ones((1, 5, 5))
    assert np.isnan(metrics.rank_correlation(flat, a[:1, :5, :5])[0])
    with pytest.raises(ValueError, match="one shape"):
        metrics.rank_correlation(a, b[:, :3])


def ssim_reference(a, b, max_val=1.0):
    """SSIM with an 11 x 11 Gaussian window (sigma 1.5) on valid positions, in NumPy/SciPy."""
    g = signal.windows.gaussian(11, 1.5)
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda x: signal.correlate2d(x, w, mode="valid")
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
    return (((2 * ma * mb + c1) * (2 * cov + c2))
            / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean()


def test_structural_similarity_against_a_reference(rng):
    a = rng.random((2, 24, 20))
    b = np.clip(a + 0.3 * rng.normal(size=a.shape), 0, 1)
    norm = lambda x: (x - x.min()) / (x.max() - x.min())
    want = [ssim_reference(norm(x), norm(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.structural_similarity(a, b), want, rtol=1e-4)
    np.testing.assert_allclose(metrics.structural_similarity(a, a), 1.0, rtol=1e-6)
    np.testing.assert_allclose(metrics.structural_similarity(np.zeros((1, 16, 16)),
                                                             np.ones((1, 16, 16))), 1.0)
    assert metrics.structural_similarity(a, rng.random(a.shape)).max() < 0.3
    wider = metrics.structural_similarity(a, b, max_val=2.0)  # Adebayo's range
    assert np.all(wider > metrics.structural_similarity(a, b))


def test_hog_describes_edges(rng):
    step = np.zeros((1, 64, 64))
    step[:, :, 32:] = 1.0  # a vertical edge: horizontal gradient, orientation 0 degrees
    features = metrics.similarity.hog(step, cell=16).reshape(-1, 9)
    assert features[:, 1:].max() == 0 and features[:, 0].max() > 0
    a = rng.random((3, 64, 64))
    np.testing.assert_allclose(metrics.hog_similarity(a, a), 1.0)
    assert metrics.hog_similarity(step, step.transpose(0, 2, 1))[0] < 0.5
    assert np.isnan(metrics.hog_similarity(np.ones((1, 64, 64)), a[:1])[0])
    small = rng.random((2, 32, 32))  # cells shrink to 8 pixels: 4 x 4 cells
    np.testing.assert_allclose(metrics.hog_similarity(small, small), 1.0)
