"""The engine against mathematics: a plain eager reference, the CAM identity, and the edge cases."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tests import reference as ref

L = keras.layers


def _conv_stack(x, conv, n=2, width=6):
    for i in range(n):
        x = conv(width, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    return x


def _gap_for(rank):
    return {3: L.GlobalAveragePooling1D, 4: L.GlobalAveragePooling2D,
            5: L.GlobalAveragePooling3D}[rank]()


@pytest.fixture(scope="module")
def functional_cnn():
    inp = keras.Input((12, 12, 3))
    x = _conv_stack(inp, L.Conv2D)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    x = L.Flatten()(x)  # not GAP: the gradients vary over space
    out = L.Dense(4, name="logits")(x)
    return keras.Model(inp, out, name="functional_cnn")


def _check_against_reference(model, layer_name, features_model, logits_fn, x, classes, **kw):
    explainer = tfg.GradCAM(model, layer_name, **kw)
    result = explainer(x, classes)
    raw, weights, scores = ref.gradcam(features_model, logits_fn, x, tf.constant(classes))
    assert ref.rel_err(result.raw, raw) < 1e-5
    assert ref.rel_err(result.weights, weights) < 1e-5
    assert ref.rel_err(result.scores, scores) < 1e-5
    np.testing.assert_array_equal(result.targets, classes)
    assert raw.max() > 0, "the reference map is all zero: the test would prove nothing"
    return result


def test_functional_matches_eager_reference(functional_cnn, rng):
    m = functional_cnn
    x = rng.random((5, 12, 12, 3), dtype=np.float32)
    feats = keras.Model(m.inputs, [m.get_layer("last_conv").output, m.layers[-2].output])
    _check_against_reference(m, "last_conv", feats, ref.dense_logits(m.get_layer("logits")),
                             x, np.array([0, 1, 2, 3, 1]))


def test_shallow_layer_matches_reference(functional_cnn, rng):
    m = functional_cnn
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    feats = keras.Model(m.inputs, [m.get_layer("conv0").output, m.layers[-2].output])
    res = _check_against_reference(m, "conv0", feats, ref.dense_logits(m.get_layer("logits")),
                                   x, np.array([2, 2, 0]))
    assert res.raw.shape == (3, 12, 12)


def test_sequential_with_softmax_head_explains_logits(rng):
    model = keras.Sequential([
        keras.Input((10, 10, 2)),
        L.Conv2D(5, 3, activation="relu", name="c1"),
        L.Conv2D(7, 3, activation="relu", name="c2"),
        L.Flatten(),
        L.Dense(3, activation="softmax", name="probs"),
    ])
    x = rng.random((4, 10, 10, 2), dtype=np.float32)
    feats = keras.Model(model.inputs, [model.get_layer("c2").output, model.layers[-2].output])
    res = _check_against_reference(model, "c2", feats, ref.dense_logits(model.get_layer("probs")),
                                   x, np.array([0, 1, 2, 0]))
    # the model itself still outputs probabilities
    np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=1), 1, rtol=1e-5)
    # ... and "probabilities" explains them: scores are the softmax outputs
    probs = tfg.GradCAM(model, "c2", score="probabilities")(x, [0, 1, 2, 0])
    expected = model.predict(x, verbose=0)[np.arange(4), [0, 1, 2, 0]]
    np.testing.assert_allclose(probs.scores, expected, rtol=1e-5)
    assert not np.allclose(probs.scores, res.scores)


def test_softmax_activation_layer_head(rng):
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = L.Flatten()(x)
    logits = L.Dense(3, name="dense")(x)
    out = L.Softmax()(logits)
    model = keras.Model(inp, out)
    x_in = rng.random((2, 8, 8, 1), dtype=np.float32)
    res = tfg.GradCAM(model, "conv")(x_in, 1)
    logit_model = keras.Model(inp, logits)
    np.testing.assert_allclose(res.scores, logit_model.predict(x_in, verbose=0)[:, 1], rtol=1e-5)


@pytest.fixture(scope="module")
def nested_mobilenet():
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    model = keras.Sequential([
        keras.Input((32, 32, 3)), base, L.GlobalAveragePooling2D(), L.Dense(5, activation="softmax")
    ])
    return model, base


@pytest.mark.parametrize("layer", ["out_relu", "block_14_add"])
def test_mobilenet_nested_in_sequential(nested_mobilenet, rng, layer):
    model, base = nested_mobilenet
    x = rng.random((3, 32, 32, 3), dtype=np.float32)
    # Keras-io style sub-model *inside* the backbone's own graph, then the head by hand.
    feats = keras.Model(base.inputs, [base.get_layer(layer).output, base.output])
    dense = model.layers[-1]
    logits_fn = lambda f: ref.dense_logits(dense)(tf.reduce_mean(f, axis=(1, 2)))  # noqa: E731
    _check_against_reference(model, layer, feats, logits_fn, x, np.array([0, 4, 2]))
    # the path form and the layer object name the same layer
    by_path = tfg.GradCAM(model, f"{base.name}/{layer}")(x, [0, 4, 2])
    by_obj = tfg.GradCAM(model, base.get_layer(layer))(x, [0, 4, 2])
    np.testing.assert_allclose(by_path.raw, by_obj.raw, rtol=1e-6)


def test_default_layer_looks_inside_nested_model(nested_mobilenet):
    model, base = nested_mobilenet
    explainer = tfg.GradCAM(model)
    assert explainer.layer_ref.path.startswith(base.name)
    names = tfg.list_layers(model)
    assert names[0] == base.name and f"{base.name}/out_relu" in names[:3]
    assert all("global_average" not in n and "dense" not in n for n in names)


def test_multi_input_model(rng):
    img = keras.Input((8, 8, 3), name="image")
    meta = keras.Input((4,), name="meta")
    x = L.Conv2D(6, 3, activation="relu", name="conv")(img)
    x = L.Flatten()(x)
    x = L.Concatenate()([x, L.Dense(5, activation="tanh")(meta)])
    out = L.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model([img, meta], out)
    xi, xm = rng.random((4, 8, 8, 3), dtype=np.float32), rng.random((4, 4), dtype=np.float32)
    feats = keras.Model(model.inputs, [model.get_layer("conv").output, model.layers[-2].output])
    res = _check_against_reference(model, "conv", feats, ref.dense_logits(model.get_layer("head")),
                                   [xi, xm], np.array([0, 1, 2, 1]))
    assert res.heatmaps.shape == (4, 8, 8)
    by_dict = tfg.GradCAM(model, "conv")({"image": xi, "meta": xm}, [0, 1, 2, 1])
    np.testing.assert_allclose(by_dict.raw, res.raw, rtol=1e-6)


@pytest.mark.parametrize("rank", [3, 5])
def test_1d_and_3d_networks(rng, rank):
    shape = {3: (20, 2), 5: (6, 6, 6, 1)}[rank]
    conv = {3: L.Conv1D, 5: L.Conv3D}[rank]
    inp = keras.Input(shape)
    x = _conv_stack(inp, conv, n=2, width=4)
    x = L.Flatten()(x)
    out = L.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    x_in = rng.random((3,) + shape, dtype=np.float32)
    feats = keras.Model(inp, [model.get_layer("conv1").output, model.layers[-2].output])
    res = _check_against_reference(model, None, feats, ref.dense_logits(model.get_layer("head")),
                                   x_in, np.array([0, 1, 2]))
    assert res.layer == "conv1"
    assert res.heatmaps.shape == (3,) + shape[:-1]
    assert res.heatmaps.max() == pytest.approx(1.0) and res.heatmaps.min() >= 0


def test_gradcam_equals_cam_on_gap_dense(rng):
    """The paper's identity: on conv -> GAP -> dense, alpha_k^c = w_k^c / Z: maps agree up to Z."""
    inp = keras.Input((9, 9, 3))
    a = L.Conv2D(6, 3, activation="relu", name="features")(inp)
    out = L.Dense(4, activation="softmax", name="fc")(L.GlobalAveragePooling2D()(a))
    model = keras.Model(inp, out)
    x = rng.random((4, 9, 9, 3), dtype=np.float32)
    classes = np.array([0, 1, 2, 3])
    res = tfg.GradCAM(model, "features")(x, classes)
    acts = keras.Model(inp, a).predict(x, verbose=0)
    kernel = model.get_layer("fc").kernel.numpy()  # [K, C]
    cam = np.maximum(np.einsum("nhwk,kn->nhw", acts, kernel[:, classes]), 0)
    z = 7 * 7
    np.testing.assert_allclose(res.raw * z, cam, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.weights * z, kernel[:, classes].T, rtol=1e-4, atol=1e-7)


def test_model_is_unchanged(functional_cnn, rng):
    m = functional_cnn
    x = rng.random((6, 12, 12, 3), dtype=np.float32)
    before_w = [w.copy() for w in m.get_weights()]
    before_pred = m.predict(x, verbose=0)
    before_act = [getattr(lyr, "activation", None) for lyr in m.layers]
    before_trainable = [lyr.trainable for lyr in m.layers]
    before_nodes = [len(lyr._inbound_nodes) for lyr in m.layers]

    explainer = tfg.GradCAM(m, "last_conv")
    concurrent = []

    def predict_loop():
        for _ in range(5):
            concurrent.append(m.predict(x, verbose=0))

    thread = threading.Thread(target=predict_loop)
    thread.start()
    for _ in range(3):
        explainer(x)
    thread.join()

    for pred in concurrent:
        np.testing.assert_array_equal(pred, before_pred)
    np.testing.assert_array_equal(m.predict(x, verbose=0), before_pred)
    for a, b in zip(m.get_weights(), before_w):
        np.testing.assert_array_equal(a, b)
    assert [getattr(lyr, "activation", None) for lyr in m.layers] == before_act
    assert [lyr.trainable for lyr in m.layers] == before_trainable
    assert [len(lyr._inbound_nodes) for lyr in m.layers] == before_nodes


def test_softmax_model_keeps_its_softmax(rng):
    inp = keras.Input((6, 6, 1))
    x = L.Conv2D(3, 3, activation="relu")(inp)
    dense = L.Dense(2, activation="softmax")
    model = keras.Model(inp, dense(L.Flatten()(x)))
    x_in = rng.random((2, 6, 6, 1), dtype=np.float32)
    before = model.predict(x_in, verbose=0)
    tfg.GradCAM(model)(x_in)
    assert dense.activation is keras.activations.softmax
    np.testing.assert_array_equal(model.predict(x_in, verbose=0), before)


def test_compiles_once(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((8, 12, 12, 3), dtype=np.float32)
    explainer(x)
    explainer(x, 1)
    explainer(x, [0, 1, 2, 3, 0, 1, 2, 3])
    explainer(x[:3])  # another batch size
    explainer(x[:5], 2)
    explainer(x, batch_size=3)  # chunks of 3 and a last chunk of 2
    assert explainer.trace_count == 1
    explainer(x, lambda logits: logits[:, 0] - logits[:, 1])
    explainer(x[:2], lambda logits: logits[:, 0] - logits[:, 1])
    assert explainer.trace_count == 3  # one per distinct callable, not per call or size


def test_batching_gives_same_result(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((7, 12, 12, 3), dtype=np.float32)
    whole = explainer(x)
    chunked = explainer(x, batch_size=2)
    np.testing.assert_allclose(chunked.raw, whole.raw, rtol=1e-5, atol=1e-7)
    one = explainer(x[3:4])
    np.testing.assert_allclose(one.raw[0], whole.raw[3], rtol=1e-5, atol=1e-7)


def test_xla_matches(functional_cnn, rng):
    x = rng.random((4, 12, 12, 3), dtype=np.float32)
    plain = tfg.GradCAM(functional_cnn, "last_conv")(x)
    xla = tfg.GradCAM(functional_cnn, "last_conv", jit_compile=True)(x)
    np.testing.assert_allclose(xla.raw, plain.raw, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(xla.targets, plain.targets)


def test_targets_forms(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((4, 12, 12, 3), dtype=np.float32)
    logits = functional_cnn.predict(x, verbose=0)
    top = explainer(x)
    np.testing.assert_array_equal(top.targets, logits.argmax(1))
    np.testing.assert_allclose(top.scores, logits.max(1), rtol=1e-5)
    fixed = explainer(x, 3)
    np.testing.assert_allclose(fixed.scores, logits[:, 3], rtol=1e-5)
    per = explainer(x, np.array([3, 2, 1, 0]))
    np.testing.assert_allclose(per.scores, logits[np.arange(4), [3, 2, 1, 0]], rtol=1e-5)
    fn = explainer(x, lambda out: out[:, 3])
    np.testing.assert_array_equal(fn.targets, [-1] * 4)
    np.testing.assert_allclose(fn.raw, fixed.raw, rtol=1e-5, atol=1e-7)
    assert top.targets.dtype == np.int64 and top.scores.dtype == np.float32


def test_callable_target_on_multi_output_model(rng):
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    f = L.Flatten()(a)
    cls = L.Dense(3, activation="softmax", name="cls")(f)
    reg = L.Dense(1, name="reg")(f)
    model = keras.Model(inp, [cls, reg])
    x = rng.random((3, 8, 8, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="callable"):
        tfg.GradCAM(model, "conv")(x, 1)
    res = tfg.GradCAM(model, "conv")(x, lambda outs: outs[1][:, 0])
    np.testing.assert_allclose(res.scores, model.predict(x, verbose=0)[1][:, 0], rtol=1e-5)


def test_dataset_inputs(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((6, 12, 12, 3), dtype=np.float32)
    y = np.arange(6) % 4
    direct = explainer(x, y)
    ds_xy = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    np.testing.assert_allclose(explainer(ds_xy, y).raw, direct.raw, rtol=1e-5, atol=1e-7)
    ds_x = tf.data.Dataset.from_tensor_slices(x).batch(5)
    np.testing.assert_allclose(explainer(ds_x, y).raw, direct.raw, rtol=1e-5, atol=1e-7)


def test_mixed_precision_gives_finite_float32_maps(rng):
    policy = "mixed_float16"
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, activation="relu", dtype=policy)(inp)
    x = L.Conv2D(8, 3, activation="relu", dtype=policy, name="last")(x)
    x = L.GlobalAveragePooling2D(dtype=policy)(x)
    out = L.Dense(3, activation="softmax", dtype="float32")(x)
    model = keras.Model(inp, out)
    # large inputs push float16 activations up: the map must not overflow to inf/NaN
    x_in = (rng.random((4, 16, 16, 3), dtype=np.float32) * 300).astype(np.float32)
    res = tfg.GradCAM(model, "last")(x_in)
    for arr in (res.heatmaps, res.raw, res.scores):
        assert arr.dtype == np.float32 and np.isfinite(arr).all()
    assert res.heatmaps.max() == pytest.approx(1.0)


def test_mixed_precision_agrees_with_float32(rng):
    def build(dtype):
        keras.utils.set_random_seed(3)
        inp = keras.Input((10, 10, 2))
        x = L.Conv2D(6, 3, activation="relu", name="last", dtype=dtype)(inp)
        x = L.GlobalAveragePooling2D(dtype=dtype)(x)
        return keras.Model(inp, L.Dense(3, activation="softmax", dtype="float32")(x))

    m16, m32 = build("mixed_float16"), build("float32")
    m16.set_weights(m32.get_weights())
    x = rng.random((3, 10, 10, 2), dtype=np.float32)
    a = tfg.GradCAM(m16, "last")(x, [0, 1, 2])
    b = tfg.GradCAM(m32, "last")(x, [0, 1, 2])
    np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=2e-2)


def test_zero_maps_stay_zero_not_nan(rng):
    inp = keras.Input((8, 8, 1))
    dead = L.Conv2D(4, 3, activation="relu", kernel_initializer="zeros",
                    bias_initializer="zeros", name="dead")(inp)
    out = L.Dense(2)(L.Flatten()(dead))
    model = keras.Model(inp, out)
    res = tfg.GradCAM(model, "dead")(rng.random((2, 8, 8, 1), dtype=np.float32))
    assert np.all(res.heatmaps == 0) and np.all(res.raw == 0)

    # zero gradients: a classifier whose weights are all zero
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(4, 3, activation="relu", name="alive")(inp)
    model = keras.Model(inp, L.Dense(2, kernel_initializer="zeros")(L.Flatten()(a)))
    res = tfg.GradCAM(model, "alive")(rng.random((2, 8, 8, 1), dtype=np.float32))
    assert np.all(res.heatmaps == 0) and not np.isnan(res.heatmaps).any()


def test_frozen_backbone_still_has_gradients(rng):
    inp = keras.Input((8, 8, 2))
    conv = L.Conv2D(4, 3, activation="relu", name="frozen")
    conv.trainable = False
    x = conv(inp)
    out = L.Dense(3)(L.Flatten()(x))
    model = keras.Model(inp, out)
    res = tfg.GradCAM(model, "frozen")(rng.random((2, 8, 8, 2), dtype=np.float32))
    assert res.raw.max() > 0


def test_counterfactual_negates_weights(functional_cnn, rng):
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    plain = tfg.GradCAM(functional_cnn, "last_conv")(x, 1)
    counter = tfg.GradCAM(functional_cnn, "last_conv", counterfactual=True)(x, 1)
    np.testing.assert_allclose(counter.weights, -plain.weights, rtol=1e-6)


# ------------------------------------------------------------------------ errors
def test_unknown_layer_lists_candidates(functional_cnn):
    with pytest.raises(ValueError) as err:
        tfg.GradCAM(functional_cnn, "no_such_layer")
    msg = str(err.value)
    assert "no_such_layer" in msg and "'last_conv', 'pool', 'conv1', 'conv0'" in msg


def test_layer_without_spatial_output(functional_cnn):
    with pytest.raises(ValueError, match="no spatial axes.*last_conv"):
        tfg.GradCAM(functional_cnn, "logits")


def test_no_spatial_layer_at_all():
    model = keras.Sequential([keras.Input((5,)), L.Dense(3)])
    with pytest.raises(ValueError, match="no layer whose output has spatial axes"):
        tfg.GradCAM(model)


def test_class_index_out_of_range(functional_cnn, rng):
    x = rng.random((2, 12, 12, 3), dtype=np.float32)
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    with pytest.raises(ValueError, match=r"Class index 4 is out of range.*0 to 3"):
        explainer(x, 4)
    with pytest.raises(ValueError, match=r"out of range"):
        explainer(x, [0, -2])
    with pytest.raises(ValueError, match=r"Got 3 targets for 2 inputs"):
        explainer(x, [0, 1, 2])


def test_wrong_input_shape(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    with pytest.raises(ValueError, match=r"add the batch axis"):
        explainer(rng.random((12, 12, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expects \(None, 12, 12, 3\)"):
        explainer(rng.random((2, 10, 12, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"channel axis"):
        explainer(rng.random((2, 12, 12), dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(functional_cnn, rng, bad):
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    x[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match=r"NaN or infinity in sample\(s\) \[1\]"):
        tfg.GradCAM(functional_cnn, "last_conv")(x)


def test_unbuilt_model():
    model = keras.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match="has not been built.*keras.Input"):
        tfg.GradCAM(model)


def test_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 3)
            self.head = L.Dense(2)

        def call(self, x):
            return self.head(L.Flatten()(self.conv(x)))

    net = Net()
    net(np.zeros((1, 6, 6, 1), np.float32))
    with pytest.raises(ValueError, match="subclassed.*functional API"):
        tfg.GradCAM(net)


def test_bad_options(functional_cnn, rng):
    with pytest.raises(ValueError, match="score must be one of"):
        tfg.GradCAM(functional_cnn, score="softmax")
    with pytest.raises(ValueError, match="batch_size"):
        tfg.GradCAM(functional_cnn)(rng.random((1, 12, 12, 3), dtype=np.float32), batch_size=0)
    with pytest.raises(ValueError, match="Unknown method 'nope'.*gradcam"):
        tfg.explain(functional_cnn, rng.random((1, 12, 12, 3), dtype=np.float32), method="nope")


def test_other_backend_is_refused(monkeypatch):
    from tf_gradcam import _compat

    monkeypatch.setattr(_compat.keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match="KERAS_BACKEND=tensorflow"):
        _compat.check_backend()


def test_explain_function_form(functional_cnn, rng):
    x = rng.random((2, 12, 12, 3), dtype=np.float32)
    a = tfg.explain(functional_cnn, x, 1, method="Grad-CAM", layer="last_conv")
    b = tfg.GradCAM(functional_cnn, "last_conv")(x, 1)
    np.testing.assert_allclose(a.heatmaps, b.heatmaps, rtol=1e-6)
    assert a.method == "gradcam" and a.layer == "last_conv"


def test_two_level_nesting_and_transfer_learning_call(rng):
    """A layer two models deep, the backbone called with training=False as in transfer learning."""
    deep = L.Conv2D(4, 3, activation="relu", name="deep")
    mid_conv = L.Conv2D(5, 3, activation="relu", name="mid_conv")
    inner = keras.Sequential([keras.Input((10, 10, 3)), deep], name="inner")
    mid = keras.Sequential([keras.Input((10, 10, 3)), inner, mid_conv], name="mid")
    inp = keras.Input((10, 10, 3))
    x = mid(L.Rescaling(0.5)(inp), training=False)
    x = L.Dropout(0.5)(L.Flatten()(x))  # inference mode: dropout must be off
    head = L.Dense(3, activation="softmax", name="head")
    model = keras.Model(inp, head(x))
    assert tfg.list_layers(model)[:4] == ["mid", "mid/mid_conv", "mid/inner", "mid/inner/deep"]

    # Reference: the same layers called flat, in a fresh graph of the test's own.
    r_in = keras.Input((10, 10, 3))
    r_a = deep(L.Rescaling(0.5)(r_in))
    feats = keras.Model(r_in, [r_a, L.Flatten()(mid_conv(r_a))])
    x_in = rng.random((3, 10, 10, 3), dtype=np.float32)
    _check_against_reference(model, "deep", feats, ref.dense_logits(head), x_in,
                             np.array([2, 0, 1]))


# ------------------------------------------------------------------ architectures seen in review
def test_softmax_written_as_an_op(rng):
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(3, 3, activation="relu", name="conv")(inp)
    logits = L.Dense(3, name="dense")(L.Flatten()(a))
    model = keras.Model(inp, keras.ops.softmax(logits))
    x = rng.random((2, 6, 6, 1), dtype=np.float32)
    res = tfg.GradCAM(model, "conv")(x, 2)
    np.testing.assert_allclose(res.scores, keras.Model(inp, logits).predict(x, verbose=0)[:, 2],
                               rtol=1e-5)


def test_map_is_drawn_over_the_input_the_layer_reads(rng):
    meta, seq = keras.Input((4,), name="meta"), keras.Input((30, 2), name="seq")
    a = L.Conv1D(3, 3, activation="relu", name="conv1d")(seq)
    model = keras.Model([meta, seq], L.Dense(2)(L.Concatenate()([L.Flatten()(a), meta])))
    res = tfg.GradCAM(model, "conv1d")([rng.random((2, 4)), rng.random((2, 30, 2))])
    assert res.heatmaps.shape == (2, 30)

    seq2, img = keras.Input((10, 3), name="seq"), keras.Input((16, 16, 3), name="img")
    b = L.Conv2D(3, 3, activation="relu", name="conv2d")(img)
    joined = L.Concatenate()([L.Flatten()(b), L.Flatten()(seq2)])
    model = keras.Model([seq2, img], L.Dense(2)(joined))
    res = tfg.GradCAM(model, "conv2d")([rng.random((2, 10, 3)), rng.random((2, 16, 16, 3))])
    assert res.heatmaps.shape == (2, 16, 16)


def test_token_ids_under_a_1d_layer(rng):
    tokens = keras.Input((12,), dtype="int32")
    a = L.Conv1D(4, 3, activation="relu", name="conv")(L.Embedding(50, 8)(tokens))
    model = keras.Model(tokens, L.Dense(2)(L.GlobalAveragePooling1D()(a)))
    x = rng.integers(0, 50, (3, 12)).astype(np.int32)
    assert tfg.GradCAM(model, "conv")(x).heatmaps.shape == (3, 12)
    with pytest.raises(ValueError, match="token ids"):
        tfg.ScoreCAM(model, "conv")


def test_channels_first_is_refused():
    inp = keras.Input((3, 8, 8))
    a = L.Conv2D(4, 3, data_format="channels_first", name="cf")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(a)))
    with pytest.raises(ValueError, match="channels_first.*channels_last"):
        tfg.GradCAM(model, "cf")


def test_layer_name_with_leading_underscore(rng):
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(3, 3, activation="relu", name="_conv")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(a)))
    assert tfg.GradCAM(model, "_conv")(rng.random((2, 6, 6, 1))).raw.shape == (2, 4, 4)


@pytest.mark.filterwarnings("ignore:When providing `inputs` as a dict")  # Keras, at build time
def test_dict_inputs_keyed_by_the_models_dict(rng):
    z, a = keras.Input((6, 6, 1), name="zz"), keras.Input((2,), name="aa")
    conv = L.Conv2D(3, 3, activation="relu", name="conv")(z)
    out = L.Dense(2)(L.Concatenate()([L.Flatten()(conv), a]))
    model = keras.Model({"zimage": z, "ameta": a}, out)
    x = {"zimage": rng.random((2, 6, 6, 1)), "ameta": rng.random((2, 2))}
    res = tfg.GradCAM(model, "conv")(x, 1)
    expected = model.predict({k: v.astype(np.float32) for k, v in x.items()}, verbose=0)[:, 1]
    np.testing.assert_allclose(res.scores, expected, rtol=1e-5)
    assert res.heatmaps.shape == (2, 6, 6)


def test_siamese_backbone_error_says_what_to_do(rng):
    branch = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(3, 3, name="c")], name="branch")
    left, right = keras.Input((6, 6, 1)), keras.Input((6, 6, 1))
    out = L.Dense(1)(L.Flatten()(L.Subtract()([branch(left), branch(right)])))
    model = keras.Model([left, right], out)
    with pytest.raises(ValueError, match=r"called 2 times.*tfg.GradCAM\(backbone\)"):
        tfg.GradCAM(model, "branch")([rng.random((1, 6, 6, 1))] * 2, lambda o: o[:, 0])


def test_callable_targets_must_give_one_float_per_sample(functional_cnn, rng):
    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"one score per sample \(\[3\]"):
        explainer(x, lambda logits: tf.reduce_sum(logits[:, 1])[None])
    with pytest.raises(ValueError, match="float score"):
        explainer(x, lambda logits: tf.argmax(logits, axis=1))


def test_callable_steps_are_bounded(functional_cnn, rng):
    from tf_gradcam.engine import step as engine

    explainer = tfg.GradCAM(functional_cnn, "last_conv")
    x = rng.random((1, 12, 12, 3), dtype=np.float32)
    for c in range(engine.MAX_CALLABLE_STEPS + 3):
        explainer(x, lambda logits, c=c: logits[:, c % 4])
    assert len(explainer._steps) == engine.MAX_CALLABLE_STEPS
    assert explainer.trace_count == engine.MAX_CALLABLE_STEPS + 3


def test_unbatched_dataset_says_batch_it(functional_cnn, rng):
    ds = tf.data.Dataset.from_tensor_slices(rng.random((4, 12, 12, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"single samples.*\.batch\("):
        tfg.GradCAM(functional_cnn, "last_conv")(ds)


def test_explainer_follows_weight_updates_under_a_softmax_head(rng):
    """The logits of a Dense(softmax) head are read from the live weights, not a snapshot taken
    when the explainer was built (a Keras layer copied by pickling would be one)."""
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(3, 3, activation="relu", name="conv")(inp)
    head = L.Dense(3, activation="softmax", name="head")
    model = keras.Model(inp, head(L.Flatten()(a)))
    x = rng.random((2, 6, 6, 1), dtype=np.float32)
    explainer = tfg.GradCAM(model, "conv")
    before = explainer(x, 1)
    head.kernel.assign(head.kernel * -2.0 + 0.5)
    after = explainer(x, 1)
    fresh = tfg.GradCAM(model, "conv")(x, 1)
    np.testing.assert_allclose(after.scores, fresh.scores, rtol=1e-6)
    np.testing.assert_allclose(after.raw, fresh.raw, rtol=1e-6)
    assert not np.allclose(after.scores, before.scores)
