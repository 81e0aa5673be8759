"""Every ``keras.applications`` model (``weights=None``, small inputs, logits heads): the
automatic target is the tensor that feeds the head's read-out, its map is not constant, and
Grad-CAM there equals an eager reference computed by Keras sub-models and a GradientTape.

The full set (40 models, minutes on two cores) is marked ``zoo`` and run by ``.ci/run`` on its
own; the models with known traps (MobileNet's 1x1 conv after pooling, ConvNeXt's final ``add``
op node) also run in the main suite.
"""

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg

A = keras.applications
# Input sizes that leave at least a 2 x 2 map at the last stage (a 1 x 1 map is constant).
SIZES = {"InceptionV3": 139, "InceptionResNetV2": 139, "Xception": 71}
ALL = sorted(n for n in dir(A) if n[:1].isupper() and callable(getattr(A, n)))
READOUTS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten")


def _build(name):
    size = SIZES.get(name, 64)
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=7)
    if name.startswith(("EfficientNet", "ConvNeXt", "MobileNetV3", "ResNet", "VGG", "Dense",
                        "Inception", "Xception", "NASNet", "MobileNet")):
        kwargs["classifier_activation"] = None  # logits, so the reference needs no softmax
    return getattr(A, name)(**kwargs), size


def _reference(features, head, x, classes):
    """Activations and gradients by a GradientTape on Keras sub-models: up to the target, and
    from it to the logits. Run as a tf.function, as the explainer runs: with random weights some
    deep models (EfficientNetV2L) reach activations of 1e7, where eager and graph kernels differ
    by far more than rounding."""

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            acts = features([x], training=False)
            tape.watch(acts)
            score = tf.gather(head(acts, training=False), classes, axis=1, batch_dims=1)
        return acts, tape.gradient(score, acts)

    acts, grads = run(tf.constant(x))
    return acts.numpy().astype(np.float64), grads.numpy().astype(np.float64)


def _check(name):
    keras.utils.set_random_seed(0)
    model, size = _build(name)
    explainer = tfg.GradCAM(model)
    ref = explainer.layer_ref
    target = ref.layer.output
    # the target feeds the read-out: a pooling or flatten op reads it
    readers = [op for op in model.operations
               if any(t is target for t in keras.tree.flatten(op.input))]
    assert any(type(op).__name__ in READOUTS for op in readers), (name, ref.path, readers)
    x = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32) * 255
    result = explainer(x)
    acts, grads = _reference(keras.Model(model.inputs, target), keras.Model(target, model.output),
                             x, result.targets)
    terms = np.einsum("nhwk,nk->nhwk", acts, grads.mean(axis=(1, 2)))
    cam = np.maximum(terms.sum(axis=-1), 0)
    assert cam.max() > 0, name
    # float32 sums of large terms of both signs: the tolerance is relative to the terms
    np.testing.assert_allclose(result.raw, cam, rtol=1e-3, atol=1e-4 * np.abs(terms).sum(-1).max())
    spread = result.heatmaps.reshape(2, -1)
    assert (spread.max(axis=1) - spread.min(axis=1)).max() > 1e-3, f"{name}: constant map"
    del model, explainer
    gc.collect()


@pytest.mark.parametrize("name", ["MobileNet", "MobileNetV3Small", "EfficientNetB0"])
def test_constant_map_traps_and_rescaling_heads_in_the_main_suite(name):
    """MobileNet and MobileNetV3 put a 1x1 conv after their pooling (a constant map if chosen);
    EfficientNet pools after its top activation, past squeeze-and-excitation products."""
    _check(name)


@pytest.fixture(scope="module")
def convnext():
    keras.utils.set_random_seed(0)
    return _build("ConvNeXtTiny")[0]


def test_convnext_final_add_as_an_op_node_and_as_the_input_of_the_pooling(convnext):
    pool = next(op for op in convnext.operations if type(op).__name__ == "GlobalAveragePooling2D")
    final_add = pool.input._keras_history.operation
    assert type(final_add).__name__ == "Add" and not isinstance(final_add, keras.layers.Layer)
    assert tfg.GradCAM(convnext).layer_names == final_add.name  # the automatic choice
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32) * 255
    by_name = tfg.GradCAM(convnext, final_add.name)(x, [1, 5])
    by_input = tfg.GradCAM(convnext, tfg.input_of(pool.name))(x, [1, 5])
    np.testing.assert_array_equal(by_input.raw, by_name.raw)
    acts, grads = _reference(keras.Model(convnext.inputs, pool.input),
                             keras.Model(pool.input, convnext.output), x, tf.constant([1, 5]))
    cam = np.maximum(np.einsum("nhwk,nk->nhw", acts, grads.mean(axis=(1, 2))), 0)
    assert cam.max() > 0
    np.testing.assert_allclose(by_name.raw, cam, rtol=1e-3, atol=1e-4 * cam.max())


@pytest.mark.zoo
@pytest.mark.parametrize("name", ALL)
def test_every_keras_application(name):
    _check(name)
