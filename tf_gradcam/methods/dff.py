"""Deep Feature Factorization (Collins, Achanta, Süsstrunk, ECCV 2018, arXiv:1806.10206).

Not one map per (sample, class) like the explainers, so not an :class:`Explainer` of its own:
:func:`deep_feature_factorization` factorizes a layer's activations over a whole set of inputs
into shared concepts, each with a heatmap per input and class scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import checks, resize
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer

#: Added to the denominators of the multiplicative updates: no 0 / 0, and a zero stays zero.
EPSILON = 1e-7


@dataclass
class ConceptFactorization:
    """What :func:`deep_feature_factorization` returns for ``N`` inputs and ``r`` concepts.

    Attributes:
        concepts: ``[r, K] float32 >= 0``: each concept's embedding in the layer's channels
            (the rows of ``W``; a concept's activations are ``H[p, j] * concepts[j] + offset``).
        heatmaps: ``[N, r, *input spatial] float32 in [0, 1]``: where each concept is present
            in each input, upsampled, each concept divided by its maximum over the whole set
            (so inputs can be compared; a concept absent everywhere stays all zero).
        raw: ``[N, r, *layer spatial] float32 >= 0``: the concepts' amounts ``H``, unscaled.
        concept_scores: ``[r, C] float32``: each concept's contribution to the class scores
            (logits under ``score="logits"``), or ``None`` for a model without one
            ``[N, C]`` output; see :func:`deep_feature_factorization`.
        offset: ``[K] float32``: what was subtracted from the activations (0 unless
            ``shift=True``).
        error: relative reconstruction error :math:`\\|V - HW\\|_F / \\|V\\|_F`.
        layer: the factorized layer's path.
    """

    concepts: np.ndarray
    heatmaps: np.ndarray
    raw: np.ndarray
    concept_scores: np.ndarray | None
    offset: np.ndarray
    error: float
    layer: str


def _no_score(outputs: Any) -> tf.Tensor:
    """A target for a pass that only reads activations: one (zero) score per row."""
    return tf.zeros(tf.shape(tf.nest.flatten(outputs)[0])[:1])


class _Activations(Explainer):
    """The layer's activations of every input, batch by batch (not registered: no name)."""

    uses_gradients = False
    eigen_smooth_defined = False

    def compute(self, ctx: Context) -> tf.Tensor:
        ctx.extras["activations"] = ctx.activations
        return tf.reduce_mean(ctx.activations, axis=-1)


class _ConceptOutputs(_Activations):
    """The model's outputs with the layer's activations replaced by constant maps ``[R, K]``."""

    rescores_activations = True

    def __init__(self, model: keras.Model, layer: LayerSpec, maps: np.ndarray,
                 score: str) -> None:
        super().__init__(model, layer, score=score)
        self.maps = maps

    def compute(self, ctx: Context) -> tf.Tensor:
        rows = len(self.maps)
        spatial = ctx.activations.shape.rank - 2

        def fill(acts):
            values = tf.reshape(tf.constant(self.maps, acts.dtype), [rows] + [1] * spatial + [-1])
            return tf.broadcast_to(values, tf.shape(acts))

        outputs = ctx.outputs_with_activations(fill, tf.zeros([rows], tf.int32))
        ctx.extras["outputs"] = tf.cast(outputs, tf.float32)
        return tf.reduce_mean(ctx.activations, axis=-1)


def nmf(v: tf.Tensor, components: int, iterations: int = 200, seed: int = 0
        ) -> tuple[tf.Tensor, tf.Tensor]:
    """``(H [n, r], W [r, K])`` non-negative, :math:`V \\approx HW` for ``v [n, K] >= 0``, by
    ``iterations`` Lee-Seung multiplicative updates of the Frobenius loss (which never increase
    it) from a seeded random start :math:`|\\mathcal N(0, 1)|\\,\\sqrt{\\bar V / r}` (the official
    DFF code's and scikit-learn's ``init="random"``)."""
    v = tf.convert_to_tensor(v, tf.float32)
    scale = tf.sqrt(tf.reduce_mean(v) / components)
    h = tf.abs(tf.random.stateless_normal([tf.shape(v)[0], components], seed=[seed, 0])) * scale
    w = tf.abs(tf.random.stateless_normal([components, tf.shape(v)[1]], seed=[seed, 1])) * scale

    def update(i, h, w):
        w = w * tf.matmul(h, v, transpose_a=True) / (
            tf.matmul(tf.matmul(h, h, transpose_a=True), w) + EPSILON)
        h = h * tf.matmul(v, w, transpose_b=True) / (
            tf.matmul(h, tf.matmul(w, w, transpose_b=True)) + EPSILON)
        return i + 1, h, w

    _, h, w = tf.while_loop(lambda i, h, w: i < iterations, update, [tf.constant(0), h, w])
    return h, w


def deep_feature_factorization(
    model: keras.Model, inputs: Any, n_components: int = 5, *, layer: LayerSpec = None,
    iterations: int = 200, seed: int = 0, shift: bool = False, score: str = "logits",
    batch_size: int | None = None,
) -> ConceptFactorization:
    r"""Deep Feature Factorization: a layer's activations over a set of inputs as a few
    non-negative concepts, each with a heatmap per input and class scores.

    The activations of all ``N`` inputs are stacked as :math:`V \in \mathbb{R}_{\ge 0}^{NP
    \times K}` (every position of every input a row) and factorized,

    .. math::
        \min_{H \ge 0,\ W \ge 0} \|V - HW\|_F^2, \qquad H \in \mathbb{R}^{NP \times r},\
        W \in \mathbb{R}^{r \times K}

    jointly over the set, as in the paper: the concepts (rows of :math:`W`) are shared, and
    column :math:`j` of :math:`H`, reshaped to ``[N, *S]``, shows where concept :math:`j` is in
    each input. Solved in TensorFlow by ``iterations`` multiplicative updates from a seeded
    start (:func:`nmf`), as the official code does, so results are reproducible and do not
    depend on ``batch_size``; they do not match scikit-learn's coordinate-descent solver
    (pytorch-grad-cam's) number for number: NMF has many local optima.

    Concept scores: NMF is ambiguous in scale (:math:`HD`, :math:`D^{-1}W`), so scoring the rows
    of :math:`W` as pytorch-grad-cam does depends on an arbitrary scale. Here concept
    :math:`j` is scored by what it contributes to the set's mean activation,
    :math:`c_j = \overline{H_{\cdot j}}\, W_j`: the layers after the target run on the
    constant map :math:`c_j` (plus ``offset``), minus the same for the ``offset`` alone. For a
    ``GlobalAveragePooling -> Dense`` head the contributions add up: their sum plus the head's
    output at the offset is the head's output at the mean reconstructed feature. (The
    concept maps replace the layer's output for the first input: a path that skips over the
    layer, rare after the last convolution, sees that input.) Rank them
    (e.g. ``np.argsort(-concept_scores, axis=1)[:, :2]``) to name each concept by its top
    classes, as pytorch-grad-cam's ``run_dff_on_image`` does.

    Args:
        model: a built Keras model, as for the explainers.
        inputs: an array (list or dict for several inputs) or a ``tf.data.Dataset``; all its
            activations are held in memory (``N * P * K`` floats).
        n_components: :math:`r`, the number of concepts (pytorch-grad-cam's demo uses 5).
        layer: as for the explainers (default: the last layer with spatial axes).
        iterations: multiplicative updates (200, the official code's ``max_iter``).
        seed: the random start.
        shift: subtract each channel's minimum over the set first (pytorch-grad-cam's
            ``offset``, for layers before a ReLU or transformers' tokens); without it,
            negative activations are refused.
        score: ``"logits"`` or ``"probabilities"``, for the concept scores.
        batch_size: inputs per forward pass.
    """
    r = checks.positive_int(n_components, "n_components")
    iterations = checks.positive_int(iterations, "iterations")
    reader = _Activations(model, layer, score=score)
    parts = list(reader.run(inputs, _no_score, batch_size=batch_size))
    acts = np.concatenate([p["activations"] for p in parts]).astype(np.float32)
    in_spatial = parts[0]["heatmaps"].shape[1:]
    n, spatial, channels = acts.shape[0], acts.shape[1:-1], acts.shape[-1]
    offset = acts.min(axis=tuple(range(acts.ndim - 1))) if shift else np.zeros(channels,
                                                                               np.float32)
    if not shift and acts.min() < 0:
        raise ValueError(
            f"Layer {reader.layer_names!r} has negative activations (min {acts.min():.3g}): "
            "NMF needs non-negative ones. Factorize a layer after a ReLU, or pass shift=True "
            "to subtract each channel's minimum first.")
    v = (acts - offset).reshape(-1, channels)
    h, w = (t.numpy() for t in nmf(v, r, iterations, seed))
    error = float(np.linalg.norm(v - h @ w) / max(np.linalg.norm(v), 1e-30))
    raw = np.moveaxis(h.reshape(n, *spatial, r), -1, 1)  # [N, r, *S]
    up = resize.upsample(tf.reshape(raw, (n * r, *spatial)), tf.constant(in_spatial)).numpy()
    up = up.reshape(n, r, *in_spatial)
    peak = up.max(axis=(0, *range(2, up.ndim)), keepdims=True)
    heatmaps = np.divide(up, peak, out=np.zeros_like(up), where=peak > 0)
    scores = None
    if reader.num_classes is not None:
        mean_h = h.mean(axis=0)  # [r]: the set's mean amount of each concept
        maps = np.concatenate([offset[None], offset + mean_h[:, None] * w]).astype(np.float32)
        first = inputs.take(1) if isinstance(inputs, tf.data.Dataset) else inputs
        x0 = [x[:1] for x in reader.prepare_inputs(first)]
        out = next(iter(_ConceptOutputs(model, layer, maps, score).run(x0, _no_score)))
        scores = out["outputs"][1:] - out["outputs"][:1]
    return ConceptFactorization(concepts=w, heatmaps=heatmaps.astype(np.float32),
                                raw=raw.astype(np.float32), concept_scores=scores,
                                offset=offset.astype(np.float32), error=error,
                                layer=reader.layer_names)
