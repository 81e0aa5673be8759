"""Never silently wrong: where the answer is not what was asked, it says so in words (or does
the right thing), for every case the issue lists."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg

L = keras.layers


@pytest.fixture(scope="module")
def binary_parts():
    keras.utils.set_random_seed(21)
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    feats = L.GlobalAveragePooling2D()(a)
    return inp, a, feats


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_a_binary_head_explains_the_predicted_class_and_both_classes(binary_parts, activation,
                                                                     rng):
    inp, a, feats = binary_parts
    dense = L.Dense(1, activation=activation, name="out")
    model = keras.Model(inp, dense(feats))
    x = rng.random((8, 8, 8, 1), dtype=np.float32) * 4 - 2
    pooled = keras.Model(inp, feats).predict(x, verbose=0)
    z = (pooled @ dense.kernel.numpy() + dense.bias.numpy())[:, 0]
    assert (z > 0).any() or (z < 0).any()
    explainer = tfg.GradCAM(model, "conv")
    top = explainer(x)
    np.testing.assert_array_equal(top.targets, (z > 0).astype(int))
    np.testing.assert_allclose(top.scores, np.abs(z), rtol=1e-5)  # the score explained
    neg, pos = explainer(x, 0), explainer(x, 1)
    np.testing.assert_allclose(neg.scores, -z, rtol=1e-5)
    np.testing.assert_allclose(pos.scores, z, rtol=1e-5)
    np.testing.assert_allclose(neg.weights, -pos.weights, rtol=1e-5)
    counter = tfg.GradCAM(model, "conv", counterfactual=True)(x, 1)
    np.testing.assert_allclose(counter.weights, neg.weights, rtol=1e-5)
    with pytest.raises(ValueError, match="out of range.*0 to 1"):
        explainer(x, 2)


def test_a_regression_model_is_not_read_as_a_classifier(binary_parts, rng):
    inp, a, feats = binary_parts
    model = keras.Model(inp, L.Dense(3, name="values")(feats))
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    assert tfg.GradCAM(model, "conv")(x).targets.shape == (2,)  # uncompiled: a classifier
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    assert tfg.GradCAM(model, "conv")(x).targets.shape == (2,)  # still a classifier
    for loss in ("mse", "mae", keras.losses.Huber()):
        model.compile(loss=loss)
        with pytest.raises(ValueError, match="regression loss.*targets=lambda out: out"):
            tfg.GradCAM(model, "conv")(x)
        res = tfg.GradCAM(model, "conv")(x, lambda out: out[:, 2])
        np.testing.assert_allclose(res.scores, model.predict(x, verbose=0)[:, 2], rtol=1e-5)


def test_a_softmax_hidden_in_a_lambda_is_said(binary_parts, rng):
    inp, a, feats = binary_parts
    hidden = keras.Model(inp, L.Lambda(lambda t: keras.ops.softmax(t))(L.Dense(3)(feats)))
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="outputs probabilities.*Lambda.*Expose the logits"):
        tfg.GradCAM(hidden, "conv")(x)
    with warnings_as_errors():  # a visible softmax: its logits are explained, nothing to say
        tfg.GradCAM(keras.Model(inp, L.Dense(3, activation="softmax")(feats)), "conv")(x)


class warnings_as_errors:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def test_inputs_against_an_in_model_rescaling(rng):
    keras.utils.set_random_seed(22)
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, activation="relu", name="conv")(L.Rescaling(1 / 255.0)(inp))
    model = keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(a)))
    explainer = tfg.GradCAM(model, "conv")
    unit = rng.random((2, 8, 8, 3), dtype=np.float32)
    with pytest.warns(UserWarning, match=r"Rescaling|rescales input.*\[0, 255\].*x \* 255"):
        explainer(unit)
    with warnings_as_errors():
        tfg.GradCAM(model, "conv")(unit * 255)


def test_empty_maps_say_why(rng):
    inp = keras.Input((8, 8, 1))
    dead = L.Conv2D(4, 3, activation="relu", bias_initializer=keras.initializers.Constant(-50.0),
                    name="dead")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(dead)))
    with pytest.warns(RuntimeWarning, match="all zero.*dead ReLUs"):
        res = tfg.GradCAM(model, "dead")(rng.random((2, 8, 8, 1), dtype=np.float32))
    assert not res.heatmaps.any()
    inp = keras.Input((8, 8, 1))
    alive = L.Conv2D(4, 3, activation="relu", name="alive")(inp)
    flat = keras.Model(inp, L.Dense(2, kernel_initializer="zeros")(L.Flatten()(alive)))
    with pytest.warns(RuntimeWarning, match="does not change with alive"):
        tfg.GradCAM(flat, "alive")(rng.random((2, 8, 8, 1), dtype=np.float32))


def test_several_explainers_do_not_trigger_tensorflows_retracing_warning(binary_parts, rng,
                                                                         caplog):
    inp, a, feats = binary_parts
    model = keras.Model(inp, L.Dense(3)(feats))
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    with caplog.at_level(logging.WARNING):
        for _ in range(7):
            tfg.GradCAM(model, "conv")(x)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_fresh_lambda_per_call_is_said(binary_parts, rng):
    inp, a, feats = binary_parts
    explainer = tfg.GradCAM(keras.Model(inp, L.Dense(3)(feats)), "conv")
    x = rng.random((1, 8, 8, 1), dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="compiled 3 times.*same object"):
        for _ in range(3):
            explainer(x, lambda out: out[:, 1])
    same = lambda out: out[:, 2]  # noqa: E731
    with warnings_as_errors():
        for _ in range(4):
            explainer(x, same)


# ---------------------------------------------------------------------- clear errors
@pytest.fixture(scope="module")
def image_model():
    keras.utils.set_random_seed(23)
    inp = keras.Input((12, 10, 3), name="image")
    a = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    return keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(a)))


def test_clear_errors_for_inputs_in_the_wrong_form(image_model, rng):
    explainer = tfg.GradCAM(image_model)
    images = [rng.random((12, 10, 3), dtype=np.float32) for _ in range(3)]
    with pytest.raises(ValueError, match=r"list of 3 single samples.*np\.stack"):
        explainer(images)
    with pytest.raises(ValueError, match=r"channels-first.*np\.transpose\(x, \(0, 2, 3, 1\)\)"):
        explainer(rng.random((2, 3, 12, 10), dtype=np.float32))
    ds = tf.data.Dataset.from_tensor_slices(rng.random((4, 12, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"dataset\.batch\(") as err:
        tfg.explain_dataset(explainer, ds, verbose=0)
    assert "x[None]" not in str(err.value) and "keras_tensor" not in str(err.value)
    with pytest.raises(ValueError) as err:
        explainer(rng.random((2, 5, 5, 3), dtype=np.float32))
    assert "'image'" in str(err.value) and "keras_tensor" not in str(err.value)


def test_clear_errors_for_targets_in_the_wrong_form(image_model, rng):
    explainer = tfg.GradCAM(image_model)
    x = rng.random((2, 12, 10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"integer indices.*np\.asarray|None \(each sample"):
        explainer(x, [0.5, 1.0])
    with pytest.raises(ValueError, match=r"targets must be None .*'label'"):
        explainer(x, "cat")


def test_token_ids_are_checked_against_the_vocabulary(rng):
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    a = L.Conv1D(3, 2, activation="relu", name="conv")(L.Embedding(10, 4)(tokens))
    model = keras.Model(tokens, L.Dense(2)(L.GlobalAveragePooling1D()(a)))
    explainer = tfg.GradCAM(model)
    with pytest.raises(ValueError, match=r"token id 12 \(sample 1\).*input_dim=10.*\[0, 9\]") as e:
        explainer(np.array([[1, 2, 3, 4, 5, 6], [1, 2, 12, 4, 5, 6]]))
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="fractional floats.*truncate"):
        explainer(np.array([[1.5, 2, 3, 4, 5, 6]]))
    assert explainer(np.array([[1.0, 2, 3, 4, 5, 6]])).heatmaps.shape == (1, 6)


class Block(keras.Model):
    """A subclassed model used as a layer: its conv is reached through a twin."""

    def __init__(self):
        super().__init__()
        self.conv = L.Conv2D(4, 3, padding="same", activation="relu", name="inner_conv")
        self.out = L.Conv2D(4, 1, name="inner_out")

    def call(self, x):
        return self.out(self.conv(x))


def test_a_layer_inside_a_subclassed_model_is_reached(rng):
    keras.utils.set_random_seed(24)
    block = Block()
    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, L.Dense(3, name="fc")(L.GlobalAveragePooling2D()(block(inp))))
    x = rng.random((2, 8, 8, 2), dtype=np.float32)
    res = tfg.GradCAM(model, f"{block.name}/inner_conv")(x, [0, 2])
    with tf.GradientTape() as tape:
        acts = block.conv(x)
        tape.watch(acts)
        logits = model.get_layer("fc")(tf.reduce_mean(block.out(acts), axis=(1, 2)))
        score = tf.gather(logits, [0, 2], axis=1, batch_dims=1)
    grads = tape.gradient(score, acts).numpy()
    cam = np.maximum(np.einsum("nhwk,nk->nhw", acts.numpy(), grads.mean(axis=(1, 2))), 0)
    np.testing.assert_allclose(res.raw, cam, rtol=1e-5, atol=1e-6)
    assert "call" not in vars(block.conv)  # the block's own layer is untouched
