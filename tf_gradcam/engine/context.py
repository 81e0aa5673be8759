"""What a method sees for one batch: :class:`Context`, and the engine services it offers.

A method's hooks (``channel_weights``, ``combine``, ...) receive a :class:`Context` inside the
compiled step. Its rows are the explained (sample, class) pairs: ``N`` rows for one class per
sample, ``N * k`` (sample-major) for ``k`` classes per sample. Methods that need more than one
forward pass never call the engine's internals; they ask the context:

* :meth:`Context.rescore_inputs`: score modified inputs (Score-CAM's masked images) for the
  rows' targets;
* :meth:`Context.rescore_activations`: replace the target's activations (Ablation-CAM's zeroed
  channels) and run only the layers after the target, every other tensor read from the batch's
  one forward pass;
* :meth:`Context.outputs_with_activations`: the same, returning the model's outputs (every
  class's score) instead of the rows' scores;
* :meth:`Context.gradients_at`: the target's activations and gradients for modified inputs
  (SmoothGrad's noisy copies);
* :meth:`Context.input_gradients`: the score's gradient at the input, under extra overrides
  (guided ReLUs), for methods that also explain pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import InitVar, dataclass, field
from typing import Any, Callable, Protocol

import tensorflow as tf


class Services(Protocol):
    """What the engine provides behind a :class:`Context` (see :mod:`tf_gradcam.engine.forward`)."""

    def rescore_inputs(self, inputs: list, rows: tf.Tensor, probability: bool) -> tf.Tensor: ...

    def rescore_activations(self, transform: Callable, rows: tf.Tensor,
                            probability: bool) -> tf.Tensor: ...

    def input_gradients(self, overrides: dict) -> tf.Tensor: ...

    def outputs_with_activations(self, transform: Callable, rows: tf.Tensor) -> Any: ...

    def gradients_at(self, inputs: list, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]: ...


@dataclass
class Context:
    """What a method's hooks see for one batch, inside the compiled step.

    Shapes (``M`` rows, ``S`` the target's 1 to 3 spatial axes, ``K`` its channels):
    ``activations`` and ``gradients`` ``[M, *S, K]`` float32 (``gradients`` is ``None`` for a
    method without them); ``targets`` ``[M]`` int32, the class explained (-1 where a callable
    chose the score); ``scores`` ``[M]`` float32; ``inputs`` one ``[M, ...]`` tensor per model
    input; ``outputs`` the model's (scored) outputs for those rows.
    """

    inputs: list
    activations: tf.Tensor
    gradients: tf.Tensor | None
    targets: tf.Tensor
    scores: tf.Tensor
    outputs: Any
    extras: dict = field(default_factory=dict)
    services: Services | None = None
    #: ``d^2 S / dA^2 . A`` for methods that set ``uses_hessian`` (ShapleyCAM), else ``None``.
    hessian_activations: tf.Tensor | None = None
    # Accepted for older callers, unused: the engine's services replaced them.
    score_fn: InitVar[Any] = None
    target_arg: InitVar[Any] = None

    def __post_init__(self, score_fn: Any, target_arg: Any) -> None:
        if score_fn is not None:
            warnings.warn("Context(score_fn=...) is unused; methods rescore through "
                          "ctx.rescore_inputs / ctx.rescore_activations.", DeprecationWarning,
                          stacklevel=3)

    @property
    def spatial_axes(self) -> list[int]:
        return list(range(1, self.activations.shape.rank - 1))

    def _services(self) -> Services:
        if self.services is None:
            raise RuntimeError("This Context was built by hand: it has no engine behind it.")
        return self.services

    def rescore_inputs(self, inputs: list, rows: tf.Tensor, *, probability: bool = False
                       ) -> tf.Tensor:
        """``[R]`` float32 scores of modified inputs: ``inputs`` holds ``R`` rows per model
        input, row ``i`` a modified copy of this context's row ``rows[i]``, scored for that
        row's target (``probability=True``: as a probability, see :meth:`probability`)."""
        return self._services().rescore_inputs(inputs, rows, probability)

    def rescore_activations(self, transform: Callable[[tf.Tensor], tf.Tensor], rows: tf.Tensor,
                            *, probability: bool = False) -> tf.Tensor:
        """``[R]`` float32 scores with the target's activations of rows ``rows`` replaced by
        ``transform(activations [R, *S, K]) -> [R, *S, K]``; only the layers after the target
        are computed."""
        return self._services().rescore_activations(transform, rows, probability)

    def outputs_with_activations(self, transform: Callable[[tf.Tensor], tf.Tensor],
                                 rows: tf.Tensor) -> Any:
        """The model's (scored) outputs, ``R`` rows, with the target's activations of rows
        ``rows`` replaced as in :meth:`rescore_activations`: every class's score at once (Deep
        Feature Factorization scores its concepts with them)."""
        return self._services().outputs_with_activations(transform, rows)

    def gradients_at(self, inputs: list, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(activations, gradients)`` ``[R, *S, K]`` float32 of the target for modified
        inputs (row ``i`` a copy of row ``rows[i]``, e.g. a noisy one for SmoothGrad), scored
        for that row's target: one more forward and backward pass of ``R`` rows."""
        return self._services().gradients_at(inputs, rows)

    def input_gradients(self, overrides: dict | None = None) -> tf.Tensor:
        """``[M, *input shape]`` float32: d score / d (the spatial input), one more forward and
        backward pass with ``overrides`` (``id(op) -> fn(call, *args, **kwargs)``)."""
        return self._services().input_gradients(overrides or {})
