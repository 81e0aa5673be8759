"""The CAM family against mathematics.

1. Each method's hooks on a hand-built :class:`tfg.Context` of tiny tensors, against numbers
   worked out by hand (and written down here) or by NumPy.
2. The identities between methods (HiResCAM = Grad-CAM, Grad-CAM++ -> Grad-CAM, XGrad-CAM and
   CAM on a GAP -> Dense net, Eigen-CAM = NumPy's SVD).
3. End to end on small real models: each method's map against its formula in NumPy applied to
   activations and gradients taken by a plain eager tape that shares no code with tf_gradcam.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tests import reference as ref

L = keras.layers
GRADIENT_METHODS = ["gradcam++", "layercam", "hirescam", "xgradcam"]
OURS = ["cam", "eigencam", *GRADIENT_METHODS]


# ------------------------------------------------------------------------ NumPy formulas
def numpy_map(method, acts, grads, kernel_cols=None, center=True):
    """``[N, *S]`` map of ``method`` from ``acts``/``grads`` ``[N, *S, K]``, in float64 NumPy."""
    a = np.asarray(acts, np.float64)
    g = None if grads is None else np.asarray(grads, np.float64)
    n, k = a.shape[0], a.shape[-1]
    flat_a = a.reshape(n, -1, k)
    if method in ("hirescam", "layercam"):
        w = g if method == "hirescam" else np.maximum(g, 0)
        return np.maximum((w * a).sum(-1), 0)
    if method == "eigencam":
        out = []
        for m in flat_a:
            mat = m - m.mean(axis=0) if center else m
            _, _, vt = np.linalg.svd(mat, full_matrices=False)
            proj = mat @ vt[0]
            if np.corrcoef(proj, m.mean(axis=1))[0, 1] < 0:
                proj = -proj
            out.append(np.maximum(proj, 0))
        return np.stack(out).reshape(a.shape[:-1])
    flat_g = None if g is None else g.reshape(n, -1, k)
    if method == "cam":
        w = np.asarray(kernel_cols, np.float64)
    elif method == "gradcam":
        w = flat_g.mean(axis=1)
    elif method == "xgradcam":
        w = np.zeros((n, k))
        total = flat_a.sum(axis=1)
        ok = total != 0
        w[ok] = (flat_a * flat_g).sum(axis=1)[ok] / total[ok]
    elif method == "gradcam++":
        total = flat_a.sum(axis=1, keepdims=True)
        den = 2 * flat_g ** 2 + total * flat_g ** 3
        alpha = np.divide(flat_g ** 2, den, out=np.zeros_like(den), where=den != 0)
        w = (alpha * np.maximum(flat_g, 0)).sum(axis=1)
    else:
        raise KeyError(method)
    return np.maximum(np.einsum("n...k,nk->n...", a, w), 0)


def context(acts, grads=None, targets=None):
    acts = tf.constant(acts, tf.float32)
    n = acts.shape[0]
    targets = tf.constant(np.zeros(n) if targets is None else targets, tf.int32)
    return tfg.Context(
        inputs=[], activations=acts,
        gradients=None if grads is None else tf.constant(grads, tf.float32),
        targets=targets, scores=tf.zeros([n]), outputs=None, score_fn=None, target_arg=targets,
    )


def hooks(explainer, ctx):
    """``(weights or None, map)`` from the method's own two hooks."""
    weights = explainer.channel_weights(ctx)
    cam = explainer.combine(ctx, weights)
    return (None if weights is None else weights.numpy()), cam.numpy()


@pytest.fixture(scope="module")
def gap_net():
    """conv (2 channels) -> GAP -> Dense(3): a host for the hooks and for the CAM identities."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(2, 3, activation="relu", name="conv")(inp)
    out = L.Dense(3, activation="softmax", name="fc")(L.GlobalAveragePooling2D()(a))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def explainers(gap_net):
    return {name: tfg.METHODS[name](gap_net, "conv") for name in OURS + ["gradcam"]}


# One sample, 2 x 2 positions, 2 channels: A[..., k] and g[..., k] written as 2 x 2 grids.
A_HAND = np.stack([[[1.0, 0.0], [2.0, 1.0]], [[-1.0, 0.0], [0.0, 0.0]]], axis=-1)[None]
G_HAND = np.stack([[[1.0, 0.0], [-1.0, 0.5]], [[2.0, 0.0], [0.0, 1.0]]], axis=-1)[None]


def test_gradcampp_by_hand(explainers):
    # Channel 0: sum A = 4. alpha = g^2 / (2 g^2 + 4 g^3): 1/6 at g=1, 0 at g=0 (0/0), -1/2 at
    # g=-1 (but relu(g) = 0 there), 1/4 at g=1/2.  w0 = 1/6 * 1 + 1/4 * 1/2 = 7/24.
    # Channel 1: sum A = -1. At g=2 the denominator 2*4 - 8 is 0: alpha = 0, not NaN; at g=1
    # alpha = 1 / (2 - 1) = 1.  w1 = 1 * 1 = 1.
    w, cam = hooks(explainers["gradcam++"], context(A_HAND, G_HAND))
    np.testing.assert_allclose(w, [[7 / 24, 1.0]], rtol=1e-6)
    # relu(7/24 * A0 + A1) = relu([[7/24 - 1, 0], [14/24, 7/24]])
    np.testing.assert_allclose(cam, [[[0, 0], [7 / 12, 7 / 24]]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cam, numpy_map("gradcam++", A_HAND, G_HAND), rtol=1e-6, atol=1e-7)


def test_xgradcam_by_hand(explainers):
    # w0 = (1*1 + 0 + 2*(-1) + 1*0.5) / 4 = -1/8; w1 = (-1*2) / (-1) = 2.
    w, cam = hooks(explainers["xgradcam"], context(A_HAND, G_HAND))
    np.testing.assert_allclose(w, [[-1 / 8, 2.0]], rtol=1e-6)
    # relu(-1/8 * A0 + 2 * A1) = relu([[-1/8 - 2, 0], [-1/4, -1/8]]) = 0
    np.testing.assert_array_equal(cam, np.zeros((1, 2, 2)))
    # a channel whose activations sum to 0 gets weight 0 (not NaN)
    a0 = np.stack([A_HAND[0, ..., 0], np.array([[1.0, -1.0], [0.0, 0.0]])], axis=-1)[None]
    w, _ = hooks(explainers["xgradcam"], context(a0, G_HAND))
    np.testing.assert_allclose(w, [[-1 / 8, 0.0]], rtol=1e-6)


def test_hirescam_and_layercam_by_hand(explainers):
    # sum_k g*A: [[1 - 2, 0], [-2 + 0, 0.5 + 0]] -> relu -> [[0, 0], [0, 0.5]]
    w, cam = hooks(explainers["hirescam"], context(A_HAND, G_HAND))
    assert w is None
    np.testing.assert_allclose(cam, [[[0, 0], [0, 0.5]]], atol=1e-7)
    # sum_k relu(g)*A: [[1 - 2, 0], [0 + 0, 0.5 + 0]] -> relu -> [[0, 0], [0, 0.5]]
    # with A0(0,0) = 3 the first position turns positive: 3 - 2 = 1
    a = A_HAND.copy()
    a[0, 0, 0, 0] = 3.0
    w, cam = hooks(explainers["layercam"], context(a, G_HAND))
    assert w is None
    np.testing.assert_allclose(cam, [[[1, 0], [0, 0.5]]], atol=1e-7)
    # A negative gradient on a negative activation: HiResCAM counts (-1) * (-2) = 2 at (1, 0),
    # Layer-CAM drops the negative gradient.
    a[0, 1, 0, 0] = -2.0
    _, hires = hooks(explainers["hirescam"], context(a, G_HAND))
    _, layer = hooks(explainers["layercam"], context(a, G_HAND))
    assert hires[0, 1, 0] == pytest.approx(2.0) and layer[0, 1, 0] == 0
    for name, got in (("hirescam", hires), ("layercam", layer)):
        np.testing.assert_allclose(got, numpy_map(name, a, G_HAND), atol=1e-7)


def test_eigencam_by_hand(explainers):
    # 4 positions (2 x 2) and 2 channels, rank 1 once centred. c0 = [0, 1, 2, 3] in both samples.
    # Sample 0: c1 = 2 c0. Centred: c0 - 1.5, 2 (c0 - 1.5); v1 = +-(1, 2)/sqrt5; projection
    #   +-sqrt5 (c0 - 1.5); the channel mean 1.5 c0 rises with c0: sign +;
    #   relu -> sqrt5 [0, 0, 0.5, 1.5].
    # Sample 1: c1 = 6 - 2 c0. v1 = +-(1, -2)/sqrt5; projection +-sqrt5 (c0 - 1.5); the channel
    #   mean (6 - c0)/2 falls: sign -; relu -> sqrt5 [1.5, 0.5, 0, 0].
    c0 = np.array([0.0, 1.0, 2.0, 3.0])
    acts = np.stack([np.stack([c0, 2 * c0], -1), np.stack([c0, 6 - 2 * c0], -1)]).reshape(
        2, 2, 2, 2)
    _, cam = hooks(explainers["eigencam"], context(acts))
    np.testing.assert_allclose(cam.reshape(2, 4), np.sqrt(5) * np.array(
        [[0, 0, 0.5, 1.5], [1.5, 0.5, 0, 0]]), rtol=1e-5, atol=1e-6)
    # Uncentred (the paper's form), sample 0: projection (c0 + 2 c1)/sqrt5 = sqrt5 c0.
    uncentred = tfg.EigenCAM(explainers["eigencam"].model, "conv", center=False)
    _, cam = hooks(uncentred, context(acts[:1]))
    np.testing.assert_allclose(cam.ravel(), np.sqrt(5) * c0, rtol=1e-5, atol=1e-6)


def test_eigencam_treats_samples_separately(explainers, rng):
    acts = rng.normal(size=(6, 4, 5, 3)) * np.array([1.0, 3.0, 0.5]) + np.array([2.0, 0.5, 1.0])
    _, batched = hooks(explainers["eigencam"], context(acts))
    for i in range(6):
        _, one = hooks(explainers["eigencam"], context(acts[i:i + 1]))
        np.testing.assert_allclose(batched[i], one[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched, numpy_map("eigencam", acts, None), rtol=1e-4, atol=1e-5)


def test_cam_weights_are_kernel_columns_of_targets(explainers, gap_net, rng):
    kernel = gap_net.get_layer("fc").kernel.numpy()  # [2, 3]
    acts = rng.random((3, 2, 2, 2))
    w, cam = hooks(explainers["cam"], context(acts, targets=[2, 0, 2]))
    np.testing.assert_allclose(w, kernel[:, [2, 0, 2]].T, rtol=1e-6)
    expected = np.maximum(np.einsum("nhwk,kn->nhw", acts, kernel[:, [2, 0, 2]]), 0)
    np.testing.assert_allclose(cam, expected, rtol=1e-5, atol=1e-7)


def test_hooks_random_against_numpy(explainers, rng):
    acts = rng.normal(size=(2, 3, 4, 2))
    grads = rng.normal(size=(2, 3, 4, 2))
    for name in GRADIENT_METHODS:
        _, cam = hooks(explainers[name], context(acts, grads))
        assert ref.rel_err(cam, numpy_map(name, acts, grads)) < 1e-5, name


# ------------------------------------------------------------------------ identities
def test_hirescam_is_gradcam_for_spatially_constant_gradients(explainers, rng):
    acts = rng.normal(size=(2, 3, 3, 2))
    grads = np.broadcast_to(rng.normal(size=(2, 1, 1, 2)), acts.shape)
    _, hires = hooks(explainers["hirescam"], context(acts, grads))
    _, grad = hooks(explainers["gradcam"], context(acts, grads))
    np.testing.assert_allclose(hires, grad, rtol=1e-5, atol=1e-7)
    assert grad.max() > 0


def test_gradcampp_for_spatially_constant_gradients_and_one_hot_activations(explainers):
    """Constant g_k and A^k = a_k at one position: alpha_k = 1 / (2 + g_k a_k) everywhere and
    w_k = Z relu(g_k) / (2 + g_k a_k). That is Grad-CAM's g_k (alpha = 1/Z) exactly when
    g_k a_k = Z - 2 and g_k > 0; otherwise the ratio to Grad-CAM differs per channel."""
    z = 4  # 2 x 2 positions
    g = np.array([0.5, 2.0, 0.25])
    acts = np.zeros((1, 2, 2, 3))
    acts[0, 0, 0, 0], acts[0, 1, 1, 1], acts[0, 0, 1, 2] = (z - 2) / g
    grads = np.broadcast_to(g, acts.shape)
    w_pp, cam_pp = hooks(explainers["gradcam++"], context(acts, grads))
    w_g, cam_g = hooks(explainers["gradcam"], context(acts, grads))
    np.testing.assert_allclose(w_pp, w_g, rtol=1e-6)
    np.testing.assert_allclose(cam_pp, cam_g, rtol=1e-6)
    np.testing.assert_allclose(w_g, g[None], rtol=1e-6)

    # Any other one-hot values: the closed form above, not proportional to Grad-CAM.
    a = np.array([1.0, 3.0, 0.5])
    acts[0, 0, 0, 0], acts[0, 1, 1, 1], acts[0, 0, 1, 2] = a
    grads = np.broadcast_to(np.array([0.5, -2.0, 0.25]), acts.shape)
    w_pp, _ = hooks(explainers["gradcam++"], context(acts, grads))
    gk = grads[0, 0, 0]
    np.testing.assert_allclose(w_pp[0], z * np.maximum(gk, 0) / (2 + gk * a), rtol=1e-6)


@pytest.fixture(scope="module")
def gap_data(gap_net):
    x = np.random.default_rng(5).random((4, 6, 6, 1), dtype=np.float32)
    acts = keras.Model(gap_net.inputs, gap_net.get_layer("conv").output).predict(x, verbose=0)
    return x, acts, gap_net.get_layer("fc").kernel.numpy()


def test_cam_equals_gradcam_times_z_and_kernel_sum(gap_net, gap_data):
    x, acts, kernel = gap_data
    classes = np.array([0, 1, 2, 1])
    cam = tfg.CAM(gap_net)(x, classes)
    grad = tfg.GradCAM(gap_net, "conv")(x, classes)
    expected = np.maximum(np.einsum("nhwk,kn->nhw", acts, kernel[:, classes]), 0)
    assert expected.max() > 0
    np.testing.assert_allclose(cam.raw, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cam.weights, kernel[:, classes].T, rtol=1e-6)
    np.testing.assert_allclose(grad.raw * 16, cam.raw, rtol=1e-4, atol=1e-6)  # Z = 4 x 4
    assert cam.layer == "conv"  # the default: the layer feeding the pooling


def test_xgradcam_and_gradcampp_on_gap_dense(gap_net, gap_data):
    """g = w^c / Z everywhere: XGrad-CAM's weights are w^c / Z (Grad-CAM's) for every channel
    that is active somewhere; Grad-CAM++'s are relu(w) / (2 + w * mean(A))."""
    x, acts, kernel = gap_data
    classes = np.array([2, 1, 0, 0])
    w = kernel[:, classes].T  # [N, K]
    active = acts.sum(axis=(1, 2)) > 0
    assert active.any()
    xg = tfg.XGradCAM(gap_net, "conv")(x, classes)
    np.testing.assert_allclose(xg.weights[active], (w / 16)[active], rtol=1e-4)
    np.testing.assert_allclose(xg.raw, tfg.GradCAM(gap_net, "conv")(x, classes).raw,
                               rtol=1e-4, atol=1e-7)
    pp = tfg.GradCAMPlusPlus(gap_net, "conv")(x, classes)
    expected = np.maximum(w, 0) / (2 + w * acts.mean(axis=(1, 2)))
    np.testing.assert_allclose(pp.weights, expected, rtol=1e-4, atol=1e-7)
    hires = tfg.HiResCAM(gap_net, "conv")(x, classes)
    np.testing.assert_allclose(hires.raw * 16, np.maximum(np.einsum(
        "nhwk,nk->nhw", acts, w), 0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("center, layer", [(True, "c2"), (False, "c1")])
def test_eigencam_equals_numpy_svd_on_a_real_model(center, layer):
    inp = keras.Input((12, 12, 2))
    a = L.Conv2D(6, 3, activation="relu", name="c1")(inp)
    b = L.Conv2D(5, 3, name="c2")(a)  # no ReLU: activations of both signs
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(b)))
    x = np.random.default_rng(2).random((3, 12, 12, 2), dtype=np.float32)
    acts = keras.Model(inp, {"c1": a, "c2": b}[layer]).predict(x, verbose=0)
    res = tfg.EigenCAM(model, layer, center=center)(x)
    expected = numpy_map("eigencam", acts, None, center=center)
    assert expected.max() > 0
    assert ref.rel_err(res.raw, expected) < 1e-4
    assert res.weights is None


# ------------------------------------------------------------------------ end to end
def _acts_and_grads(features_model, logits_fn, x, classes, sign=1.0):
    """Activations and d(sign * logit)/d activations, by a plain eager tape."""
    with tf.GradientTape() as tape:
        acts, feats = features_model(x, training=False)
        tape.watch(acts)
        scores = tf.gather(logits_fn(feats), classes, axis=1, batch_dims=1)
        objective = sign * scores
    return acts.numpy(), tape.gradient(objective, acts).numpy(), scores.numpy()


def _gap_dense_logits(dense, rank):
    axes = list(range(1, rank - 1))
    return lambda f: tf.matmul(tf.reduce_mean(f, axis=axes), dense.kernel) + dense.bias


def _cnn(inp, conv, names=("early", "late"), widths=(4, 5)):
    x = inp
    for name, width in zip(names, widths):
        x = conv(width, 3, padding="same", activation="relu", name=name)(x)
    return x


def _functional_2d():
    inp = keras.Input((10, 10, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="early")(inp)
    late = L.Conv2D(5, 3, padding="same", activation="relu", name="late")(L.MaxPooling2D()(a))
    dense = L.Dense(3, name="fc")
    model = keras.Model(inp, dense(L.GlobalAveragePooling2D()(late)), name="functional")
    return model, inp, {"early": a, "late": late}, dense, 4


def _sequential_softmax():
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        L.Conv2D(4, 3, activation="relu", name="early"),
        L.Conv2D(5, 3, activation="relu", name="late"),
        L.GlobalAveragePooling2D(),
        L.Dense(3, activation="softmax", name="fc"),
    ], name="sequential")
    early, late = model.get_layer("early"), model.get_layer("late")
    return model, model.inputs[0], {"early": early.output, "late": late.output}, \
        model.get_layer("fc"), 4


def _nested():
    b_in = keras.Input((9, 9, 3))
    backbone = keras.Model(b_in, _cnn(b_in, L.Conv2D), name="backbone")
    dense = L.Dense(3, activation="softmax", name="fc")
    model = keras.Sequential([keras.Input((9, 9, 3)), backbone, L.GlobalAveragePooling2D(),
                              L.Dropout(0.3), dense], name="nested")
    outs = {"backbone/early": backbone.get_layer("early").output,
            "backbone/late": backbone.output}
    return model, b_in, outs, dense, 4


def _rank_net(rank):
    shape = {3: (16, 2), 5: (5, 6, 6, 1)}[rank]
    conv = {3: L.Conv1D, 5: L.Conv3D}[rank]
    gap = {3: L.GlobalAveragePooling1D, 5: L.GlobalAveragePooling3D}[rank]
    inp = keras.Input(shape)
    early = conv(4, 3, padding="same", activation="relu", name="early")(inp)
    late = conv(5, 3, padding="same", activation="relu", name="late")(early)
    dense = L.Dense(3, name="fc")
    model = keras.Model(inp, dense(gap()(late)), name=f"net{rank - 2}d")
    return model, inp, {"early": early, "late": late}, dense, rank


BUILDERS = {
    "functional": _functional_2d,
    "sequential_softmax": _sequential_softmax,
    "nested": _nested,
    "1d": lambda: _rank_net(3),
    "3d": lambda: _rank_net(5),
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def net(request):
    keras.utils.set_random_seed(7)
    model, inp, outs, dense, rank = BUILDERS[request.param]()
    late_name = [k for k in outs if k.endswith("late")][0]
    early_name = [k for k in outs if k.endswith("early")][0]
    feats = {name: keras.Model(inp, [outs[name], outs[late_name]]) for name in outs}
    x = np.random.default_rng(3).random((3,) + tuple(model.inputs[0].shape[1:]), dtype=np.float32)
    return dict(model=model, feats=feats, logits=_gap_dense_logits(dense, rank), dense=dense,
                x=x, early=early_name, late=late_name, name=request.param)


@pytest.mark.parametrize("method", OURS)
def test_end_to_end_against_formula(net, method):
    """Gradient methods on the early layer (its gradients vary over space), CAM on the layer
    feeding the pooling, Eigen-CAM on both; batched, then one sample per step."""
    classes = np.array([0, 2, 1])
    layer_names = {"cam": [net["late"]], "eigencam": [net["early"], net["late"]]}.get(
        method, [net["early"]])
    for name in layer_names:
        acts, grads, scores = _acts_and_grads(net["feats"][name], net["logits"], net["x"],
                                              classes)
        kernel_cols = net["dense"].kernel.numpy()[:, classes].T
        expected = numpy_map(method, acts, grads, kernel_cols)
        assert expected.max() > 0, "the reference map is all zero: the test would prove nothing"
        layer = None if method == "cam" else name  # CAM finds its layer itself
        explainer = tfg.METHODS[method](net["model"], layer)
        res = explainer(net["x"], classes)
        assert ref.rel_err(res.raw, expected) < 1e-4, (method, name)
        np.testing.assert_allclose(res.scores, scores, rtol=1e-5, atol=1e-6)
        assert res.heatmaps.shape == net["x"].shape[:-1]
        assert res.heatmaps.max() == pytest.approx(1.0) and res.heatmaps.min() >= 0
        one_by_one = explainer(net["x"], classes, batch_size=1)
        np.testing.assert_allclose(one_by_one.raw, res.raw, rtol=1e-4, atol=1e-6)
        assert explainer.trace_count == 1


@pytest.fixture(scope="module")
def functional():
    keras.utils.set_random_seed(7)
    model, inp, outs, dense, _ = _functional_2d()
    x = np.random.default_rng(4).random((3, 10, 10, 3), dtype=np.float32)
    return model, keras.Model(inp, [outs["early"], outs["late"]]), _gap_dense_logits(dense, 4), x


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_counterfactual(functional, method):
    """counterfactual=True explains -score: the formula applied to the negated gradients."""
    model, feats, logits, x = functional
    classes = np.array([1, 1, 0])
    acts, grads, _ = _acts_and_grads(feats, logits, x, classes, sign=-1.0)
    expected = numpy_map(method, acts, grads)
    assert expected.max() > 0
    res = tfg.METHODS[method](model, "early", counterfactual=True)(x, classes)
    assert ref.rel_err(res.raw, expected) < 1e-4
    plain = tfg.METHODS[method](model, "early")(x, classes)
    assert not np.allclose(plain.raw, res.raw)
    if method == "hirescam":  # relu(s) and relu(-s): disjoint supports
        assert np.all(plain.raw * res.raw == 0)


# ------------------------------------------------------------------------ Layer-CAM fusion
def test_layercam_fuses_layers_at_input_resolution(rng):
    inp = keras.Input((8, 8, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inp)
    b = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(a)
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="c3")(L.MaxPooling2D()(b))
    dense = L.Dense(3, name="fc")
    model = keras.Model(inp, dense(L.GlobalAveragePooling2D()(c)))
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    classes = np.array([0, 1, 2])
    logits = _gap_dense_logits(dense, 4)

    # c1 and c2 are at the input's resolution: no resampling, the fusion by NumPy alone.
    fused = tfg.LayerCAM(model, ["c1", "c2"])(x, classes)
    maps = []
    for out in (a, b):
        acts, grads, _ = _acts_and_grads(keras.Model(inp, [out, c]), logits, x, classes)
        m = numpy_map("layercam", acts, grads)
        maps.append(np.tanh(2.0 * m / m.max(axis=(1, 2), keepdims=True)))
    expected = np.max(maps, axis=0)
    np.testing.assert_allclose(fused.raw, expected, rtol=1e-4, atol=1e-6)
    assert fused.layer == "c1, c2" and fused.raw.shape == (3, 8, 8)
    np.testing.assert_allclose(fused.heatmaps, expected / expected.max(axis=(1, 2), keepdims=True),
                               rtol=1e-4, atol=1e-6)

    # With a coarser layer: each map is upsampled first, exactly as the one-layer heatmaps are.
    fused = tfg.LayerCAM(model, ["c3", "c1"], gamma=1.5)(x, classes)
    singles = [tfg.LayerCAM(model, name)(x, classes).heatmaps for name in ("c3", "c1")]
    np.testing.assert_allclose(fused.raw, np.max(np.tanh(1.5 * np.stack(singles)), axis=0),
                               rtol=1e-4, atol=1e-6)
    assert fused.weights is None


def test_fusion_is_only_for_methods_that_fuse(explainers, gap_net):
    with pytest.raises(ValueError, match="GradCAM explains one layer.*LayerCAM"):
        tfg.GradCAM(gap_net, ["conv", "conv"])
    with pytest.raises(ValueError, match="twice"):
        tfg.LayerCAM(gap_net, ["conv", "conv"])
    with pytest.raises(ValueError, match="gamma"):
        tfg.LayerCAM(gap_net, "conv", gamma=0)


# ------------------------------------------------------------------------ CAM's head
def test_cam_finds_the_head_in_nested_models(rng):
    # a keras.applications classifier with its own top, nested in a Sequential
    resnet = keras.applications.ResNet50(weights=None, include_top=True, input_shape=(64, 64, 3),
                                         classes=4)
    model = keras.Sequential([keras.Input((64, 64, 3)), resnet])
    explainer = tfg.CAM(model)
    assert explainer.layer_ref.path == f"{resnet.name}/conv5_block3_out"
    assert explainer.head.dense is resnet.get_layer("predictions")
    x = rng.random((2, 64, 64, 3), dtype=np.float32)
    res = explainer(x, [1, 3])
    acts = keras.Model(resnet.input, resnet.get_layer("conv5_block3_out").output)(x).numpy()
    kernel = resnet.get_layer("predictions").kernel.numpy()
    expected = np.maximum(np.einsum("nhwk,kn->nhw", acts, kernel[:, [1, 3]]), 0)
    assert expected.max() > 0
    assert ref.rel_err(res.raw, expected) < 1e-4


def test_cam_on_backbone_then_pooling_in_the_outer_model(rng):
    b_in = keras.Input((10, 10, 3))
    backbone = keras.Model(b_in, _cnn(b_in, L.Conv2D), name="backbone")
    dense = L.Dense(3, activation="softmax", name="fc")
    model = keras.Sequential([keras.Input((10, 10, 3)), backbone, L.GlobalAveragePooling2D(),
                              dense])
    x = rng.random((2, 10, 10, 3), dtype=np.float32)
    res = tfg.CAM(model)(x, [0, 2])
    assert res.layer == "backbone/late"
    # the nested model itself names the same feature map
    np.testing.assert_allclose(tfg.CAM(model, "backbone")(x, [0, 2]).raw, res.raw, rtol=1e-6)
    acts = backbone.predict(x, verbose=0)
    expected = np.maximum(np.einsum("nhwk,kn->nhw", acts, dense.kernel.numpy()[:, [0, 2]]), 0)
    assert ref.rel_err(res.raw, expected) < 1e-5


def test_cam_errors(gap_net, rng):
    flat = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3, name="conv"), L.Flatten(),
                             L.Dense(3)])
    with pytest.raises(ValueError, match="conv -> GlobalAveragePooling -> Dense.*tfg.GradCAM"):
        tfg.CAM(flat)
    hidden = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3), L.GlobalAveragePooling2D(),
                               L.Dense(8), L.Dense(3)])
    with pytest.raises(ValueError, match="GlobalAveragePooling -> Dense"):
        tfg.CAM(hidden)
    inp = keras.Input((6, 6, 1))
    early = L.Conv2D(2, 3, padding="same", name="early")(inp)
    late = L.Conv2D(2, 3, name="late")(early)
    two = keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(late)))
    with pytest.raises(ValueError, match="'early' is not pooled.*'late'"):
        tfg.CAM(two, "early")
    x = rng.random((2, 6, 6, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="needs class targets.*not a callable"):
        tfg.CAM(gap_net)(x, lambda out: out[:, 0])
    with pytest.raises(ValueError, match="counterfactual"):
        tfg.CAM(gap_net, counterfactual=True)
    with pytest.raises(ValueError, match="counterfactual"):
        tfg.EigenCAM(gap_net, counterfactual=True)


def test_names_and_exports():
    for spelling in ("gradcam++", "gradcampp", "Grad-CAM++", "GradCAMPlusPlus"):
        assert tfg.get_method(spelling) is tfg.GradCAMPlusPlus
    for cls in (tfg.CAM, tfg.GradCAMPlusPlus, tfg.LayerCAM, tfg.HiResCAM, tfg.XGradCAM,
                tfg.EigenCAM):
        assert tfg.METHODS[cls.name] is cls
    assert not tfg.CAM.uses_gradients and not tfg.EigenCAM.uses_gradients


def test_eigencam_on_a_single_position_is_not_empty(rng):
    """Centring a 1x1 map leaves zero; Eigen-CAM then projects the uncentred activations."""
    inp = keras.Input((3, 3, 1))
    a = keras.layers.Conv2D(4, 3, activation="relu", bias_initializer="ones", name="one")(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(a)))
    res = tfg.EigenCAM(model, "one")(rng.random((2, 3, 3, 1), dtype=np.float32))
    assert res.raw.shape == (2, 1, 1) and np.all(res.raw > 0)
    assert np.all(res.heatmaps == 1)
