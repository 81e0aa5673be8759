"""The one input checker: what the model is given, checked before anything runs.

The NumPy path (:meth:`InputChecker.arrays`: the explainers, the callback) and the in-graph
path (:meth:`InputChecker.tensors`: ``explain_dataset`` under a ``tf.distribute`` strategy,
where elements are tensors inside a ``tf.function``) share the same rules and the same
messages: shapes (with hints for a missing batch or channel axis, channels-first images, a list
of single images), NaN and infinity, integer inputs (token ids) given as fractional floats.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.engine import checks


@dataclass(frozen=True)
class Expectation:
    """What the model does first with one input, when that says what the input must hold.

    Attributes:
        vocabulary: ``(layer name, input_dim)`` of an ``Embedding`` reading the input directly:
            token ids must lie in ``[0, input_dim)``.
        pixels: ``(layer name, what it computes)`` of an in-model rescaling or normalisation
            that expects pixel values in ``[0, 255]`` (``Rescaling(1/255)``,
            ``Normalization(mean=123.7, ...)``).
    """

    vocabulary: tuple[str, int] | None = None
    pixels: tuple[str, str] | None = None


def _first_ops(cat: Any, root: Any, depth: int = 3) -> list:
    """The ops that read ``root`` first, through casts and nested models' boundaries."""
    found, frontier = [], [root]
    for _ in range(depth):
        nxt = []
        for value in frontier:
            for call in cat.consumers.get(id(value), []):
                if type(call.op).__name__ in ("Cast", "InputLayer"):
                    nxt.extend(call.outputs)
                else:
                    found.append(call.op)
        frontier = nxt
    return found


def _expects_pixels(op: Any) -> str | None:
    if isinstance(op, keras.layers.Rescaling):
        scale = float(np.max(np.abs(np.asarray(op.scale, np.float64))))
        if scale <= 1 / 100:
            return f"x * {scale:.4g} + {np.asarray(op.offset, np.float64).mean():.4g}"
    if isinstance(op, keras.layers.Normalization) and getattr(op, "mean", None) is not None:
        mean = np.asarray(keras.ops.convert_to_numpy(op.mean), np.float64)
        if mean.size and np.max(np.abs(mean)) >= 10:
            return f"(x - {np.round(mean.reshape(-1), 1).tolist()}) / std"
    return None


def expectations(model: Any) -> list[Expectation]:
    """One :class:`Expectation` per model input, read off the model's first layers."""
    from tf_gradcam.choose.catalog import Catalog

    cat = Catalog(model)
    found = []
    for root in cat.roots:
        vocabulary = pixels = None
        for op in _first_ops(cat, root):
            if isinstance(op, keras.layers.Embedding) and vocabulary is None:
                vocabulary = (op.name, int(op.input_dim))
            described = _expects_pixels(op)
            if described is not None and pixels is None:
                pixels = (op.name, described)
        found.append(Expectation(vocabulary, pixels))
    return found


def nonfinite_message(name: str, samples: Sequence[int] | None = None) -> str:
    where = f" in sample(s) {list(samples)[:10]}" if samples is not None else ""
    return (f"Input {name!r} contains NaN or infinity{where}; clean or drop them before "
            "explaining (a NaN input gives a NaN map).")


def _fits(expected: tuple, shape: tuple) -> bool:
    return len(shape) == len(expected) and all(
        e is None or g is None or e == g for e, g in zip(expected, shape))


def shape_problem(name: str, shape: tuple, expected: tuple, *, stream: bool = False) -> str | None:
    """The message for an input of ``shape`` where the model expects ``expected`` (both batch
    first; ``None`` is any size), or ``None`` when it fits. ``stream``: a dataset's element."""
    if _fits(expected[1:], tuple(shape[1:])) and len(shape) == len(expected):
        return None
    hint = ""
    if len(shape) == len(expected) - 1 and _fits(expected[1:], tuple(shape)):
        hint = (" The dataset yields single samples: batch it first, e.g. dataset.batch(32)."
                if stream else " It looks like one sample: add the batch axis, e.g. x[None].")
    elif len(shape) == len(expected) - 1:
        hint = " If the channel axis is missing, add it, e.g. x[..., None]."
    elif len(shape) == len(expected) >= 4 and _fits(
            expected[1:], tuple(shape[2:]) + (shape[1],)):
        axes = (0, *range(2, len(shape)), 1)
        hint = (f" The samples look channels-first [N, C, ...]; the model is channels-last: "
                f"transpose them, e.g. np.transpose(x, {axes}).")
    return (f"Input {name!r} has shape {tuple(shape)}, but the model expects {tuple(expected)} "
            f"(batch first; None is any size).{hint}")


class InputChecker:
    """Checks and converts what a model with inputs ``specs`` (named ``names``) is given."""

    def __init__(self, specs: Sequence[tf.TensorSpec], names: Sequence[str], model_name: str,
                 expect: Sequence[Expectation] | None = None):
        self.specs = list(specs)
        self.names = list(names)
        self.model_name = model_name
        self.expect = list(expect) if expect is not None else [Expectation() for _ in specs]
        self._warned: set[int] = set()

    # ------------------------------------------------------------------ structure
    def as_list(self, inputs: Any) -> list:
        """``inputs`` (one array, a list, or a dict keyed by input name) as a list per input."""
        if isinstance(inputs, dict):
            missing = [k for k in self.names if k not in inputs]
            if missing:
                raise ValueError(
                    f"inputs dict lacks the model inputs {missing}; it has {list(inputs)}.")
            return [inputs[k] for k in self.names]
        if len(self.specs) == 1 and not isinstance(inputs, (list, tuple)):
            return [inputs]
        if isinstance(inputs, (list, tuple)) and len(inputs) == len(self.specs):
            return list(inputs)
        got = len(inputs) if isinstance(inputs, (list, tuple)) else 1
        hint = " Pass a list with one array per input."
        if len(self.specs) == 1 and got > 1 and all(
                np.ndim(x) == len(self.specs[0].shape) - 1 for x in inputs):
            hint = (f" It looks like a list of {got} single samples: stack them into one batch, "
                    "e.g. np.stack(images).")
        raise ValueError(
            f"Model {self.model_name!r} takes {len(self.specs)} input(s) "
            f"({', '.join(self.names)}); got {got}.{hint}"
        )

    # ------------------------------------------------------------------ NumPy path
    def arrays(self, inputs: Any, *, stream: bool = False) -> list[np.ndarray]:
        """Validated arrays, one per model input, cast to the input's dtype (``stream``: one
        element of a dataset, for the hints)."""
        arrays: list[np.ndarray] = []
        for spec, name, x in zip(self.specs, self.names, self.as_list(inputs)):
            x = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
            problem = shape_problem(name, x.shape, tuple(spec.shape), stream=stream)
            if problem:
                raise ValueError(problem)
            if x.shape[0] == 0:
                raise ValueError("inputs hold no samples: pass at least one.")
            if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating):
                finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
                if not finite.all():
                    raise ValueError(nonfinite_message(name, np.flatnonzero(~finite).tolist()))
                if spec.dtype.is_integer and not np.all(np.mod(x, 1) == 0):
                    raise ValueError(
                        f"Input {name!r} takes integers ({spec.dtype.name}, e.g. token ids) but "
                        "holds fractional floats; casting would truncate them silently. Pass "
                        "the integer ids themselves."
                    )
            self._against_the_model(len(arrays), name, x)
            arrays.append(x.astype(spec.dtype.as_numpy_dtype, copy=False))
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(
                f"All inputs need the same number of samples, got {[len(a) for a in arrays]}.")
        return arrays

    def _against_the_model(self, i: int, name: str, x: np.ndarray) -> None:
        """What the model's first layers say the input must hold (token ids in the vocabulary,
        pixels in [0, 255] under an in-model rescaling)."""
        expect = self.expect[i]
        if expect.vocabulary is not None and x.size:
            layer, size = expect.vocabulary
            bad = (x < 0) | (x >= size)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise ValueError(
                    f"Input {name!r} holds token id {int(x[tuple(where)])} (sample {where[0]}), "
                    f"outside the vocabulary of Embedding {layer!r} (input_dim={size}): ids must "
                    f"be in [0, {size - 1}].")
        if expect.pixels is not None and i not in self._warned and x.size and np.issubdtype(
                x.dtype, np.floating):
            lo, hi = float(x.min()), float(x.max())
            if -1.0 - 1e-6 <= lo and 0 < hi <= 1.0 + 1e-6:
                self._warned.add(i)
                layer, what = expect.pixels
                warnings.warn(
                    f"Model {self.model_name!r} rescales input {name!r} inside (layer "
                    f"{layer!r}: {what}), so it expects pixel values in [0, 255], but these "
                    f"inputs are in [{lo:.3g}, {hi:.3g}]: the maps, and even the explained "
                    "classes, change with the range. Pass the raw pixels (e.g. x * 255).",
                    UserWarning, stacklevel=checks.user_stacklevel())

    # ------------------------------------------------------------------ in-graph path
    def tensors(self, inputs: Any) -> list[tf.Tensor]:
        """The same checks on tensors inside a ``tf.function`` (shapes statically, NaN with
        ``tf.debugging``), cast to the inputs' dtypes."""
        out: list[tf.Tensor] = []
        for spec, name, t in zip(self.specs, self.names, self.as_list(inputs)):
            t = tf.convert_to_tensor(t)
            problem = shape_problem(name, tuple(t.shape), tuple(spec.shape), stream=True)
            if problem:
                raise ValueError(problem)
            if t.dtype.is_floating:
                t = tf.debugging.check_numerics(t, nonfinite_message(name))
            vocabulary = self.expect[len(out)].vocabulary
            if vocabulary is not None:
                t = tf.cast(t, spec.dtype)
                tf.debugging.assert_less(t, tf.cast(vocabulary[1], t.dtype), message=(
                    f"Input {name!r} holds a token id outside the vocabulary of Embedding "
                    f"{vocabulary[0]!r} (input_dim={vocabulary[1]})."))
            out.append(tf.cast(t, spec.dtype))
        return out
