"""IS-CAM (Naidu, Ghosh, Maurya, Nayak K, Kundu, 2020, arXiv:2010.03023)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import checks, perturb
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import ExplainerOptions
from tf_gradcam.methods.scorecam import ScoreCAM, _mask

if TYPE_CHECKING:
    from typing_extensions import Unpack

SCHEDULES = ("linear", "cumulative")


class ISCAM(ScoreCAM):
    r"""IS-CAM: Score-CAM with each channel's score integrated along the masked input's path.

    .. math::
        w_k^c = \frac{1}{N}\sum_{i=1}^{N} f^c\big(\alpha_i\, X \circ H^k\big) \;[\,- f^c(X_b)\,],
        \qquad L^c = \mathrm{ReLU}\Big(\sum_k w_k^c A^k\Big)

    a Riemann sum of the score from the baseline (``X \circ 0``) to the masked input, in the
    spirit of Integrated Gradients; :math:`H^k`, :math:`f^c` and the optional baseline are
    :class:`ScoreCAM`'s, and ``steps`` :math:`N = 10` (torchcam's default).

    ``schedule="linear"`` (default): :math:`\alpha_i = i / N`, the straight path, ending at the
    masked input itself, so ``steps=1`` is Score-CAM. ``schedule="cumulative"``: the paper's
    formula as torchcam and the authors' code implement it,
    :math:`M_i = \sum_{j \le i} \tfrac{j}{N}\,X \circ H^k`, i.e.
    :math:`\alpha_i = i(i+1)/(2N)`, which reaches :math:`(N+1)/2` times the masked input (5.5
    for ten steps), far beyond it; offered to reproduce them.

    Paper: Rakshit Naidu, Ankita Ghosh, Yash Maurya, Shamanth R Nayak K, Soumya Snigdha Kundu,
    "IS-CAM: Integrated Score-CAM for axiomatic-based explanations", arXiv:2010.03023 (2020).
    Deviation: tf_gradcam's Score-CAM probability, without torchcam's softmax over channels.
    Cost: :math:`N K` times ``steps`` masked forward passes; ``max_channels`` cuts the
    :math:`K`.
    """

    name = "iscam"
    aliases = ("integratedscorecam",)

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, steps: int = 10,
                 schedule: str = "linear", perturbation_batch_size: int = perturb.DEFAULT_CHUNK,
                 baseline: bool = False, max_channels: int | None = None,
                 **options: Unpack[ExplainerOptions]) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
        super().__init__(model, layer, perturbation_batch_size=perturbation_batch_size,
                         baseline=baseline, max_channels=max_channels, **options)
        self.copies = checks.positive_int(steps, "steps")
        self.schedule = schedule

    def scales(self) -> np.ndarray:
        """``[steps]`` the :math:`\\alpha_i`."""
        i = np.arange(1, self.copies + 1, dtype=np.float64)
        return i / self.copies if self.schedule == "linear" else i * (i + 1) / (2 * self.copies)

    def perturbation(self, ctx: Context) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        alphas = tf.constant(self.scales(), tf.float32)
        return lambda x, masks, copy: _mask(x, masks * tf.reshape(
            tf.gather(alphas, copy), [-1] + [1] * (masks.shape.rank - 1)))
