"""Guided backpropagation against a NumPy forward and a by-hand guided backward pass; Guided
Grad-CAM against guided backprop times Grad-CAM; the user's model left as it was."""

import threading

import keras
import numpy as np
import pytest

import tf_gradcam as tfg
from tf_gradcam.methods.guided import GuidedBackprop, guided_overrides
from tf_gradcam.methods.guided_gradcam import GuidedGradCAM

L = keras.layers
relu = lambda z: np.maximum(z, 0)  # noqa: E731


def scaled(maps):
    """Each map divided by its max; an all-zero map stays zero."""
    peak = maps.max(axis=tuple(range(1, maps.ndim)), keepdims=True)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0)


# ------------------------------------------------------------------- dense: Dense relu -> Dense
@pytest.fixture(scope="module")
def dense_weights():
    r = np.random.default_rng(11)
    return [r.normal(size=(32, 6)).astype(np.float32), r.normal(size=6).astype(np.float32) * 0.5,
            r.normal(size=(6, 3)).astype(np.float32), r.normal(size=3).astype(np.float32)]


def _dense_net(kind, weights):
    """Input image -> Flatten -> Dense(6) + ReLU (three spellings) -> Dense(3, softmax)."""
    inp = keras.Input((4, 4, 2))
    flat = L.Flatten()(inp)
    if kind == "activation":
        hidden = L.Dense(6, activation="relu")(flat)
    elif kind == "relu_layer":
        hidden = L.ReLU()(L.Dense(6)(flat))
    else:
        hidden = L.Activation("relu")(L.Dense(6)(flat))
    model = keras.Model(inp, L.Dense(3, activation="softmax")(hidden))
    model.set_weights(weights)
    return model


def dense_guided_reference(weights, x, classes, guided=True):
    w1, b1, w2, _ = [w.astype(np.float64) for w in weights]
    z1 = x.reshape(len(x), -1) @ w1 + b1
    g_h = w2[:, classes].T  # d logit_c / d h
    g_z1 = (relu(g_h) if guided else g_h) * (z1 > 0)
    return (g_z1 @ w1.T).reshape(x.shape)


@pytest.mark.parametrize("kind", ["activation", "relu_layer", "activation_layer"])
def test_guided_backprop_dense_matches_numpy(dense_weights, rng, kind):
    model = _dense_net(kind, dense_weights)
    x = rng.normal(size=(4, 4, 4, 2)).astype(np.float32)
    classes = np.array([0, 1, 2, 1])
    res = GuidedBackprop(model)(x, classes)
    expected = dense_guided_reference(dense_weights, x, classes)
    plain = dense_guided_reference(dense_weights, x, classes, guided=False)
    assert np.abs(expected - plain).max() > 0.1, "the guided rule changes nothing here"
    grads = res.extras["gradients"]
    assert grads.shape == x.shape
    np.testing.assert_allclose(grads, expected, rtol=1e-4, atol=1e-5)
    # per-pixel magnitude: max over channels of |g|, unscaled in raw, scaled into [0, 1]
    mag = np.abs(expected).max(axis=-1)
    np.testing.assert_allclose(res.raw, mag, rtol=1e-4, atol=1e-5)
    assert (mag.max(axis=(1, 2)) > 0).sum() >= 2
    np.testing.assert_allclose(res.heatmaps, scaled(mag), rtol=1e-4, atol=1e-5)
    assert res.layer == "" and res.weights is None
    w1, b1, w2, b2 = dense_weights
    logits = relu(x.reshape(4, -1) @ w1 + b1) @ w2 + b2  # the logit under the softmax
    np.testing.assert_allclose(res.scores, logits[np.arange(4), classes], rtol=1e-4, atol=1e-5)


def test_guided_backprop_counterfactual_guides_the_negated_score(dense_weights, rng):
    model = _dense_net("activation", dense_weights)
    x = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    res = GuidedBackprop(model, counterfactual=True)(x, [2, 0])
    w1, b1, w2, _ = dense_weights
    z1 = x.reshape(2, -1) @ w1 + b1
    expected = ((relu(-w2[:, [2, 0]].T) * (z1 > 0)) @ w1.T).reshape(x.shape)
    np.testing.assert_allclose(res.extras["gradients"], expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ conv: nested ReLU6
CAP = 0.5


@pytest.fixture(scope="module")
def conv_net():
    """Sequential[backbone(Conv2D 2x2 -> ReLU(max_value)), Flatten, Dense relu, Dense]."""
    keras.utils.set_random_seed(5)
    b_in = keras.Input((5, 5, 1))
    backbone = keras.Model(b_in, L.ReLU(max_value=CAP, name="relu_cap")(
        L.Conv2D(3, 2, name="conv")(b_in)), name="backbone")
    model = keras.Sequential([keras.Input((5, 5, 1)), backbone, L.Flatten(),
                              L.Dense(4, activation="relu"), L.Dense(2)])
    r = np.random.default_rng(12)
    model.set_weights([r.normal(size=w.shape).astype(np.float32) * 0.6
                       for w in model.get_weights()])
    return model


def conv_guided_reference(weights, x, classes):
    wc, bc, w2, b2, w3, _ = [w.astype(np.float64) for w in weights]
    n = len(x)
    z = np.zeros((n, 4, 4, 3))
    for di in range(2):
        for dj in range(2):
            z += np.einsum("nijc,cf->nijf", x[:, di:di + 4, dj:dj + 4], wc[di, dj])
    z += bc
    h = np.clip(z, 0, CAP)
    z2 = h.reshape(n, -1) @ w2 + b2
    g_h2 = w3[:, classes].T
    g_z2 = relu(g_h2) * (z2 > 0)
    g_h = (g_z2 @ w2.T).reshape(z.shape)
    g_z = relu(g_h) * ((z > 0) & (z < CAP))  # ReLU6-style: no gradient above the cap either
    g_x = np.zeros(x.shape)
    for di in range(2):
        for dj in range(2):
            g_x[:, di:di + 4, dj:dj + 4] += np.einsum("nijf,cf->nijc", g_z, wc[di, dj])
    return g_x, z


def test_guided_backprop_conv_relu6_nested_matches_numpy(conv_net, rng):
    x = rng.random((3, 5, 5, 1), dtype=np.float32)
    classes = np.array([0, 1, 1])
    res = GuidedBackprop(conv_net)(x, classes)
    expected, z = conv_guided_reference(conv_net.get_weights(), x, classes)
    assert (z > CAP).any() and ((z > 0) & (z < CAP)).any() and (z < 0).any()
    np.testing.assert_allclose(res.extras["gradients"], expected, rtol=1e-4, atol=1e-6)
    assert np.abs(expected).max() > 0


def test_mobilenet_relu6_layers_are_all_guided():
    base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                          input_shape=(32, 32, 3), alpha=0.35)
    model = keras.Sequential([keras.Input((32, 32, 3)), base, L.GlobalAveragePooling2D(),
                              L.Dense(3)])
    found = guided_overrides(model)
    relus = [lyr for lyr in base.layers if isinstance(lyr, L.ReLU)]
    assert len(relus) > 30 and {id(lyr) for lyr in relus} == set(found)
    assert all(lyr.max_value == 6 for lyr in relus)


# ------------------------------------------------------------------------ Guided Grad-CAM
@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(6)
    inp = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(5, 3, padding="same", activation="relu", name="feat")(x)
    return keras.Model(inp, L.Dense(3, activation="softmax")(L.Flatten()(x)))


def test_guided_gradcam_is_guided_backprop_times_gradcam(cnn, rng):
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    classes = [2, 0, 1]
    res = GuidedGradCAM(cnn, "feat")(x, classes)
    gb = GuidedBackprop(cnn)(x, classes).extras["gradients"]
    gc = tfg.GradCAM(cnn, "feat")(x, classes)
    assert gc.heatmaps.min() < 0.5 < gc.heatmaps.max(), "a flat Grad-CAM map proves nothing"
    product = gb * gc.heatmaps[..., None]
    np.testing.assert_allclose(res.extras["gradients"], product, rtol=1e-4, atol=1e-6)
    mag = np.abs(product).max(axis=-1)
    peak = mag.max(axis=(1, 2), keepdims=True)
    assert (peak > 0).all()
    np.testing.assert_allclose(res.heatmaps, mag / peak, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.raw, gc.raw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.weights, gc.weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(res.targets, classes)
    assert res.heatmaps.shape == (3, 8, 8) and res.layer == "feat"


def test_guided_target_layer_with_relu_activation_stays_guided(cnn, rng):
    """The explained layer has activation="relu" itself: its ReLU must be guided too."""
    x = rng.random((2, 8, 8, 2), dtype=np.float32)
    gb = GuidedBackprop(cnn)(x, [1, 2]).extras["gradients"]
    on_c1 = GuidedGradCAM(cnn, "c1")(x, [1, 2])
    heat = tfg.GradCAM(cnn, "c1")(x, [1, 2]).heatmaps
    np.testing.assert_allclose(on_c1.extras["gradients"], gb * heat[..., None], rtol=1e-4,
                               atol=1e-6)


# ------------------------------------------------------------------------ the model is untouched
def test_guided_methods_leave_the_model_untouched(conv_net, cnn, rng):
    for model, explainers in ((conv_net, [GuidedBackprop(conv_net)]),
                              (cnn, [GuidedBackprop(cnn), GuidedGradCAM(cnn, "feat")])):
        x = rng.random((4,) + tuple(model.inputs[0].shape[1:]), dtype=np.float32)
        all_layers = [lyr for lyr in _layers(model)]
        before_pred = model.predict(x, verbose=0)
        before_w = [w.copy() for w in model.get_weights()]
        before_attrs = [dict(vars(lyr)) for lyr in all_layers]
        before_nodes = [len(lyr._inbound_nodes) for lyr in all_layers]
        seen = []
        thread = threading.Thread(
            target=lambda: seen.extend(model.predict(x, verbose=0) for _ in range(4)))
        thread.start()
        for explainer in explainers:
            explainer(x)
        thread.join()
        for pred in seen + [model.predict(x, verbose=0)]:
            np.testing.assert_array_equal(pred, before_pred)
        for a, b in zip(model.get_weights(), before_w):
            np.testing.assert_array_equal(a, b)
        for lyr, attrs, nodes in zip(all_layers, before_attrs, before_nodes):
            assert "call" not in vars(lyr)
            assert vars(lyr).get("activation") is attrs.get("activation")
            assert set(vars(lyr)) == set(attrs)
            assert len(lyr._inbound_nodes) == nodes


def _layers(model):
    for lyr in model.layers:
        yield lyr
        if isinstance(lyr, keras.Model):
            yield from _layers(lyr)


def test_guided_backprop_explains_the_input_not_a_layer(cnn):
    with pytest.raises(ValueError, match="explains the input, not a layer"):
        GuidedBackprop(cnn, "feat")
    flat = keras.Sequential([keras.Input((5,)), L.Dense(3, activation="relu"), L.Dense(2)])
    with pytest.raises(ValueError, match="input with spatial axes"):
        GuidedBackprop(flat)


def test_guided_gradcam_through_a_nested_backbone_target(rng):
    """The default layer of a Sequential around a backbone is the backbone itself: its ReLUs must
    still be guided (they run inside the captured call)."""
    keras.utils.set_random_seed(5)
    backbone = keras.Sequential([
        keras.Input((8, 8, 2)),
        L.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
        L.Conv2D(4, 3, padding="same", activation="relu", name="c2"),
    ], name="backbone")
    model = keras.Sequential([keras.Input((8, 8, 2)), backbone, L.Flatten(), L.Dense(3)])
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    by_model = GuidedGradCAM(model, "backbone")(x, [0, 1, 2])
    by_leaf = GuidedGradCAM(model, "backbone/c2")(x, [0, 1, 2])
    np.testing.assert_allclose(by_model.extras["gradients"], by_leaf.extras["gradients"],
                               rtol=1e-5, atol=1e-7)
    guided = GuidedBackprop(model)(x, [0, 1, 2]).extras["gradients"]
    cam = tfg.GradCAM(model, "backbone")(x, [0, 1, 2]).heatmaps
    np.testing.assert_allclose(by_model.extras["gradients"], guided * cam[..., None],
                               rtol=1e-4, atol=1e-6)
