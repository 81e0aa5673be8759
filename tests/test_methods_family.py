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


def tape_read(net, classes, utility=logit, sign=1.0):
    """``(A, G, H.A, scores)`` in float64 NumPy for the explained "early" layer: G by one eager
    tape, H.A = d/dt G(A + t A) at t = 0 by forward-mode differentiation over that tape."""
    acts = net["features"](tf.constant(net["x"]))
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
