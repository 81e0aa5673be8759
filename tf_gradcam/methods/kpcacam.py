"""KPCA-CAM (Karmani et al., IEEE MMSP 2024, arXiv:2410.00267)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from tf_gradcam.choose.tensors import LayerSpec
from tf_gradcam.engine import pca
from tf_gradcam.engine.context import Context
from tf_gradcam.engine.explainer import Explainer, ExplainerOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")


class KPCACAM(Explainer):
    r"""KPCA-CAM: the activations projected on their first kernel principal component.

    Per sample the :math:`P` positions are the points and the :math:`K` channels their
    features: :math:`x_p` is row :math:`p` of the activations, centred over positions. With the
    kernel matrix :math:`\mathcal K_{pq} = \kappa(x_p, x_q)`, centred in feature space
    (:math:`\tilde{\mathcal K} = \mathcal K - J\mathcal K - \mathcal K J + J\mathcal K J`,
    :math:`J = \tfrac1P \mathbf 1 \mathbf 1^\top`) and its top eigenpair
    :math:`(\lambda_1, u_1)`, the positions' projections on the first component are
    :math:`z = \sqrt{\max(\lambda_1, 0)}\, u_1` (scikit-learn's ``KernelPCA.fit_transform``), and

    .. math::
        L = \mathrm{ReLU}(\sigma z), \qquad
        \sigma = \operatorname{sign} \operatorname{cov}\Big(z,\ \tfrac1K \textstyle\sum_k A^k\Big)

    Kernels (``gamma=None`` means :math:`1/K`): ``"sigmoid"``
    :math:`\tanh(\gamma x^\top y + c_0)` (the default, as the authors' port to
    pytorch-grad-cam), ``"rbf"`` :math:`\exp(-\gamma\|x-y\|^2)`, ``"poly"``
    :math:`(\gamma x^\top y + c_0)^d`, ``"linear"`` :math:`x^\top y` (then the map is exactly
    :class:`EigenCAM`'s) and ``"cosine"`` :math:`x^\top y / \|x\|\|y\|`; ``coef0`` :math:`c_0 = 1`
    and ``degree`` :math:`d = 3` are scikit-learn's defaults, which pytorch-grad-cam uses.

    The eigenvector's sign is arbitrary. scikit-learn (and so pytorch-grad-cam) makes its
    largest entry positive, which can put the map on the background; here the sign makes it
    covary with the mean activation, as :class:`EigenCAM`. A non-positive top eigenvalue (the
    sigmoid kernel is not positive semi-definite), a constant layer or a single position give
    an all-zero map. The kernel is ``[P, P]`` per sample and solved by a dense ``eigh``: fine
    for 2D layers (14 x 14 is 196 positions), heavy for large 3D ones.

    Class-agnostic and gradient-free: ``targets`` only choose the reported score; no
    ``counterfactual``, and no ``eigen_smooth`` (it already is a principal component).
    """

    name = "kpcacam"
    uses_gradients = False
    eigen_smooth_defined = False

    def __init__(self, model: keras.Model, layer: LayerSpec = None, *, kernel: str = "sigmoid",
                 gamma: float | None = None, coef0: float = 1.0, degree: int = 3,
                 **options: Unpack[ExplainerOptions]) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"gamma must be positive (or None for 1 / channels), got {gamma!r}.")
        self.kernel, self.gamma, self.coef0, self.degree = kernel, gamma, float(coef0), degree
        super().__init__(model, layer, **options)

    def kernel_matrix(self, x: tf.Tensor) -> tf.Tensor:
        """``[M, P, P]`` kernel of the rows of ``x [M, P, K]``."""
        gamma = 1.0 / x.shape[-1] if self.gamma is None else self.gamma
        if self.kernel == "cosine":
            x = tf.math.l2_normalize(x, axis=-1)  # a zero row stays zero
        dots = tf.matmul(x, x, transpose_b=True)
        if self.kernel in ("linear", "cosine"):
            return dots
        if self.kernel == "sigmoid":
            return tf.tanh(gamma * dots + self.coef0)
        if self.kernel == "poly":
            return tf.pow(gamma * dots + self.coef0, float(self.degree))
        norms = tf.linalg.diag_part(dots)
        squared = tf.nn.relu(norms[:, :, None] + norms[:, None, :] - 2.0 * dots)
        return tf.exp(-gamma * squared)

    def combine(self, ctx: Context, weights: None) -> tf.Tensor:
        acts = ctx.activations
        shape = tf.shape(acts)
        flat = tf.reshape(acts, tf.stack([shape[0], -1, shape[-1]]))  # [M, P, K]
        x = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        gram = self.kernel_matrix(x)
        centred = gram - tf.reduce_mean(gram, axis=1, keepdims=True) - tf.reduce_mean(
            gram, axis=2, keepdims=True) + tf.reduce_mean(gram, axis=[1, 2], keepdims=True)
        values, vectors = tf.linalg.eigh(centred)  # ascending
        top = tf.sqrt(tf.nn.relu(values[:, -1:])) * vectors[:, :, -1]  # [M, P]
        signed = pca.orient(top, tf.reduce_mean(flat, axis=-1))
        return tf.nn.relu(tf.reshape(signed, shape[:-1]))
