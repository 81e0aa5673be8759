"""Score-CAM and Ablation-CAM against NumPy: masked / ablated scores computed by hand with
``model.predict``, the upsampling written out, and the memory bound of the channel loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_gradcam.methods.ablationcam import EPSILON, AblationCAM
from tf_gradcam.methods.scorecam import ScoreCAM

L = keras.layers


# ------------------------------------------------------------------------ NumPy references
def np_bilinear(img, size):
    """``[h, w]`` -> ``[H, W]``: bilinear, half-pixel centres, edges clamped (tf.image.resize)."""

    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    (r0, r1, fr), (c0, c1, fc) = axis(img.shape[0], size[0]), axis(img.shape[1], size[1])
    rows = img[r0] * (1 - fr)[:, None] + img[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None] + rows[:, c1] * fc[None]


def np_min_max(m):
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict(model, x):
    return model.predict(x, verbose=0, batch_size=256).astype(np.float64)


def scorecam_reference(model, acts, x, score):
    """Weights ``[N, K]``: ``score(outputs of x[n] * mask_k)``, every mask made by hand."""
    n, k = acts.shape[0], acts.shape[-1]
    masked = np.stack([
        x[i] * np_min_max(np_bilinear(acts[i, ..., j], x.shape[1:3]))[..., None]
        for i in range(n) for j in range(k)
    ]).astype(np.float32)
    images = np.repeat(np.arange(n), k)
    return score(predict(model, masked), images).reshape(n, k)


def cam(acts, weights):
    return np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0)


# ------------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def logit_cnn():
    """conv (8x8) -> pool -> conv "feat" (4x4, 6 channels) -> dense logits (no softmax)."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.MaxPooling2D(name="pool")(x)
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="feat")(x)
    out = L.Dense(3, name="logits")(L.Flatten()(a))
    model = keras.Model(inp, out)
    features = keras.Model(inp, a)
    return model, features


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).random((3, 8, 8, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def scorecam_result(logit_cnn, images):
    model, _ = logit_cnn
    return ScoreCAM(model, "feat", batch_size=4)(images, [0, 2, 1])


# ------------------------------------------------------------------------ Score-CAM
def test_scorecam_weights_are_softmax_of_masked_logits(logit_cnn, images, scorecam_result):
    model, features = logit_cnn
    classes = np.array([0, 2, 1])
    acts = predict(features, images)
    expected = scorecam_reference(
        model, acts, images, lambda out, img: np_softmax(out)[np.arange(len(out)), classes[img]])
    res = scorecam_result
    np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.raw, cam(acts, expected), rtol=1e-4, atol=1e-6)
    # probabilities of masked inputs, not the logits themselves
    assert (res.weights > 0).all() and (res.weights < 1).all()
    assert res.raw.max() > 0 and res.heatmaps.shape == (3, 8, 8)
    assert res.heatmaps.max() == pytest.approx(1.0)
    # scores stay the engine's (the unmasked logit)
    np.testing.assert_allclose(res.scores, predict(model, images)[np.arange(3), classes], rtol=1e-5)


def test_scorecam_baseline_subtracts_the_zero_input_score(logit_cnn, images, scorecam_result):
    model, _ = logit_cnn
    res = ScoreCAM(model, "feat", batch_size=4, baseline=True)(images, [0, 2, 1])
    base = np_softmax(predict(model, np.zeros_like(images)))[np.arange(3), [0, 2, 1]]
    np.testing.assert_allclose(res.weights, scorecam_result.weights - base[:, None],
                               rtol=1e-4, atol=1e-6)


def test_scorecam_callable_target_uses_its_raw_value(logit_cnn, images):
    model, features = logit_cnn
    res = ScoreCAM(model, "feat", batch_size=5)(images, lambda out: out[:, 1] - out[:, 0])
    expected = scorecam_reference(model, predict(features, images), images,
                                  lambda out, img: out[:, 1] - out[:, 0])
    np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-5)
    assert (expected < 0).any(), "no negative score: softmax would be indistinguishable"


def test_scorecam_probabilities_mode_on_softmax_model_agrees(logit_cnn, images, scorecam_result):
    model, _ = logit_cnn
    # the same network ending in a softmax: "probabilities" reads the model's own softmax
    inp = keras.Input((8, 8, 3))
    soft = keras.Model(inp, L.Softmax()(model(inp)))
    res = ScoreCAM(soft, "feat", batch_size=4, score="probabilities")(images, [0, 2, 1])
    np.testing.assert_allclose(res.weights, scorecam_result.weights, rtol=1e-4, atol=1e-6)


def test_scorecam_sigmoid_head_uses_the_sigmoid(rng):
    """A binary classifier, Dense(1, sigmoid): a softmax over one logit would always be 1.
    Class 1 is the positive class (its probability p), class 0 the negative one (1 - p)."""
    keras.utils.set_random_seed(8)
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="feat")(inp)
    model = keras.Model(inp, L.Dense(1, activation="sigmoid")(L.Flatten()(a)))
    x = rng.random((2, 6, 6, 2), dtype=np.float32)
    res = ScoreCAM(model, "feat")(x, 1)
    acts = predict(keras.Model(inp, a), x)
    masked = [x[i] * np_min_max(acts[i, ..., j])[..., None] for i in range(2) for j in range(3)]
    expected = predict(model, np.stack(masked).astype(np.float32))[:, 0].reshape(2, 3)
    assert np.ptp(expected) > 1e-3
    np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-6)
    negative = ScoreCAM(model, "feat")(x, 0)
    np.testing.assert_allclose(negative.weights, 1 - expected, rtol=1e-4, atol=1e-6)


def test_scorecam_xla_matches(logit_cnn, images, scorecam_result):
    model, _ = logit_cnn
    res = ScoreCAM(model, "feat", batch_size=4, jit_compile=True)(images, [0, 2, 1])
    np.testing.assert_allclose(res.weights, scorecam_result.weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.heatmaps, scorecam_result.heatmaps, atol=1e-4)


def test_scorecam_constant_maps_give_zero_masks_not_nan(rng):
    keras.utils.set_random_seed(2)
    inp = keras.Input((6, 6, 1))
    conv = L.Conv2D(3, 3, padding="same", activation="relu", name="feat")
    out = L.Dense(2, name="logits")(L.Flatten()(conv(inp)))
    model = keras.Model(inp, out)
    kernel, bias = conv.get_weights()
    kernel[..., 0] = np.abs(kernel[..., 0]) + 0.1  # a varying map
    kernel[..., 1:] = 0
    bias[:] = [0.0, 0.7, -1.0]  # channel 1 constant 0.7, channel 2 dead (constant 0)
    conv.set_weights([kernel, bias])
    x = rng.random((2, 6, 6, 1), dtype=np.float32) + 0.1
    zero_score = np_softmax(predict(model, np.zeros_like(x)))[:, 1]
    plain = ScoreCAM(model, "feat", batch_size=2)(x, 1)
    for arr in (plain.weights, plain.raw, plain.heatmaps):
        assert np.isfinite(arr).all()
    # a constant map masks everything: its weight is the score of the all-zero input
    np.testing.assert_allclose(plain.weights[:, 1], zero_score, rtol=1e-5)
    np.testing.assert_allclose(plain.weights[:, 2], zero_score, rtol=1e-5)
    cic = ScoreCAM(model, "feat", baseline=True)(x, 1)
    np.testing.assert_allclose(cic.weights[:, 1:], 0, atol=1e-7)
    assert np.abs(cic.weights[:, 0]).min() > 0


@pytest.mark.parametrize("batch_size", [1, 3, 6])
def test_scorecam_chunking_and_batches_do_not_matter(logit_cnn, images, scorecam_result,
                                                     batch_size):
    model, _ = logit_cnn
    explainer = ScoreCAM(model, "feat", batch_size=batch_size)
    res = explainer(images, [0, 2, 1])
    np.testing.assert_allclose(res.weights, scorecam_result.weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.heatmaps, scorecam_result.heatmaps, rtol=1e-5, atol=1e-6)
    if batch_size == 3:  # one image at a time, and images split over engine batches
        for i, c in enumerate([0, 2, 1]):
            one = explainer(images[i: i + 1], c)
            np.testing.assert_allclose(one.weights[0], scorecam_result.weights[i], rtol=1e-5,
                                       atol=1e-7)
        split = explainer(images, [0, 2, 1], batch_size=2)
        np.testing.assert_allclose(split.weights, scorecam_result.weights, rtol=1e-5, atol=1e-7)
        assert explainer.trace_count == 1


def test_scorecam_masks_only_the_spatial_input(rng):
    keras.utils.set_random_seed(3)
    img, meta = keras.Input((6, 6, 2), name="image"), keras.Input((3,), name="meta")
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="feat")(img)
    x = L.Concatenate()([L.Flatten()(a), L.Dense(4, activation="tanh")(meta)])
    model = keras.Model([img, meta], L.Dense(2, name="logits")(x))
    xi, xm = rng.random((2, 6, 6, 2), dtype=np.float32), rng.random((2, 3), dtype=np.float32)
    res = ScoreCAM(model, "feat", batch_size=2)([xi, xm], [1, 0])
    acts = predict(keras.Model(model.inputs, a), [xi, xm])
    masked = [xi[i] * np_min_max(acts[i, ..., j])[..., None] for i in range(2) for j in range(3)]
    out = predict(model, [np.stack(masked).astype(np.float32), np.repeat(xm, 3, axis=0)])
    expected = np_softmax(out)[np.arange(6), np.repeat([1, 0], 3)].reshape(2, 3)
    np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------ memory: 2048 channels
class BatchRecorder(L.Layer):
    """Identity that records the largest batch it ever sees (a side effect inside the graph)."""

    def build(self, input_shape):
        self.largest = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                       dtype="int32", name="largest")

    def call(self, x):
        self.largest.assign(tf.maximum(self.largest, tf.shape(x)[0]))
        return x


def _function_graphs(graph):
    """``graph`` and the bodies of the functions (while loops, ...) its ops call, recursively."""
    yield graph
    for op in graph.get_operations():
        for attr in op.node_def.attr.values():
            names = [attr.func.name] if attr.HasField("func") else []
            names += [f.name for f in attr.list.func] if attr.HasField("list") else []
            for name in names:
                yield from _function_graphs(graph._get_function(name).graph)


def test_scorecam_2048_channels_memory_is_bounded_by_batch_size(rng):
    h, k, bs = 32, 2048, 8
    inp = keras.Input((h, h, 1))
    recorder = BatchRecorder()
    a = L.Conv2D(k, 1, activation="relu", name="wide")(L.AveragePooling2D(16)(recorder(inp)))
    model = keras.Model(inp, L.Dense(2, name="logits")(L.Flatten()(a)))
    explainer = ScoreCAM(model, "wide", batch_size=bs)
    x = rng.random((2, h, h, 1), dtype=np.float32)
    res = explainer(x, [0, 1])
    assert res.weights.shape == (2, k) and np.isfinite(res.weights).all()
    assert res.heatmaps.shape == (2, h, h)
    # every forward pass saw at most max(N, batch_size) inputs
    assert int(recorder.largest.numpy()) == bs
    # The step traced for one image: every tensor at the input's resolution (a mask, a masked
    # input) holds at most batch_size of them; all K = 2048 at once would be [2048, 32, 32].
    from tf_gradcam.choose.targets import Plan
    from tf_gradcam.engine.step import make_step

    step = tf.function(make_step(explainer, Plan(key=("classes", 1))).python_function,
                       autograph=False)
    graph = step.get_concrete_function(
        [tf.TensorSpec((1, h, h, 1), tf.float32)], tf.TensorSpec([1, 1], tf.int32), {}).graph
    at_input = []
    for g in _function_graphs(graph):
        for op in g.get_operations():
            for t in op.outputs:
                dims = t.shape.as_list() if t.shape.rank is not None else None
                if dims is not None and len(dims) >= 3 and dims[1:3] == [h, h]:
                    at_input.append(dims)
                    assert dims[0] is not None and dims[0] <= bs, (op.type, dims)
    assert [bs, h, h, 1] in at_input, "the loop body was not inspected"


# ------------------------------------------------------------------------ Ablation-CAM
@pytest.fixture(scope="module")
def split_cnn():
    """A network cut at the explained layer: ``features`` up to it, ``head`` after it."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 2))
    a = L.Conv2D(5, 3, padding="same", activation="relu", name="feat")(
        L.Conv2D(4, 3, padding="same", activation="relu")(inp))
    flatten, dense = L.Flatten(), L.Dense(4, name="logits")
    model = keras.Model(inp, dense(flatten(a)))
    head_in = keras.Input(a.shape[1:])
    head = keras.Model(head_in, dense(flatten(head_in)))
    return model, keras.Model(inp, a), head


def ablation_reference(features, head, x, score):
    acts = predict(features, x)
    n, k = acts.shape[0], acts.shape[-1]
    ablated = np.repeat(acts, k, axis=0).reshape(n, k, *acts.shape[1:])
    for j in range(k):
        ablated[:, j, ..., j] = 0  # zero channel j of copy j, by hand
    images = np.repeat(np.arange(n), k)
    y = score(predict(head, acts.astype(np.float32)), np.arange(n))
    yk = score(predict(head, ablated.reshape(n * k, *acts.shape[1:]).astype(np.float32)),
               images).reshape(n, k)
    return y, yk, acts


def test_ablationcam_weights_are_relative_drops(split_cnn, rng):
    model, features, head = split_cnn
    x = rng.random((4, 8, 8, 2), dtype=np.float32)
    logits = predict(model, x)
    # the lowest class for two images (negative logits), the top class for the others
    classes = np.where(np.arange(4) < 2, logits.argmin(axis=1), logits.argmax(axis=1))
    y, yk, acts = ablation_reference(features, head, x,
                                     lambda out, img: out[np.arange(len(out)), classes[img]])
    assert (y < 0).any() and (y > 0).any(), "the test needs negative and positive scores"
    drop = y[:, None] - yk
    expected = drop / np.abs(y)[:, None]
    res = AblationCAM(model, "feat", batch_size=3)(x, classes)
    np.testing.assert_allclose(res.scores, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.raw, cam(acts, expected), rtol=1e-4, atol=1e-5)
    # the sign of a weight is the sign of the drop, whatever the sign of y_c: a channel whose
    # removal lowers the score supports the class (dividing by y_c < 0 would flip it)
    clear = np.abs(drop) > 1e-3
    assert clear.sum() > 10 and (drop[clear] > 0).any() and (drop[clear] < 0).any()
    np.testing.assert_array_equal(np.sign(res.weights[clear]), np.sign(drop[clear]))
    # |y_c| scales each map by one positive number: the heatmaps (layer at input resolution)
    # are the maps of the plain drops, scaled by their max
    plain = cam(acts, drop)
    peak = plain.max(axis=(1, 2), keepdims=True)
    assert (peak > 0).sum() >= 2
    expected_heat = np.where(peak > 0, plain / np.where(peak > 0, peak, 1), 0)
    np.testing.assert_allclose(res.heatmaps, expected_heat, rtol=1e-4, atol=1e-5)


def test_ablationcam_zero_score_stays_finite(rng):
    """``y_c = 0`` exactly (a ReLU output): weights are ``-y_c^k / epsilon``, finite, no NaN.
    (One output unit is a binary head: class 1 is the output itself, class 0 its negation.)"""
    inp = keras.Input((4, 4, 1))
    a = L.Conv2D(3, 1, activation="relu", kernel_initializer="ones", name="feat")(inp)
    dense = L.Dense(1, name="pre")
    model = keras.Model(inp, L.ReLU()(dense(L.Flatten()(a))))
    kernel = np.tile(np.array([[-10.0, 1.0, 1.0]], np.float32), (16, 1)).reshape(48, 1)
    dense.set_weights([kernel, np.zeros(1, np.float32)])
    x = rng.random((2, 4, 4, 1), dtype=np.float32) + 0.1
    res = AblationCAM(model, "feat")(x, 1)
    assert np.all(res.scores == 0)
    acts = predict(keras.Model(inp, a), x)
    y0 = 2 * acts[..., 1].sum(axis=(1, 2))  # channel 0 ablated: the other two, ReLU'd
    np.testing.assert_allclose(res.weights[:, 0], -y0 / EPSILON, rtol=1e-4)
    np.testing.assert_allclose(res.weights[:, 1:], 0, atol=1e-6)
    assert np.isfinite(res.weights).all() and np.all(res.heatmaps == 0)


def test_ablationcam_batches_and_callables(split_cnn, rng):
    model, features, head = split_cnn
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    fn = lambda out: out[:, 2] - out[:, 3]  # noqa: E731
    y, yk, _ = ablation_reference(features, head, x, lambda out, img: out[:, 2] - out[:, 3])
    expected = (y[:, None] - yk) / np.abs(y)[:, None]
    results = [AblationCAM(model, "feat", batch_size=bs)(x, fn) for bs in (1, 4, 5)]
    for res in results:
        np.testing.assert_allclose(res.weights, expected, rtol=1e-4, atol=1e-5)
    one = AblationCAM(model, "feat", batch_size=4)(x[1:2], fn)
    np.testing.assert_allclose(one.weights[0], results[1].weights[1], rtol=1e-5, atol=1e-6)


def test_perturbation_options_are_checked(logit_cnn):
    model, _ = logit_cnn
    for cls in (ScoreCAM, AblationCAM):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            cls(model, "feat", batch_size=0)
        with pytest.raises(ValueError, match="counterfactual"):
            cls(model, "feat", counterfactual=True)


def test_ablationcam_replays_only_after_the_layer_with_skip_connections(rng):
    """Copies compute only the layers after the target; a skip connection that jumps over it
    (inside a nested backbone) must still read the un-ablated tensor."""
    keras.utils.set_random_seed(6)
    conv_a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")
    conv_b = L.Conv2D(4, 3, padding="same", activation="relu", name="b")
    conv_c = L.Conv2D(3, 3, padding="same", activation="relu", name="c")
    b_in = keras.Input((6, 6, 2))
    a = conv_a(b_in)
    backbone = keras.Model(b_in, conv_c(L.Add()([conv_b(a), a])), name="backbone")
    dense = L.Dense(3, name="logits")
    inp = keras.Input((6, 6, 2))
    model = keras.Model(inp, dense(L.Flatten()(backbone(inp))))

    # Reference: the head after "b" as a two-input model fed (a, ablated b) by hand.
    ha, hb = keras.Input((6, 6, 4)), keras.Input((6, 6, 4))
    head = keras.Model([ha, hb], dense(L.Flatten()(conv_c(L.Add()([hb, ha])))))
    x = rng.random((2, 6, 6, 2), dtype=np.float32)
    acts_a = predict(keras.Model(b_in, a), x)
    acts_b = predict(keras.Model(b_in, conv_b(a)), x)
    y = predict(model, x)[:, 1]
    weights = np.zeros((2, 4))
    for k in range(4):
        ablated = acts_b.copy()
        ablated[..., k] = 0
        yk = predict(head, [acts_a, ablated])[:, 1]
        weights[:, k] = (y - yk) / np.maximum(np.abs(y), EPSILON)
    res = AblationCAM(model, "backbone/b", batch_size=3)(x, 1)
    np.testing.assert_allclose(res.weights, weights, rtol=1e-4, atol=1e-5)
    # Only the layers after "b" run per copy: their call count says so.
    upstream = {id(layer) for layer in (conv_a,)}
    from tf_gradcam.engine import graph

    assert upstream <= graph.upstream_of(model, conv_b)
    assert id(conv_c) not in graph.upstream_of(model, conv_b)


class SampleCounter(L.Layer):
    """Identity that counts the samples it processes (a side effect inside the graph)."""

    def build(self, input_shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                    dtype="int32", name="seen")

    def call(self, x):
        self.seen.assign_add(tf.shape(x)[0])
        return x


def test_ablationcam_runs_the_layers_before_the_target_once_per_batch(rng):
    """One forward pass of the N images, then only the layers after the target per copy."""
    before, after = SampleCounter(), SampleCounter()
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(5, 3, activation="relu", name="feat")(before(inp))
    model = keras.Model(inp, L.Dense(3, name="logits")(L.Flatten()(after(a))))
    x = rng.random((3, 8, 8, 1), dtype=np.float32)
    res = AblationCAM(model, "feat", perturbation_batch_size=4)(x, 1)
    assert int(before.seen.numpy()) == 3  # the 3 originals, once
    # after the target: the 3 originals, plus 3 * 5 ablated copies in chunks of 4 (the last
    # chunk is padded to a full 4: ceil(15 / 4) * 4 = 16)
    assert int(after.seen.numpy()) == 3 + 16
    assert res.weights.shape == (3, 5) and np.isfinite(res.weights).all()
