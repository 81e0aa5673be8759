"""The package's shape as a newcomer meets it: a method is one class, the batch loop is one
function, a perturbation method asks the engine instead of reaching into it."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tf_gradcam.engine import explainer as explainer_lib

L = keras.layers


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 2))
    a = L.Conv2D(3, 3, activation="relu", name="conv")(inp)
    return keras.Model(inp, L.Dense(4, name="logits")(L.Flatten()(a)))


@pytest.fixture
def registered():
    """Define a method class in the test; unregister it afterwards."""
    created = []

    def make(**attrs):
        cls = type("MaxGradCAM", (tfg.Explainer,), attrs)
        created.append(cls)
        return cls

    yield make
    for cls in created:
        explainer_lib.REGISTRY.pop(cls.name, None)


def test_a_new_method_is_one_class_that_registers_itself(net, registered, rng):
    def channel_weights(self, ctx):
        return tf.reduce_max(ctx.gradients, axis=ctx.spatial_axes)

    cls = registered(name="maxgradcam", aliases=("max-grad",), channel_weights=channel_weights)
    assert tfg.METHODS["maxgradcam"] is cls
    assert tfg.get_method("Max_Grad") is cls
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    res = tfg.explain(net, x, 1, method="maxgradcam")
    # against the formula, with activations and gradients taken by a plain eager tape
    feats = keras.Model(net.inputs, [net.get_layer("conv").output, net.output])
    with tf.GradientTape() as tape:
        acts, out = feats([x])
        tape.watch(acts)
        score = out[:, 1]
    grads = tape.gradient(score, acts).numpy()
    expected = np.maximum(np.einsum("nhwk,nk->nhw", acts.numpy(), grads.max(axis=(1, 2))), 0)
    np.testing.assert_allclose(res.raw, expected, rtol=1e-5, atol=1e-6)
    assert res.method == "maxgradcam"


def test_a_method_without_weights_or_map_says_what_to_override(net, registered, rng):
    cls = registered(name="empty_method")
    with pytest.raises(NotImplementedError, match="channel_weights or combine"):
        cls(net, "conv")(rng.random((1, 8, 8, 2), dtype=np.float32))


def test_a_taken_name_is_refused():
    with pytest.raises(TypeError, match="'gradcam' is taken"):
        type("Impostor", (tfg.Explainer,), {"name": "gradcam"})


def test_every_method_is_exported_and_lists_its_options():
    for name, cls in tfg.METHODS.items():
        assert getattr(tfg, cls.__name__) is cls
        assert tfg.get_method(name) is cls
        options = cls.option_names()
        assert {"score", "jit_compile", "counterfactual"} <= set(options)
    assert "perturbation_batch_size" in tfg.ScoreCAM.option_names()
    assert "center" in tfg.EigenCAM.option_names() and "gamma" in tfg.LayerCAM.option_names()


def test_perturbation_batch_size_has_its_own_name(net, rng):
    x = rng.random((2, 8, 8, 2), dtype=np.float32)
    new = tfg.ScoreCAM(net, "conv", perturbation_batch_size=2)
    assert new.perturbation_batch_size == 2
    with pytest.warns(DeprecationWarning, match="perturbation_batch_size"):
        old = tfg.ScoreCAM(net, "conv", batch_size=2)
    assert old.perturbation_batch_size == 2
    np.testing.assert_allclose(old(x, 1).weights, new(x, 1).weights, rtol=1e-6)
    # tfg.explain's batch_size is samples per step only, as on the call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = tfg.explain(net, x, 1, method="scorecam", layer="conv", batch_size=1,
                          perturbation_batch_size=3)
    np.testing.assert_allclose(res.weights, new(x, 1).weights, rtol=1e-5)


def test_one_batch_loop_yields_what_explanation_takes(net, rng):
    explainer = tfg.GradCAM(net, "conv")
    x = rng.random((5, 8, 8, 2), dtype=np.float32)
    parts = list(explainer.run(x, [0, 1, 2, 3, 0], batch_size=2))
    assert [len(p["heatmaps"]) for p in parts] == [2, 2, 1]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    whole = explainer(x, [0, 1, 2, 3, 0])
    np.testing.assert_allclose(tfg.Explanation.from_arrays(merged).raw, whole.raw, rtol=1e-6)
    ds = tf.data.Dataset.from_tensor_slices((x, np.array([0, 1, 2, 3, 0]))).batch(3)
    streamed = list(explainer.run(ds, "label"))
    np.testing.assert_allclose(np.concatenate([p["raw"] for p in streamed]), whole.raw,
                               rtol=1e-5, atol=1e-7)


def test_bad_targets_are_refused_when_run_is_called_not_at_the_first_batch(net, rng):
    explainer = tfg.GradCAM(net, "conv")
    with pytest.raises(ValueError, match="out of range"):
        explainer.run(rng.random((2, 8, 8, 2), dtype=np.float32), 9)


def test_a_hand_built_context_has_no_engine_behind_it():
    ctx = tfg.Context(inputs=[], activations=tf.zeros((1, 2, 2, 1)), gradients=None,
                      targets=tf.zeros([1], tf.int32), scores=tf.zeros([1]), outputs=None)
    with pytest.raises(RuntimeError, match="built by hand"):
        ctx.rescore_inputs([], tf.zeros([1], tf.int32))


def test_eigen_smooth_keeps_the_first_component_of_the_weighted_activations(net):
    """A rank-one weighted activation matrix u v^T: its first principal component (centred
    over positions) is (u - mean u) |v|, with the sign of the plain map; ReLU after."""
    u = np.array([3.0, 1.0, 0.0, 2.0])  # four positions (2 x 2)
    v = np.array([0.5, -1.0, 2.0])  # three channels
    acts = np.outer(u, v).reshape(1, 2, 2, 3)
    grads = np.ones_like(acts) / 4  # Grad-CAM weights: the mean gradient, 1/4 per channel
    ctx = tfg.Context(inputs=[], activations=tf.constant(acts, tf.float32),
                      gradients=tf.constant(grads, tf.float32),
                      targets=tf.zeros([1], tf.int32), scores=tf.zeros([1]), outputs=None)
    smooth = tfg.GradCAM(net, "conv", eigen_smooth=True).compute(ctx).numpy()
    weighted = np.outer(u, v / 4)  # w_k A_k
    centred = weighted - weighted.mean(axis=0)
    _, _, vt = np.linalg.svd(centred)
    proj = centred @ vt[0]
    plain = weighted.sum(axis=1)
    if np.dot(proj - proj.mean(), plain - plain.mean()) < 0:
        proj = -proj
    np.testing.assert_allclose(smooth.reshape(-1), np.maximum(proj, 0), rtol=1e-5, atol=1e-6)
    # by hand: (u - 1.5) * |v| / 4, with the plain map's sign (sum v > 0)
    np.testing.assert_allclose(smooth.reshape(-1),
                               np.maximum((u - 1.5) * np.linalg.norm(v) / 4, 0), rtol=1e-5)
    with pytest.raises(ValueError, match="eigen_smooth is not defined"):
        tfg.EigenCAM(net, "conv", eigen_smooth=True)


# ---------------------------------------------------------------------- aug_smooth
def _homogeneous_net():
    """Bias-free ReLU convs, GAP, bias-free Dense: every map scales with the input's intensity."""
    keras.utils.set_random_seed(41)
    inp = keras.Input((8, 10, 2))
    a = L.Conv2D(4, 3, padding="same", activation="relu", use_bias=False, name="c1")(inp)
    a = L.Conv2D(5, 3, padding="same", activation="relu", use_bias=False, name="c2")(a)
    return keras.Model(inp, L.Dense(3, use_bias=False)(L.GlobalAveragePooling2D()(a)))


def test_aug_smooth_intensity_factors_on_a_homogeneous_net_change_nothing_but_raw(rng):
    model = _homogeneous_net()
    x = rng.random((3, 8, 10, 2), dtype=np.float32)
    plain = tfg.GradCAM(model, "c2")(x, [0, 1, 2])
    factors = (0.5, 1.0, 2.0)
    smoothed = tfg.GradCAM(model, "c2", aug_smooth=tfg.Augmentations(flips=(False,),
                                                                     factors=factors))
    res = smoothed(x, [0, 1, 2])
    # A(a x) = a A(x) and the gradients of a GAP -> Dense head are constant: raw scales by a
    np.testing.assert_allclose(res.heatmaps, plain.heatmaps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.raw, np.mean(factors) * plain.raw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.scores, plain.scores, rtol=1e-6)
    assert smoothed.trace_count == 1


def test_aug_smooth_is_flip_equivariant_and_maps_flipped_copies_back(rng):
    model = _homogeneous_net()
    x = rng.random((2, 8, 10, 2), dtype=np.float32)
    aug = tfg.Augmentations(flips=(False, True), factors=(1.0,))
    explainer = tfg.GradCAM(model, "c1", aug_smooth=aug)
    a = explainer(x, [1, 2])
    b = explainer(x[:, :, ::-1], [1, 2])
    np.testing.assert_allclose(b.heatmaps, a.heatmaps[:, :, ::-1], rtol=1e-5, atol=1e-6)
    # the smoothed map is the mean of the scaled plain map and the flipped-back scaled map
    plain = tfg.GradCAM(model, "c1")
    p, q = plain(x, [1, 2]).heatmaps, plain(x[:, :, ::-1], [1, 2]).heatmaps[:, :, ::-1]
    mean = (p + q) / 2
    expected = mean / mean.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(a.heatmaps, expected, rtol=1e-5, atol=1e-6)


def test_aug_smooth_chooses_the_class_on_the_unaugmented_image(net, rng):
    x = rng.random((4, 8, 8, 2), dtype=np.float32)
    top = tfg.GradCAM(net, "conv")(x)
    smoothed = tfg.GradCAM(net, "conv", aug_smooth=True)(x)
    np.testing.assert_array_equal(smoothed.targets, top.targets)
    np.testing.assert_allclose(smoothed.scores, top.scores, rtol=1e-6)
    assert smoothed.heatmaps.shape == top.heatmaps.shape
    two = tfg.GradCAM(net, "conv", aug_smooth=True)(x, top_k=2)
    assert two.heatmaps.shape == (4, 2, 8, 8)
    with pytest.raises(ValueError, match="identity"):
        tfg.Augmentations(factors=(0.9, 1.1))


def test_explain_batch_for_loops_of_your_own(net, rng):
    explainer = tfg.GradCAM(net, "conv")
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    out = explainer.explain_batch([tf.constant(x)], tf.constant([0, 1, 2]))
    np.testing.assert_allclose(out["raw"].numpy(), explainer(x, [0, 1, 2]).raw, rtol=1e-6)
    assert not any(k.startswith("_") for k in out)
    with pytest.warns(DeprecationWarning, match="classes="):
        old = explainer.explain_batch([tf.constant(x)], target_arg=tf.constant([0, 1, 2]))
    np.testing.assert_array_equal(old["raw"].numpy(), out["raw"].numpy())
