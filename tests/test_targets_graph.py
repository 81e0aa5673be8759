"""Any tensor of a functional graph as the target: op nodes, layer inputs, one call of a shared
layer, one output of several; the automatic choice on hand-built heads; the model untouched.

Every map is checked against a plain eager reference: a Keras sub-model up to the tensor, the
rest of the network called by hand on it under a GradientTape, Grad-CAM's formula in NumPy.
"""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg

L = keras.layers


def gradcam_np(acts, grads):
    acts, grads = np.asarray(acts, np.float64), np.asarray(grads, np.float64)
    weights = grads.mean(axis=tuple(range(1, acts.ndim - 1)))
    return np.maximum(np.einsum("n...k,nk->n...", acts, weights), 0)


def eager(features, head, x, classes):
    """``(activations, gradients)`` of ``head(features(x))[:, classes]`` at ``features``' output."""
    with tf.GradientTape() as tape:
        acts = features(x)
        tape.watch(acts)
        out = head(acts)
        score = tf.gather(out, classes, axis=1, batch_dims=1)
    return acts.numpy(), tape.gradient(score, acts).numpy()


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert b.max() > 0, "the reference map is all zero: the comparison would prove nothing"
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * b.max())


# ---------------------------------------------------------------------- operation nodes
@pytest.fixture(scope="module")
def residual():
    """conv -> conv, then a bare ``keras.ops.add`` node (no layer) feeding the pooling."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((10, 10, 3))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = L.Conv2D(6, 3, padding="same", name="b")(a)
    s = keras.ops.add(a, b)
    pool = L.GlobalAveragePooling2D(name="pool")
    out = L.Dense(4, name="fc")(pool(keras.ops.relu(s)))
    model = keras.Model(inp, out)
    return model, s, pool


def test_an_op_node_is_a_target_named_or_as_the_input_of_a_layer(residual, rng):
    model, s, pool = residual
    op = s._keras_history.operation
    x = rng.random((3, 10, 10, 3), dtype=np.float32)
    feats = keras.Model(model.inputs, s)
    head = lambda t: model.get_layer("fc")(pool(tf.nn.relu(t)))  # noqa: E731
    acts, grads = eager(feats, head, x, tf.constant([0, 1, 3]))
    by_name = tfg.GradCAM(model, op.name)(x, [0, 1, 3])
    close(by_name.raw, gradcam_np(acts, grads))
    relu_op = [o for o in model.operations if type(o).__name__ == "Relu"][0]
    by_input = tfg.GradCAM(model, tfg.input_of(relu_op))(x, [0, 1, 3])
    close(by_input.raw, by_name.raw)
    assert by_input.layer == f"input_of({relu_op.name})"
    # the reported name round-trips, and the op is listed with its shape
    again = tfg.GradCAM(model, by_input.layer)(x, [0, 1, 3])
    np.testing.assert_array_equal(again.raw, by_input.raw)
    assert (op.name, (None, 10, 10, 6)) in tfg.list_layers(model, details=True)


def test_the_automatic_choice_is_what_feeds_the_pooling(residual):
    model, _, pool = residual
    explainer = tfg.GradCAM(model)
    relu_op = [o for o in model.operations if type(o).__name__ == "Relu"][0]
    assert explainer.layer_names == relu_op.name  # the relu node feeds the pooling layer


# ---------------------------------------------------------------------- shared calls
@pytest.fixture(scope="module")
def siamese():
    keras.utils.set_random_seed(6)
    branch = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu",
                                                               name="c")], name="branch")
    left, right = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    fl, fr = branch(left), branch(right)
    out = L.Dense(2, name="fc")(L.Flatten()(L.Concatenate()([fl, 0.5 * fr])))
    return keras.Model([left, right], out), branch


def test_each_call_of_a_shared_branch_is_its_own_target(siamese, rng):
    model, branch = siamese
    xl, xr = rng.random((2, 8, 8, 1), dtype=np.float32), rng.random((2, 8, 8, 1), dtype=np.float32)
    fc = model.get_layer("fc")

    def head_given(left, right):
        return lambda t: fc(L.Flatten()(tf.concat(
            [t if left is None else left, 0.5 * (t if right is None else right)], axis=-1)))

    fl, fr = branch(xl), branch(xr)
    ident = keras.Model(branch.inputs, branch.outputs)
    acts0, grads0 = eager(ident, head_given(None, fr), xl, tf.constant([1, 0]))
    acts1, grads1 = eager(ident, head_given(fl, None), xr, tf.constant([1, 0]))
    call0 = tfg.GradCAM(model, "branch@0")([xl, xr], [1, 0])
    call1 = tfg.GradCAM(model, tfg.output_of("branch", call=1))([xl, xr], [1, 0])
    close(call0.raw, gradcam_np(acts0, grads0))
    close(call1.raw, gradcam_np(acts1, grads1))
    inner = tfg.GradCAM(model, "branch@1/c")([xl, xr], [1, 0])  # a layer inside one call
    close(inner.raw, call1.raw)
    with pytest.raises(ValueError, match=r"called 2 times.*'branch@0'.*tfg.GradCAM\(backbone\)"):
        tfg.GradCAM(model, "branch")
    with pytest.raises(ValueError, match="no call 5"):
        tfg.GradCAM(model, "branch@5")


# ---------------------------------------------------------------------- several outputs
class Split(L.Layer):
    """Two outputs: the first half of the channels, and the second half doubled."""

    def call(self, x):
        half = x.shape[-1] // 2
        return [x[..., :half], 2.0 * x[..., half:]]

    def compute_output_shape(self, shape):
        half = shape[-1] // 2
        return [shape[:-1] + (half,), shape[:-1] + (shape[-1] - half,)]


def test_one_output_of_a_multi_output_layer(rng):
    keras.utils.set_random_seed(7)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inp)
    first, second = Split(name="split")(a)
    out = L.Dense(3, name="fc")(L.Flatten()(L.Concatenate()([first, keras.ops.square(second)])))
    model = keras.Model(inp, out)
    x = rng.random((2, 6, 6, 2), dtype=np.float32)
    conv = keras.Model(inp, a)
    fc = model.get_layer("fc")
    acts, grads = eager(lambda t: 2.0 * conv(t)[..., 3:],
                        lambda s: fc(L.Flatten()(tf.concat([conv(x)[..., :3], s * s], -1))),
                        x, tf.constant([2, 0]))
    res = tfg.GradCAM(model, "split[1]")(x, [2, 0])
    close(res.raw, gradcam_np(acts, grads))
    assert res.layer == "split[1]"
    with pytest.raises(ValueError, match=r"has 2 outputs.*'split\[0\]'"):
        tfg.GradCAM(model, "split")


# ---------------------------------------------------------------------- segmentation
def test_a_segmenter_is_explained_where_its_per_pixel_classifier_reads(rng):
    keras.utils.set_random_seed(8)
    inp = keras.Input((16, 16, 3))
    e1 = L.Conv2D(8, 3, padding="same", activation="relu", name="enc")(inp)
    down = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down")(e1)
    up = L.UpSampling2D(name="up")(down)
    dec = L.Conv2D(8, 3, padding="same", activation="relu", name="dec")(
        L.Concatenate(name="skip")([up, e1]))
    logits = L.Conv2D(3, 1, name="classifier")(dec)
    model = keras.Model(inp, L.Softmax(name="probs")(logits))
    explainer = tfg.GradCAM(model)
    assert explainer.layer_names == "dec"  # not the output, not the classifier itself
    mask = np.zeros((16, 16), np.float32)
    mask[4:8, 4:8] = 1

    def region(out):  # the class-1 logits summed over the region
        return tf.reduce_sum(out[..., 1] * mask, axis=(1, 2))

    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    res = explainer(x, region)
    feats = keras.Model(inp, dec)
    with tf.GradientTape() as tape:
        acts = feats(x)
        tape.watch(acts)
        score = tf.reduce_sum(model.get_layer("classifier")(acts)[..., 1] * mask, axis=(1, 2))
    close(res.raw, gradcam_np(acts.numpy(), tape.gradient(score, acts).numpy()))


# ---------------------------------------------------------------------- sequences
def test_cnn_reshape_lstm_is_explained_at_the_cnn(rng):
    keras.utils.set_random_seed(9)
    inp = keras.Input((8, 32, 1))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="cnn")(inp)
    seq = L.Reshape((32, 8 * 4))(L.Permute((2, 1, 3))(a))  # columns as time steps
    model = keras.Model(inp, L.Dense(3)(L.LSTM(5)(seq)))
    res = tfg.GradCAM(model)(rng.random((2, 8, 32, 1), dtype=np.float32))
    assert res.layer == "cnn" and res.heatmaps.shape == (2, 8, 32)


def test_time_distributed_cnn_is_explained_before_the_per_frame_pooling(rng):
    keras.utils.set_random_seed(10)
    inp = keras.Input((4, 8, 8, 1))
    a = L.TimeDistributed(L.Conv2D(3, 3, padding="same", activation="relu"), name="td_conv")(inp)
    pooled = L.TimeDistributed(L.GlobalAveragePooling2D(), name="td_pool")(a)
    model = keras.Model(inp, L.Dense(2)(L.LSTM(4)(pooled)))
    res = tfg.GradCAM(model)(rng.random((2, 4, 8, 8, 1), dtype=np.float32))
    assert res.layer == "td_conv" and res.heatmaps.shape == (2, 4, 8, 8)


def test_the_error_lists_the_candidates_with_shapes():
    inp = keras.Input((6, 6, 1))
    model = keras.Model(inp, L.Conv2D(2, 3, name="conv")(inp))  # the classifier reads the image
    with pytest.raises(ValueError, match=r"no automatic choice.*'conv' \(None, 4, 4, 2\)"):
        tfg.GradCAM(model)


# ---------------------------------------------------------------------- the model untouched
def test_new_kinds_of_targets_leave_the_model_untouched(residual, siamese, rng):
    for model, layer, x in (
        (residual[0], tfg.input_of("pool"), rng.random((4, 10, 10, 3), dtype=np.float32)),
        (siamese[0], "branch@1/c", [rng.random((4, 8, 8, 1), dtype=np.float32)] * 2),
    ):
        layers = [lyr for lyr in model._flatten_layers()]
        before = {
            "weights": [w.copy() for w in model.get_weights()],
            "pred": model.predict(x, verbose=0),
            "nodes": [len(lyr._inbound_nodes) for lyr in layers],
            "dicts": [dict(vars(lyr)) for lyr in layers],
        }
        explainer = tfg.GradCAM(model, layer)
        seen = []
        thread = threading.Thread(target=lambda: [seen.append(model.predict(x, verbose=0))
                                                  for _ in range(3)])
        thread.start()
        for _ in range(2):
            explainer(x, lambda out: out[:, 0])
        thread.join()
        for pred in seen:
            np.testing.assert_array_equal(pred, before["pred"])
        for a, b in zip(model.get_weights(), before["weights"]):
            np.testing.assert_array_equal(a, b)
        assert [len(lyr._inbound_nodes) for lyr in layers] == before["nodes"]
        for lyr, attrs in zip(layers, before["dicts"]):
            assert vars(lyr).keys() == attrs.keys()
            # Keras' own predict() (the thread's) sets model.history anew on Keras 3.8.
            changed = [k for k, v in attrs.items() if vars(lyr)[k] is not v and k != "history"]
            assert not changed, (lyr.name, changed)
