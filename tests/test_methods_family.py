"""The rest of the CAM family against mathematics.

Each method's map is checked against its paper's formula written in NumPy, applied to
activations and gradients read by a plain eager ``GradientTape`` on the layers themselves
(``head(a)`` calls the model's own layer objects on a tensor, sharing no code with tf_gradcam),
batched; tiny cases are worked by hand where the formula allows, and the identities between
methods are checked on real models.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradcam as tfg
from tests import reference as ref
from tf_gradcam.engine.explainer import Explainer

L = keras.layers


# ------------------------------------------------------------------------ networks and tapes
@pytest.fixture(scope="module")
def smooth_net():
    """conv "early" (ReLU) -> conv "late" (tanh, so the score is curved in "early") -> GAP ->
    Dense(4) -> softmax; ``head(a)`` is the logits as a function of "early"'s activations."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((8, 8, 2))
    early = L.Conv2D(5, 3, padding="same", activation="relu", name="early")
    late = L.Conv2D(6, 3, padding="same", activation="tanh", name="late")
    pool = L.GlobalAveragePooling2D()
    dense = L.Dense(4, name="fc")
    a = early(inp)
    model = keras.Model(inp, L.Softmax()(dense(pool(late(a)))))
    x = np.random.default_rng(12).random((3, 8, 8, 2), dtype=np.float32)
    return dict(model=model, x=x, features=lambda t: early(t), head=lambda t: dense(pool(late(t))))


def logit(logits, classes):
    return tf.gather(logits, classes, axis=1, batch_dims=1)


def tape_read(net, classes, utility=logit, sign=1.0, x=None):
    """``(A, G, H.A, scores)`` in float64 NumPy for the explained "early" layer: G by one eager
    tape, H.A = d/dt G(A + t A) at t = 0 by forward-mode differentiation over that tape."""
    acts = net["features"](tf.constant(net["x"] if x is None else x))
    classes = tf.constant(classes)
    with tf.autodiff.ForwardAccumulator(acts, acts) as acc:
        with tf.GradientTape() as tape:
            tape.watch(acts)
            scores = utility(net["head"](acts), classes)
            objective = sign * scores
        grads = tape.gradient(objective, acts)
    hessian = acc.jvp(grads, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tuple(np.asarray(t, np.float64) for t in (acts, grads, hessian, scores))


class _HessianProbe(Explainer):
    """No name, so not registered: Grad-CAM that also returns the engine's H.A."""

    uses_hessian = True

    def channel_weights(self, ctx):
        ctx.extras["hessian"] = ctx.hessian_activations
        return tf.reduce_mean(ctx.gradients, axis=ctx.spatial_axes)


def test_engine_hessian_against_forward_over_backward(smooth_net):
    classes = np.array([0, 3, 1])
    _, _, hessian, _ = tape_read(smooth_net, classes)
    assert np.abs(hessian).max() > 1e-3, "a flat score: the test would prove nothing"
    got = _HessianProbe(smooth_net["model"], "early")(smooth_net["x"], classes)
    assert ref.rel_err(got.extras["hessian"], hessian) < 1e-4
    # k classes per sample: one H.A per (sample, class) row
    both = _HessianProbe(smooth_net["model"], "early")(smooth_net["x"], np.stack(
        [classes, [2, 2, 2]], axis=1))
    np.testing.assert_allclose(both.extras["hessian"][:, 0], got.extras["hessian"], rtol=1e-4,
                               atol=1e-6)


def test_engine_hessian_of_a_score_linear_in_the_activations_is_zero(rng):
    """conv -> GAP -> Dense: the gradient does not depend on the activations at all (it is
    unconnected to them), and H.A is zero, not an error."""
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(2, 3, activation="relu", name="conv")(inp)
    model = keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(a)))
    got = _HessianProbe(model, "conv")(rng.random((2, 6, 6, 1), dtype=np.float32))
    np.testing.assert_array_equal(got.extras["hessian"], 0)


# ------------------------------------------------------------------------ replaced activations
class _ReplayProbe(Explainer):
    """No name: the model's outputs with the layer's activations zeroed (in copies of row 0)
    and as they are (every row), from ctx.outputs_with_activations."""

    uses_gradients = False
    rescores_activations = True

    def compute(self, ctx):
        rows = tf.shape(ctx.activations)[0]
        ctx.extras["zeroed"] = ctx.outputs_with_activations(tf.zeros_like, tf.zeros([rows],
                                                                                    tf.int32))
        ctx.extras["same"] = ctx.outputs_with_activations(tf.identity, tf.range(rows))
        return tf.reduce_mean(ctx.activations, axis=-1)


def test_engine_outputs_with_replaced_activations(rng):
    """Every class's logit with the target replaced; a skip connection over the target keeps
    reading the true input."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inp)
    skip = L.Concatenate()([a, inp])  # the input jumps over the target
    dense = L.Dense(4)
    model = keras.Model(inp, L.Softmax()(dense(L.GlobalAveragePooling2D()(skip))))
    x = rng.random((3, 6, 6, 2), dtype=np.float32)
    got = _ReplayProbe(model, "conv")(x, lambda out: out[:, 0])
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    pooled_x = x.mean(axis=(1, 2))
    np.testing.assert_allclose(got.extras["zeroed"], pooled_x[[0, 0, 0]] @ kernel[3:] + bias,
                               rtol=1e-5, atol=1e-6)
    logits = keras.Model(inp, dense.output)(x).numpy()
    np.testing.assert_allclose(got.extras["same"], logits, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ hand-built contexts
def context(acts, grads=None, targets=None):
    acts = tf.constant(acts, tf.float32)
    n = acts.shape[0]
    return tfg.Context(
        inputs=[], activations=acts,
        gradients=None if grads is None else tf.constant(grads, tf.float32),
        targets=tf.constant(np.zeros(n) if targets is None else targets, tf.int32),
        scores=tf.zeros([n]), outputs=None)


def hooks(explainer, ctx):
    """The method's raw map ``[M, *S]`` (and weights) from its hooks on a hand-built context."""
    weights = explainer.channel_weights(ctx)
    return (None if weights is None else weights.numpy()), explainer.compute(ctx).numpy()


def run(net, method, classes, layer="early", **options):
    return tfg.METHODS[method](net["model"], layer, **options)(net["x"], classes)


# ------------------------------------------------------------------------ NumPy formulas
def np_principal(m, reference, center=True):
    """``m [P, K]`` projected on its first principal direction, sign agreeing with
    ``reference [P]`` (covariance, else dot product)."""
    x = m - m.mean(axis=0) if center and len(m) > 1 else m
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    p = x @ vt[0]
    c = np.dot(p - p.mean(), reference - reference.mean()) or np.dot(p, reference)
    return -p if c < 0 else p


def np_eigengradcam(acts, grads, center=True):
    m = (acts * grads).reshape(len(acts), -1, acts.shape[-1])
    return np.stack([np.maximum(np_principal(x, x.sum(1), center), 0) for x in m]).reshape(
        acts.shape[:-1])


def np_kpca(acts, kernel="sigmoid", gamma=None, coef0=1.0, degree=3):
    out = []
    for m in acts.reshape(len(acts), -1, acts.shape[-1]):
        x = m - m.mean(axis=0)
        g = 1.0 / x.shape[1] if gamma is None else gamma
        if kernel == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        dots = x @ x.T
        k = {"linear": dots, "cosine": dots, "sigmoid": np.tanh(g * dots + coef0),
             "poly": (g * dots + coef0) ** degree,
             "rbf": np.exp(-g * ((x[:, None] - x[None]) ** 2).sum(-1))}[kernel]
        j = np.full(k.shape, 1 / len(k))
        kc = k - j @ k - k @ j + j @ k @ j
        w, v = np.linalg.eigh(kc)
        z = v[:, -1] * np.sqrt(max(w[-1], 0.0))
        ref_map = m.mean(axis=1)
        c = np.dot(z - z.mean(), ref_map - ref_map.mean()) or np.dot(z, ref_map)
        out.append(np.maximum(-z if c < 0 else z, 0))
    return np.stack(out).reshape(acts.shape[:-1])


def np_fem(acts, k=2.0, weighting="mean"):
    axes = tuple(range(1, acts.ndim - 1))
    mu, sd = acts.mean(axes, keepdims=True), acts.std(axes, keepdims=True)
    binary = acts > mu + k * sd
    if weighting == "fraction":
        return np.maximum((binary.mean(axes, keepdims=True) * acts).sum(-1), 0)
    return np.maximum((mu * binary).sum(-1), 0)


def np_cam(acts, weights):
    return np.maximum(np.einsum("n...k,nk->n...", acts, weights), 0)


def spatial_mean(t):
    return t.mean(axis=tuple(range(1, t.ndim - 1)))


def np_gradcampp_weights(acts, d1, d2, d3):
    axes = tuple(range(1, acts.ndim - 1))
    den = 2 * d2 + acts.sum(axes, keepdims=True) * d3
    alpha = np.divide(d2, den, out=np.zeros_like(den), where=den != 0)
    return (alpha * np.maximum(d1, 0)).sum(axes)


# ------------------------------------------------------------------------ Eigen-Grad-CAM
def test_eigengradcam_against_numpy(smooth_net):
    classes = np.array([0, 3, 1])
    acts, grads, _, _ = tape_read(smooth_net, classes)
    for center in (False, True):
        expected = np_eigengradcam(acts, grads, center)
        assert expected.max() > 0
        got = run(smooth_net, "eigengradcam", classes, center=center)
        assert ref.rel_err(got.raw, expected) < 1e-4, center
    # counterfactual: G -> -G flips the reference too: the two maps are the signed
    # projection's two halves
    cf = run(smooth_net, "eigengradcam", classes, counterfactual=True)
    m = (acts * grads).reshape(3, -1, acts.shape[-1])
    halves = np.stack([np.abs(np_principal(x, x.sum(1))) for x in m]).reshape(acts.shape[:-1])
    assert ref.rel_err(got.raw + cf.raw, halves) < 1e-4 and np.all(got.raw * cf.raw == 0)


def test_eigengradcam_is_hirescam_smoothed_and_rank_one_by_hand(smooth_net):
    classes = np.array([2, 0, 1])
    eigen = run(smooth_net, "eigengradcam", classes)
    hires = run(smooth_net, "hirescam", classes, eigen_smooth=True)
    np.testing.assert_allclose(eigen.raw, hires.raw, rtol=1e-5, atol=1e-7)
    # G * A = u v^T, u, v >= 0, uncentred: the map is u |v| (the direction v / |v|)
    u, v = np.array([3.0, 0.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0])
    explainer = tfg.EigenGradCAM(smooth_net["model"], "early", center=False)
    acts = np.outer(u, v).reshape(1, 2, 2, 3)
    _, cam = hooks(explainer, context(acts, np.ones_like(acts)))
    np.testing.assert_allclose(cam.ravel(), 3.0 * u, rtol=1e-5)
    with pytest.raises(ValueError, match="eigen_smooth is not defined"):
        tfg.EigenGradCAM(smooth_net["model"], "early", eigen_smooth=True)


# ------------------------------------------------------------------------ Grad-CAM element-wise
def test_gradcam_elementwise_against_numpy_and_hirescam(smooth_net):
    classes = np.array([1, 1, 3])
    acts, grads, _, _ = tape_read(smooth_net, classes)
    expected = np.maximum(acts * grads, 0).sum(-1)
    got = run(smooth_net, "gradcamelementwise", classes)
    assert expected.max() > 0 and ref.rel_err(got.raw, expected) < 1e-5
    hires = np.maximum((acts * grads).sum(-1), 0)
    assert np.all(got.raw >= hires - 1e-6) and not np.allclose(got.raw, hires)
    # by hand: rectify each product, then sum; every product <= 0 gives zero
    a = np.array([[[[1.0, 2.0], [3.0, -1.0]]]])  # one sample, 1 x 2 positions, 2 channels
    g = np.array([[[[2.0, -1.0], [-1.0, -4.0]]]])
    explainer = tfg.GradCAMElementWise(smooth_net["model"], "early")
    _, cam = hooks(explainer, context(a, g))
    np.testing.assert_allclose(cam, [[[2.0, 4.0]]])  # [relu(2) + relu(-2), relu(-3) + relu(4)]
    _, cam = hooks(explainer, context(np.abs(a), -np.abs(g)))
    np.testing.assert_array_equal(cam, 0)


def test_gradcam_elementwise_is_hirescam_where_no_product_is_negative(rng):
    """GAP -> Dense with a non-negative kernel after a ReLU: every g A = W A / P >= 0."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, activation="relu", name="conv")(inp)
    dense = L.Dense(2, kernel_initializer=keras.initializers.RandomUniform(0.1, 1.0))
    model = keras.Model(inp, dense(L.GlobalAveragePooling2D()(a)))
    x = rng.random((3, 6, 6, 2), dtype=np.float32)
    ew = tfg.GradCAMElementWise(model, "conv")(x, [0, 1, 1])
    hires = tfg.HiResCAM(model, "conv")(x, [0, 1, 1])
    assert ew.raw.max() > 0
    np.testing.assert_allclose(ew.raw, hires.raw, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------ KPCA-CAM
@pytest.mark.parametrize("kernel", ["sigmoid", "rbf", "poly", "cosine"])
def test_kpcacam_against_numpy(smooth_net, kernel):
    acts = np.asarray(smooth_net["features"](smooth_net["x"]), np.float64)
    gamma = {"rbf": 0.5, "poly": 0.3}.get(kernel)
    options = {} if gamma is None else {"gamma": gamma}
    expected = np_kpca(acts, kernel, **options)
    assert expected.max() > 0
    got = run(smooth_net, "kpcacam", None, kernel=kernel, **options)
    assert ref.rel_err(got.raw, expected) < 1e-3, kernel


def test_kpcacam_linear_kernel_is_eigencam_and_edge_cases(smooth_net, rng):
    linear = run(smooth_net, "kpcacam", None, kernel="linear")
    eigen = run(smooth_net, "eigencam", None)
    assert eigen.raw.max() > 0
    assert ref.rel_err(linear.raw, eigen.raw) < 1e-4
    explainer = tfg.KPCACAM(smooth_net["model"], "early", kernel="rbf")
    acts = rng.random((2, 3, 4, 5))
    _, plain = hooks(explainer, context(acts))
    _, shifted = hooks(explainer, context(acts + 3.0))  # rbf: translation invariant
    np.testing.assert_allclose(plain, shifted, rtol=1e-4, atol=1e-6)
    _, one = hooks(tfg.KPCACAM(smooth_net["model"], "early"), context(rng.random((2, 1, 1, 5))))
    np.testing.assert_array_equal(one, 0)  # a single position: nothing to project
    with pytest.raises(ValueError, match="kernel must be one of"):
        tfg.KPCACAM(smooth_net["model"], "early", kernel="laplacian")


# ------------------------------------------------------------------------ FEM
def test_fem_by_hand(smooth_net):
    # One channel, zero except 10 at one of 5 x 5 positions: mean 0.4, std sqrt(4 - 0.16) =
    # 1.96, threshold 0.4 + 2 * 1.96 = 4.32: only the spike is above, weighted by the mean.
    spike = np.zeros((1, 5, 5, 1))
    spike[0, 1, 3, 0] = 10.0
    explainer = tfg.FEM(smooth_net["model"], "early")
    w, cam = hooks(explainer, context(spike))
    expected = np.zeros((1, 5, 5))
    expected[0, 1, 3] = 0.4
    np.testing.assert_allclose(cam, expected, rtol=1e-6)
    np.testing.assert_allclose(w, [[0.4]], rtol=1e-6)
    # a constant channel changes nothing (sigma = 0, strict comparison); scaling a channel
    # by 3 scales its contribution by 3
    two = np.concatenate([3.0 * spike, np.full_like(spike, 2.0)], axis=-1)
    _, cam = hooks(explainer, context(two))
    np.testing.assert_allclose(cam, 3.0 * expected, rtol=1e-6)


@pytest.mark.parametrize("weighting", ["mean", "fraction"])
def test_fem_against_numpy(smooth_net, weighting):
    acts = np.asarray(smooth_net["features"](smooth_net["x"]), np.float64)
    expected = np_fem(acts, 1.0, weighting)
    assert expected.max() > 0
    got = run(smooth_net, "fem", None, k=1.0, weighting=weighting)
    assert ref.rel_err(got.raw, expected) < 1e-5
    smooth = run(smooth_net, "fem", None, k=1.0, eigen_smooth=True)  # PC1 of mu_k B^k
    axes = (1, 2)
    mu, sd = acts.mean(axes, keepdims=True), acts.std(axes, keepdims=True)
    contributions = (mu * (acts > mu + sd)).reshape(3, -1, acts.shape[-1])
    expected = np.stack([np.maximum(np_principal(c, c.sum(1)), 0) for c in contributions])
    assert ref.rel_err(smooth.raw.reshape(3, -1), expected) < 1e-4


# ------------------------------------------------------------------------ ShapleyCAM
def rest(logits, classes):
    return logit(logits, classes) + logit(tf.nn.log_softmax(logits), classes)


@pytest.mark.parametrize("utility", ["rest", "logit"])
def test_shapleycam_against_numpy(smooth_net, utility):
    classes = np.array([3, 0, 2])
    acts, grads, hessian, scores = tape_read(smooth_net, classes,
                                             rest if utility == "rest" else logit)
    weights = spatial_mean(grads - 0.5 * hessian)
    assert np.abs(spatial_mean(hessian)).max() > 1e-3 * np.abs(weights).max()
    got = run(smooth_net, "shapleycam", classes, utility=utility)
    assert ref.rel_err(got.weights, weights) < 1e-4
    assert ref.rel_err(got.raw, np_cam(acts, weights)) < 1e-4
    np.testing.assert_allclose(got.scores, scores, rtol=1e-5)
    cf = run(smooth_net, "shapleycam", classes, utility=utility, counterfactual=True)
    np.testing.assert_allclose(cf.weights, -got.weights, rtol=1e-5, atol=1e-8)


def test_shapleycam_is_gradcam_on_a_piecewise_linear_head(rng):
    keras.utils.set_random_seed(5)
    inp = keras.Input((8, 8, 2))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="early")(inp)
    b = L.Conv2D(5, 3, padding="same", activation="relu")(L.MaxPooling2D()(a))
    model = keras.Model(inp, L.Dense(3, activation="softmax")(L.Flatten()(b)))
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    shapley = tfg.ShapleyCAM(model, "early", utility="logit")(x, top_k=2)
    grad = tfg.GradCAM(model, "early")(x, top_k=2)
    assert grad.raw.max() > 0
    np.testing.assert_allclose(shapley.weights, grad.weights, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(shapley.raw, grad.raw, rtol=1e-6, atol=1e-9)
    rested = tfg.ShapleyCAM(model, "early")(x, top_k=2)  # ReST: curved through the softmax
    assert not np.allclose(rested.weights, grad.weights, rtol=1e-3)


def test_shapleycam_on_a_quadratic_utility_by_hand(rng):
    """u_c(a) = b_c . a + a^T Q_c a / 2 of the flattened layer: g = b + Q a and H A = Q a, so
    the weights are the positions' mean of b + Q a / 2, and the Shapley values
    A (g - H A / 2) add up to u(A) - u(0) exactly (the efficiency axiom)."""
    b = rng.normal(size=(8, 2)).astype(np.float32)
    q = rng.normal(size=(2, 8, 8)).astype(np.float32)
    q = q + q.transpose(0, 2, 1)
    inp = keras.Input((3, 3, 1))
    a = L.Conv2D(2, 2, name="feat")(inp)  # 2 x 2 positions, 2 channels: 8 numbers

    def utility(t):
        flat = keras.ops.reshape(t, (-1, 8))
        quad = keras.ops.einsum("ni,cij,nj->nc", flat, q, flat)
        return keras.ops.matmul(flat, b) + 0.5 * quad

    model = keras.Model(inp, L.Lambda(utility)(a))
    x = rng.random((4, 3, 3, 1), dtype=np.float32)
    classes = np.array([0, 1, 1, 0])
    got = tfg.ShapleyCAM(model, "feat", utility="logit")(x, classes)
    acts = keras.Model(inp, a)(x).numpy().astype(np.float64).reshape(4, 8)
    qa = np.einsum("cij,nj->nci", q, acts)[np.arange(4), classes]  # [N, 8]
    expected = (b.T[classes] + 0.5 * qa).reshape(4, 4, 2).mean(axis=1)
    assert ref.rel_err(got.weights, expected) < 1e-4
    probe = _HessianProbe(model, "feat")(x, classes)
    g = b.T[classes] + qa
    np.testing.assert_allclose(probe.extras["hessian"].reshape(4, 8), qa, rtol=1e-4, atol=1e-4)
    phi = acts * (g - 0.5 * probe.extras["hessian"].reshape(4, 8))
    np.testing.assert_allclose(phi.sum(axis=1), got.scores, rtol=1e-4)


def test_shapleycam_rest_needs_logits(smooth_net):
    with pytest.raises(ValueError, match="needs score='logits'"):
        tfg.ShapleyCAM(smooth_net["model"], "early", score="probabilities")
    with pytest.raises(ValueError, match="utility must be"):
        tfg.ShapleyCAM(smooth_net["model"], "early", utility="probability")


# ------------------------------------------------------------------------ Finer-CAM
def np_finer(y, c, alpha=0.6, m=3, weighting="probability"):
    """``(u [N], references [N, m], their weights [N, m])`` for logits ``y`` and classes ``c``."""
    n = np.arange(len(y))
    d = np.abs(y - y[n, c][:, None])
    d[n, c] = np.inf
    refs = np.argsort(d, axis=1, kind="stable")[:, :m]
    if weighting == "probability":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        p = np.take_along_axis(e / e.sum(axis=1, keepdims=True), refs, 1)
    else:
        p = np.ones(refs.shape)
    p = p / p.sum(axis=1, keepdims=True)
    return y[n, c] - alpha * (p * np.take_along_axis(y, refs, 1)).sum(1), refs, p


@pytest.fixture(scope="module")
def gap5():
    """conv -> GAP -> Dense(5) -> softmax, with activations and logits read by hand."""
    keras.utils.set_random_seed(8)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, activation="relu", name="conv")(inp)
    dense = L.Dense(5, activation="softmax")
    model = keras.Model(inp, dense(L.GlobalAveragePooling2D()(a)))
    x = np.random.default_rng(9).random((4, 6, 6, 2), dtype=np.float32)
    acts = keras.Model(inp, a)(x).numpy().astype(np.float64)
    kernel, bias = dense.kernel.numpy().astype(np.float64), dense.bias.numpy()
    return model, x, acts, acts.mean(axis=(1, 2)) @ kernel + bias, kernel


@pytest.mark.parametrize("weighting", ["probability", "mean"])
def test_finercam_weights_on_gap_dense(gap5, weighting):
    """Grad-CAM of u = y_c - alpha sum p_d y_d on GAP -> Dense(W): the weights are
    (W_c - alpha sum_d p_d W_d) / P, the weights p constants."""
    model, x, acts, logits, kernel = gap5
    classes = np.array([0, 4, 2, 2])
    u, refs, p = np_finer(logits, classes, 0.6, 3, weighting)
    got = tfg.FinerCAM(model, "conv", weighting=weighting)(x, classes)
    expected = (kernel.T[classes] - 0.6 * np.einsum("nm,nmk->nk", p, kernel.T[refs])) / 16
    assert ref.rel_err(got.weights, expected) < 1e-4
    np.testing.assert_allclose(got.scores, u, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(got.extras["references"], refs)
    assert ref.rel_err(got.raw, np_cam(acts, expected)) < 1e-4
    # two classes per sample: the top two, each compared with its own look-alikes
    top = tfg.FinerCAM(model, "conv", weighting=weighting)(x, top_k=2)
    second = np.argsort(-logits, axis=1)[:, 1]
    u2, refs2, _ = np_finer(logits, second, 0.6, 3, weighting)
    np.testing.assert_allclose(top.scores[:, 1], u2, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(top.extras["references"][:, 1], refs2)


def test_finercam_with_alpha_zero_is_its_base_and_layercam_base_against_numpy(smooth_net):
    classes = np.array([1, 3, 0])
    plain = run(smooth_net, "gradcam++", classes)
    np.testing.assert_allclose(run(smooth_net, "finercam", classes, base="gradcam++",
                                   alpha=0.0).raw, plain.raw, rtol=1e-6)

    def finer(logits, c):  # the objective, with constant reference weights
        u, refs, p = np_finer(logits.numpy().astype(np.float64), c.numpy(), 0.8, 2)
        return logit(logits, c) - 0.8 * tf.reduce_sum(
            tf.constant(p, tf.float32) * tf.gather(logits, refs, axis=1, batch_dims=1), axis=1)

    acts, grads, _, scores = tape_read(smooth_net, classes, finer)
    got = run(smooth_net, "finercam", classes, base="layercam", alpha=0.8, references=2)
    expected = np.maximum((np.maximum(grads, 0) * acts).sum(-1), 0)
    assert expected.max() > 0 and ref.rel_err(got.raw, expected) < 1e-4
    np.testing.assert_allclose(got.scores, scores, rtol=1e-5)


def test_finercam_references_by_hand_and_refusals(gap5):
    model = gap5[0]
    explainer = tfg.FinerCAM(model, "conv", references=3)
    # y_c = 2 for c = 1: distances [1, inf, 0, 2, 0]; a tie with c (class 2, 4) is a
    # reference, c never is; ties go to the lower index
    logits = tf.constant([[1.0, 2.0, 2.0, 0.0, 2.0]])
    refs = explainer.reference_classes(logits, tf.constant([[1]]))
    np.testing.assert_array_equal(refs, [[[2, 4, 0]]])
    many = tfg.FinerCAM(model, "conv", references=9).reference_classes(logits, tf.constant([[1]]))
    np.testing.assert_array_equal(many, [[[2, 4, 0, 3]]])  # capped at C - 1
    with pytest.raises(ValueError, match="not a callable"):
        explainer(gap5[1], lambda out: out[:, 0])
    with pytest.raises(ValueError, match="is not such a method"):
        tfg.FinerCAM(model, "conv", base="scorecam")
    sigmoid = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3, name="conv"),
                                L.GlobalAveragePooling2D(), L.Dense(3, activation="sigmoid")])
    with pytest.raises(ValueError, match="softmax"):
        tfg.FinerCAM(sigmoid, "conv")


# ------------------------------------------------------------------------ Random-CAM
def test_randomcam_is_its_weights_and_reproducible(smooth_net):
    x, model = smooth_net["x"], smooth_net["model"]
    acts = np.asarray(smooth_net["features"](x), np.float64)
    explainer = tfg.RandomCAM(model, "early", seed=7)
    got = explainer(x, [0, 1, 2])
    assert got.weights.shape == (3, 5) and np.all(np.abs(got.weights) <= 1)
    assert ref.rel_err(got.raw, np_cam(acts, got.weights)) < 1e-5
    # the same call, one sample per step, in reverse order, compiled by XLA: the same weights
    np.testing.assert_array_equal(explainer(x, [0, 1, 2], batch_size=1).weights, got.weights)
    np.testing.assert_array_equal(explainer(x[::-1], [2, 1, 0]).weights, got.weights[::-1])
    xla = tfg.RandomCAM(model, "early", seed=7, jit_compile=True)(x, [0, 1, 2])
    np.testing.assert_array_equal(xla.weights, got.weights)
    # another seed, another class, another sample: other weights
    assert not np.allclose(tfg.RandomCAM(model, "early", seed=8)(x, [0, 1, 2]).weights,
                           got.weights, atol=0.05)
    two = explainer(x, np.array([[0, 1], [1, 0], [2, 2]]))
    np.testing.assert_array_equal(two.weights[:, 0], got.weights)
    assert not np.allclose(two.weights[0, 0], two.weights[0, 1], atol=0.05)
    assert not np.allclose(got.weights[0], got.weights[1], atol=0.05)


def test_randomcam_weights_are_uniform(rng):
    inp = keras.Input((4, 4, 1))
    a = L.Conv2D(64, 1, name="wide")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(a)))
    w = tfg.RandomCAM(model, "wide")(rng.random((40, 4, 4, 1), dtype=np.float32), 0).weights
    assert w.shape == (40, 64) and w.min() >= -1 and w.max() < 1
    assert abs(w.mean()) < 0.05 and 0.3 < w.var() < 0.37  # U[-1, 1): mean 0, variance 1/3
    assert len(np.unique(w)) == w.size
    assert 0.4 < (w > 0).mean() < 0.6


# ------------------------------------------------------------------------ Smooth Grad-CAM++
def test_smoothgradcampp_against_numpy(smooth_net):
    x, n, level = smooth_net["x"], 4, 0.2
    classes = np.array([2, 0, 3])
    noise = tf.random.stateless_normal((n,) + x.shape[1:], seed=[5, 0]).numpy()
    span = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    acts = tape_read(smooth_net, classes)[0]
    for sign in (1.0, -1.0):
        grads = np.stack([tape_read(smooth_net, classes, sign=sign, x=x + level * span * e)[1]
                          for e in noise])
        expected = np_gradcampp_weights(acts, grads.mean(0), (grads ** 2).mean(0),
                                        (grads ** 3).mean(0))
        got = run(smooth_net, "smoothgradcam++", classes, num_samples=n, noise_level=level,
                  seed=5, counterfactual=sign < 0)
        assert ref.rel_err(got.weights, expected) < 1e-4, sign
        assert ref.rel_err(got.raw, np_cam(acts, expected)) < 1e-4, sign
        assert expected.max() > 0


def test_smoothgradcampp_without_noise_or_on_gap_dense_is_gradcampp(smooth_net, gap5):
    classes = np.array([1, 2, 0])
    plain = run(smooth_net, "gradcam++", classes)
    once = run(smooth_net, "smoothgradcam++", classes, num_samples=1, noise_level=0.0)
    np.testing.assert_allclose(once.weights, plain.weights, rtol=1e-5, atol=1e-8)
    noisy = run(smooth_net, "smoothgradcam++", classes, num_samples=3)
    assert not np.allclose(noisy.weights, plain.weights, rtol=1e-2)
    # GAP -> Dense: the layer's gradients do not depend on the input, noise changes nothing
    model, x = gap5[:2]
    np.testing.assert_allclose(tfg.SmoothGradCAMPlusPlus(model, "conv", num_samples=3)(x).weights,
                               tfg.GradCAMPlusPlus(model, "conv")(x).weights, rtol=1e-5)


# ------------------------------------------------------------------------ 1D and 3D layers
ON_RANK = {3: ["eigengradcam", "gradcamelementwise", "shapleycam", "finercam", "smoothgradcam++"],
           5: ["kpcacam", "fem", "randomcam", "sscam", "iscam"]}


@pytest.mark.parametrize("rank", [3, 5])
def test_new_methods_on_1d_and_3d_layers(rank):
    """Each new method on a 1D or a 3D network (the gradient ones in 1D, the others in 3D;
    tracing is what costs), two classes per sample; Grad-CAM element-wise (1D) and FEM (3D)
    against NumPy there."""
    shape = {3: (12, 2), 5: (4, 5, 5, 1)}[rank]
    conv = {3: L.Conv1D, 5: L.Conv3D}[rank]
    gap = {3: L.GlobalAveragePooling1D, 5: L.GlobalAveragePooling3D}[rank]()
    keras.utils.set_random_seed(rank)
    inp = keras.Input(shape)
    early = conv(4, 3, padding="same", activation="relu", name="early")
    late, dense = conv(5, 3, padding="same", activation="swish"), L.Dense(3)
    model = keras.Model(inp, L.Softmax()(dense(gap(late(early(inp))))))
    net = dict(model=model, x=np.random.default_rng(rank).random((2, *shape), dtype=np.float32),
               features=early, head=lambda t: dense(gap(late(t))))
    light = {"sscam": {"num_samples": 2}, "iscam": {"steps": 2},
             "smoothgradcam++": {"num_samples": 2}}
    results = {}
    for name in ON_RANK[rank]:
        res = tfg.METHODS[name](model, "early", **light.get(name, {}))(net["x"], top_k=2)
        assert res.heatmaps.shape == (2, 2, *shape[:-1]) and np.isfinite(res.heatmaps).all()
        assert res.raw.shape == (2, 2, *shape[:-1]) and res.heatmaps.max() == pytest.approx(1)
        results[name] = res
    acts, grads, _, _ = tape_read(net, next(iter(results.values())).targets[:, 0])
    if rank == 3:
        expected = np.maximum(acts * grads, 0).sum(-1)
        assert ref.rel_err(results["gradcamelementwise"].raw[:, 0], expected) < 1e-5
    else:
        assert ref.rel_err(results["fem"].raw[:, 0], np_fem(acts)) < 1e-5
