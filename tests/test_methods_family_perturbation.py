"""Score-CAM's family (SS-CAM, IS-CAM, ``max_channels``) and Deep Feature Factorization
against NumPy: masked inputs made and scored by hand with ``model.predict``, and NMF on planted
factorizations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tests.test_methods_perturbation import np_bilinear, np_min_max, np_softmax, predict
from tf_gradcam.methods.dff import nmf

L = keras.layers


@pytest.fixture(scope="module")
def cnn():
    """conv -> pool -> conv "feat" (4 x 4, 5 channels, one dead) -> dense logits."""
    keras.utils.set_random_seed(37)
    inp = keras.Input((8, 8, 2))
    x = L.MaxPooling2D()(L.Conv2D(3, 3, padding="same", activation="relu")(inp))
    conv = L.Conv2D(5, 3, padding="same", activation="relu", name="feat")
    a = conv(x)
    model = keras.Model(inp, L.Dense(3)(L.Flatten()(a)))
    kernel, bias = conv.get_weights()
    bias[3] = -100.0  # a dead channel: all zero
    conv.set_weights([kernel, bias])
    x = np.random.default_rng(22).random((2, 8, 8, 2), dtype=np.float32)
    acts = predict(keras.Model(inp, a), x)
    assert (acts[..., 3] == 0).all() and (acts.std(axis=(1, 2)) > 0).sum() == 8
    return model, x, acts


CLASSES = np.array([2, 0])


def masks_of(acts, size):
    """``[N, K, *size]`` Score-CAM masks: each map upsampled, then min-max normalised."""
    return np.stack([[np_min_max(np_bilinear(a[..., k], size)) for k in range(a.shape[-1])]
                     for a in acts])


def masked_probabilities(model, x, masks, classes):
    """``[N, K]`` softmax probability of ``classes`` for ``x[n] * masks[n, k]``."""
    n, k = masks.shape[:2]
    batch = np.stack([x[i] * masks[i, j][..., None] for i in range(n) for j in range(k)])
    probs = np_softmax(predict(model, batch.astype(np.float32)))
    return probs[np.arange(n * k), np.repeat(classes, k)].reshape(n, k)


def np_cam(acts, weights):
    return np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0)


@pytest.fixture(scope="module")
def exact(cnn):
    model, x, acts = cnn
    return tfg.ScoreCAM(model, "feat")(x, CLASSES)


# ------------------------------------------------------------------------ SS-CAM
def test_sscam_against_numpy(cnn):
    model, x, acts = cnn
    n, std, seed = 3, 0.5, 4
    noise = std * tf.random.stateless_normal((n, 8, 8), seed=[seed, 0]).numpy()
    masks = masks_of(acts, (8, 8))
    expected = np.mean([masked_probabilities(model, x, masks + e, CLASSES) for e in noise], 0)
    got = tfg.SSCAM(model, "feat", num_samples=n, noise_std=std, seed=seed,
                    perturbation_batch_size=4)(x, CLASSES)
    np.testing.assert_allclose(got.weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.raw, np_cam(acts, expected), rtol=1e-4, atol=1e-6)
    # the noise is not the copies' position in the chunks: another chunk size, same weights
    again = tfg.SSCAM(model, "feat", num_samples=n, noise_std=std, seed=seed,
                      perturbation_batch_size=7)(x, CLASSES)
    np.testing.assert_allclose(again.weights, got.weights, rtol=1e-6)
    other = tfg.SSCAM(model, "feat", num_samples=n, noise_std=std, seed=seed + 1)(x, CLASSES)
    assert not np.allclose(other.weights, got.weights, rtol=1e-3)


def test_sscam_without_noise_is_scorecam(cnn, exact):
    model, x, _ = cnn
    got = tfg.SSCAM(model, "feat", num_samples=2, noise_std=0.0)(x, CLASSES)
    np.testing.assert_allclose(got.weights, exact.weights, rtol=1e-6)
    base = tfg.SSCAM(model, "feat", num_samples=2, noise_std=0.0, baseline=True)(x, CLASSES)
    zero = np_softmax(predict(model, np.zeros_like(x)))[np.arange(2), CLASSES]
    np.testing.assert_allclose(base.weights, exact.weights - zero[:, None], rtol=1e-4,
                               atol=1e-6)


# ------------------------------------------------------------------------ IS-CAM
def test_iscam_against_numpy(cnn, exact):
    model, x, acts = cnn
    masks = masks_of(acts, (8, 8))
    for schedule, alphas in (("linear", [1 / 3, 2 / 3, 1.0]), ("cumulative", [1 / 3, 1.0, 2.0])):
        expected = np.mean([masked_probabilities(model, x, a * masks, CLASSES) for a in alphas],
                           0)
        got = tfg.ISCAM(model, "feat", steps=3, schedule=schedule)(x, CLASSES)
        np.testing.assert_allclose(got.weights, expected, rtol=1e-4, atol=1e-6)
    one = tfg.ISCAM(model, "feat", steps=1)(x, CLASSES)
    np.testing.assert_allclose(one.weights, exact.weights, rtol=1e-6)


def test_iscam_on_an_affine_score(rng):
    """f(a z) = f(0) + a (f(z) - f(0)) for an affine model: the linear schedule's mean of
    alpha_i = i / N is (N + 1) / (2N), the cumulative one's (N + 1)(N + 2) / (6N)."""
    keras.utils.set_random_seed(23)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, name="feat")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(a)))  # no activation anywhere
    x = rng.random((2, 6, 6, 2), dtype=np.float32)
    score = tfg.ScoreCAM(model, "feat", score="probabilities")(x, [1, 0])
    f0 = predict(model, np.zeros_like(x))[np.arange(2), [1, 0]][:, None]
    n = 4
    for schedule, mean in (("linear", (n + 1) / (2 * n)),
                           ("cumulative", (n + 1) * (n + 2) / (6 * n))):
        got = tfg.ISCAM(model, "feat", steps=n, schedule=schedule, score="probabilities")(
            x, [1, 0])
        np.testing.assert_allclose(got.weights, f0 + mean * (score.weights - f0), rtol=1e-4,
                                   atol=1e-5)


# ------------------------------------------------------------------------ max_channels
def test_scorecam_max_channels(cnn, exact):
    model, x, acts = cnn
    full = tfg.ScoreCAM(model, "feat", max_channels=5)(x, CLASSES)
    np.testing.assert_array_equal(full.weights, exact.weights)
    np.testing.assert_array_equal(full.raw, exact.raw)
    # the two channels of highest spatial deviation, per sample, keep Score-CAM's weights
    two = tfg.ScoreCAM(model, "feat", max_channels=2)(x, CLASSES)
    top = np.argsort(-acts.std(axis=(1, 2)), axis=1, kind="stable")[:, :2]
    kept = np.zeros_like(exact.weights, bool)
    np.put_along_axis(kept, top, True, axis=1)
    assert set(top[0]) != set(top[1]), "the same channels in both: a weak test"
    np.testing.assert_allclose(two.weights[kept], exact.weights[kept], rtol=1e-6)
    np.testing.assert_array_equal(two.weights[~kept], 0)
    np.testing.assert_allclose(two.raw, np_cam(acts, two.weights), rtol=1e-5, atol=1e-7)
    # the dead channel is never needed: the four live ones give the exact map
    live = tfg.ScoreCAM(model, "feat", max_channels=4)(x, CLASSES)
    np.testing.assert_array_equal(live.weights[:, 3], 0)
    np.testing.assert_allclose(live.raw, exact.raw, rtol=1e-6)
    # and for the variants: only the kept channels are scored
    ss = tfg.SSCAM(model, "feat", max_channels=2, num_samples=2, noise_std=0.0)(x, CLASSES)
    np.testing.assert_allclose(ss.weights, two.weights, rtol=1e-6)
    with pytest.raises(ValueError, match="max_channels must be a positive int"):
        tfg.ScoreCAM(model, "feat", max_channels=0)


# ------------------------------------------------------------------------ DFF
def planted(n=2, size=6, channels=4, seed=0):
    """``(V [n, size, size, channels], H* [n, size, size, 3])``: three concepts on disjoint
    vertical bands, random positive amounts, random positive embeddings."""
    rng = np.random.default_rng(seed)
    h = np.zeros((n, size, size, 3), np.float32)
    for j in range(3):
        h[:, :, 2 * j: 2 * j + 2, j] = rng.uniform(0.5, 1.5, (n, size, 2))
    w = rng.uniform(0.0, 0.3, (3, channels)).astype(np.float32) + np.eye(3, channels) * 2
    return (h @ w).astype(np.float32), h


@pytest.fixture(scope="module")
def feature_net():
    """The input is the feature map: an identity layer "feat", then GAP -> Dense(3)."""
    keras.utils.set_random_seed(24)
    inp = keras.Input((6, 6, 4))
    dense = L.Dense(3, activation="softmax")
    feat = L.Activation("linear", name="feat")(inp)
    return keras.Model(inp, dense(L.GlobalAveragePooling2D()(feat))), dense


def test_dff_recovers_planted_concepts(feature_net):
    model, dense = feature_net
    v, h_true = planted()
    got = tfg.deep_feature_factorization(model, v, 3, layer="feat")
    assert got.concepts.shape == (3, 4) and got.raw.shape == (2, 3, 6, 6)
    assert got.heatmaps.shape == (2, 3, 6, 6) and got.error < 0.02
    # each recovered concept is one planted band (up to order and scale)
    found = got.raw.transpose(0, 2, 3, 1).reshape(-1, 3)
    truth = h_true.reshape(-1, 3)
    corr = np.corrcoef(found.T, truth.T)[:3, 3:]
    assert sorted(corr.argmax(axis=1)) == [0, 1, 2] and corr.max(axis=1).min() > 0.99
    assert got.concepts.min() >= 0 and got.raw.min() >= 0 and got.heatmaps.min() >= 0
    np.testing.assert_allclose(got.heatmaps.max(axis=(0, 2, 3)), 1.0, rtol=1e-6)
    # concept scores on GAP -> Dense: each concept's mean contribution through the kernel
    mean_amount = found.mean(axis=0)
    expected = (mean_amount[:, None] * got.concepts) @ dense.kernel.numpy()
    np.testing.assert_allclose(got.concept_scores, expected, rtol=1e-4, atol=1e-6)
    # batches do not matter: the factorization is over the whole set
    one = tfg.deep_feature_factorization(model, v, 3, layer="feat", batch_size=1)
    np.testing.assert_allclose(one.raw, got.raw, rtol=1e-5, atol=1e-7)


def test_nmf_never_increases_the_error():
    """Lee and Seung's updates, run 1, 2, 5, ... times from the same start; rank 2 of a
    rank-4 matrix, ending at the best any rank-2 approximation can do (the SVD's)."""
    v = planted(seed=1)[0].reshape(-1, 4) + 0.05
    errors = [float(tf.norm(v - tf.matmul(*nmf(v, 2, t, seed=3)))) for t in (1, 2, 5, 20, 200)]
    assert all(b <= a * (1 + 1e-5) for a, b in zip(errors, errors[1:])), errors
    best = np.sqrt((np.linalg.svd(v, compute_uv=False)[2:] ** 2).sum())
    assert errors[0] > 1.2 * best and errors[-1] < 1.001 * best


def test_dff_shift_for_negative_activations(feature_net):
    model, dense = feature_net
    v = planted()[0] - 0.5
    with pytest.raises(ValueError, match="negative activations.*shift=True"):
        tfg.deep_feature_factorization(model, v, 3, layer="feat")
    got = tfg.deep_feature_factorization(model, v, 3, layer="feat", shift=True, iterations=50)
    np.testing.assert_allclose(got.offset, v.min(axis=(0, 1, 2)), rtol=1e-6)
    found = got.raw.transpose(0, 2, 3, 1).reshape(-1, 3)
    expected = (found.mean(axis=0)[:, None] * got.concepts) @ dense.kernel.numpy()
    np.testing.assert_allclose(got.concept_scores, expected, rtol=1e-4, atol=1e-6)
