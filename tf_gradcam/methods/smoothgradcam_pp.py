"""Smooth Grad-CAM++ (Omeiza, Speakman, Cintas, Weldemariam, 2019, arXiv:1908.01224)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import checks
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions
from tf_gradcam.methods.gradcam_pp import closed_form_weights

if TYPE_CHECKING:
    from typing_extensions import Unpack


class SmoothGradCAMPlusPlus(Explainer):
    r"""Smooth Grad-CAM++: Grad-CAM++ from gradients averaged over noisy copies of the input.

    With :math:`G_m = \partial S^c / \partial A` at the input plus noise
    :math:`\varepsilon_m \sim \mathcal N(0, \sigma^2)`, :math:`m = 1..n`, and
    :math:`D_j = \frac1n \sum_m G_m^j`:

    .. math::
        \alpha^{kc}_{p} = \frac{D_{2,pk}}{2 D_{2,pk} + \sum_{q} A^k_{q}\, D_{3,pk}}, \qquad
        w^c_k = \sum_{p} \alpha^{kc}_{p}\, \mathrm{ReLU}(D_{1,pk}), \qquad
        L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)

    :class:`GradCAMPlusPlus`'s closed form on SmoothGrad averages of the derivative terms,
    with :math:`A` the clean input's activations (as torchcam). All :math:`n` noisy copies of
    the batch run as one batch of :math:`n B` rows (``ctx.gradients_at``): memory grows with
    ``num_samples`` times the batch size, so lower ``batch_size`` for large models. The class
    is fixed by the clean input, not re-chosen per copy.

    Paper: Daniel Omeiza, Skyler Speakman, Celia Cintas, Komminist Weldemariam, "Smooth
    Grad-CAM++: An Enhanced Inference Level Visualization Technique for Deep Convolutional
    Neural Network Models", arXiv:1908.01224 (2019). Choices and deviations:

    * the numerator of :math:`\alpha` is :math:`D_2` (the paper prints :math:`D_1`, which
      torchcam reads as a typo), and :math:`\mathrm{ReLU}(D_1)` is the average gradient
      (torchcam uses the last noisy copy's);
    * the :math:`\exp(S)` factor of Grad-CAM++ is dropped, as in every port: it would
      overflow, and it differs per copy, so the copies weigh equally;
    * ``noise_level`` :math:`= 0.15` and ``num_samples`` :math:`n = 25`: :math:`\sigma` is 15 %
      of each sample's input range, :math:`\max x - \min x` (SmoothGrad's convention; the
      paper's own values were not available to us; torchcam uses 4 copies of absolute
      std 0.3). The noise patterns are drawn once per call from ``seed`` and shared by the
      samples, each scaled by its own range: reproducible, whatever the batch.

    With ``num_samples=1, noise_level=0`` it is Grad-CAM++. Only the input the map is drawn
    over (a float input) gets noise; ``counterfactual=True`` explains :math:`-S^c`.
    """

    name = "smoothgradcam++"
    aliases = ("smoothgradcampp",)

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, num_samples: int = 25,
                 noise_level: float = 0.15, seed: int = 0,
                 **options: Unpack[ExplainerOptions]) -> None:
        if not noise_level >= 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}.")
        self.num_samples = checks.positive_int(num_samples, "num_samples")
        self.noise_level, self.seed = float(noise_level), seed
        super().__init__(model, layer, **options)
        spec = self.input_specs[self.spatial_input]
        if not spec.dtype.is_floating:
            raise ValueError(
                f"Smooth Grad-CAM++ adds noise to input {spec.name!r}, which holds "
                f"{spec.dtype.name} values (token ids?); use Grad-CAM++ on it.")

    def channel_weights(self, ctx: Context) -> tf.Tensor:
        n, x_at = self.num_samples, self.spatial_input
        x = ctx.inputs[x_at]
        rows = tf.shape(x)[0]
        axes = list(range(1, x.shape.rank))
        span = tf.cast(tf.reduce_max(x, axis=axes) - tf.reduce_min(x, axis=axes), tf.float32)
        noise = tf.random.stateless_normal(tf.concat([[n], tf.shape(x)[1:]], 0),
                                           seed=[self.seed, 0])  # [n, ...] shared by the rows
        scale = tf.reshape(self.noise_level * span, [1, -1] + [1] * (x.shape.rank - 1))
        noisy = tf.cast(x, tf.float32)[None] + noise[:, None] * scale  # [n, M, ...]
        inputs = [tf.tile(t, [n] + [1] * (t.shape.rank - 1)) for t in ctx.inputs]
        inputs[x_at] = tf.cast(tf.reshape(noisy, tf.shape(inputs[x_at])), x.dtype)
        _, grads = ctx.gradients_at(inputs, tf.tile(tf.range(rows), [n]))  # copy-major rows
        grads = tf.reshape(grads, tf.concat([[n], tf.shape(ctx.activations)], 0))
        g2 = tf.square(grads)
        return closed_form_weights(ctx.activations, tf.reduce_mean(grads, axis=0),
                                   tf.reduce_mean(g2, axis=0), tf.reduce_mean(g2 * grads, axis=0))
