"""A plain eager Grad-CAM, written the textbook way, to check the compiled engine against.

It shares no code with tf_gradcam: a sub-model returns the layer's activations together with the
features before the classifier, the logits are computed by hand from the dense layer's kernel,
and one eager GradientTape gives the gradients.
"""

import numpy as np
import tensorflow as tf


def gradcam(features_model, logits_fn, inputs, classes):
    """``features_model(inputs) -> [A, feats]``; ``logits_fn(feats) -> [N, C]``.

    Returns ``(raw maps [N, *S], weights [N, K], scores [N])`` as NumPy arrays.
    """
    if not isinstance(inputs, (list, tuple)) and isinstance(features_model._inputs_struct, list):
        inputs = [inputs]  # match the model's input structure (Keras warns otherwise)
    with tf.GradientTape() as tape:
        acts, feats = features_model(inputs, training=False)
        tape.watch(acts)
        logits = logits_fn(feats)
        scores = tf.gather(logits, classes, axis=1, batch_dims=1)
    grads = tape.gradient(scores, acts)
    acts, grads = acts.numpy().astype(np.float64), grads.numpy().astype(np.float64)
    spatial = tuple(range(1, acts.ndim - 1))
    weights = grads.mean(axis=spatial)
    cam = np.einsum("n...k,nk->n...", acts, weights)
    return np.maximum(cam, 0), weights, scores.numpy()


def dense_logits(dense):
    """The dense layer's pre-activation output, from its kernel and bias."""
    return lambda feats: tf.matmul(feats, dense.kernel) + dense.bias


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
