"""Property-based: whatever inputs and targets an explainer is given, it is never silently wrong.

Over input shapes (right, a missing or extra axis, a wrong size, channels-first), dtypes,
value ranges (unit, pixels, signed, huge, zeros, NaN, infinity, token ids inside and outside the
vocabulary, fractional ids) and target forms (None, an int, one per sample, ``[N, k]``,
``top_k``, a callable, a ready-made target, and wrong ones), every call either returns finite
maps in ``[0, 1]``, one per sample, or raises a ValueError or TypeError whose message names the
argument at fault; and the model's weights and predictions are the same afterwards.

One module-scoped tiny model and explainer per input kind (an image, a 1D sequence, token ids,
two inputs); few examples, derandomized, so the file runs in well under a minute and the same
cases run on every CI run.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tf_gradcam as tfg  # noqa: E402

L = keras.layers
CLASSES = 3
VOCAB = 20

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _image():
    inp = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    return keras.Model(inp, L.Dense(CLASSES)(L.GlobalAveragePooling2D()(a)))


def _sequence():
    inp = keras.Input((10, 2), name="sequence")
    a = L.Conv1D(4, 3, activation="relu", name="conv")(inp)
    return keras.Model(inp, L.Dense(CLASSES)(L.GlobalAveragePooling1D()(a)))


def _tokens():
    inp = keras.Input((12,), dtype="int32", name="tokens")
    a = L.Conv1D(4, 3, activation="relu", name="conv")(L.Embedding(VOCAB, 4)(inp))
    return keras.Model(inp, L.Dense(CLASSES)(L.GlobalAveragePooling1D()(a)))


def _two_inputs():
    img, meta = keras.Input((8, 8, 3), name="image"), keras.Input((4,), name="meta")
    a = L.Conv2D(4, 3, activation="relu", name="conv")(img)
    joined = L.Concatenate()([L.GlobalAveragePooling2D()(a), meta])
    return keras.Model([img, meta], L.Dense(CLASSES)(joined))


BUILDERS = {"image": _image, "sequence": _sequence, "tokens": _tokens, "two_inputs": _two_inputs}


class Case:
    """A model, its explainer, and what the model was before any call."""

    def __init__(self, kind: str):
        keras.utils.set_random_seed(1)
        self.kind = kind
        self.model = BUILDERS[kind]()
        self.explainer = tfg.GradCAM(self.model, "conv")
        self.weights = [w.copy() for w in self.model.get_weights()]
        rng = np.random.default_rng(0)
        self.probe = [self._valid(rng, tuple(t.shape[1:]), t.dtype, 2) for t in self.model.inputs]
        self.predictions = np.asarray(self.model(self.probe if len(self.probe) > 1
                                                 else self.probe[0]))

    def _valid(self, rng, shape, dtype, n):
        if "int" in str(dtype):
            return rng.integers(0, VOCAB, (n, *shape)).astype(np.int32)
        return rng.random((n, *shape), dtype=np.float32)

    def unchanged(self) -> None:
        for before, now in zip(self.weights, self.model.get_weights()):
            np.testing.assert_array_equal(before, now)
        again = np.asarray(self.model(self.probe if len(self.probe) > 1 else self.probe[0]))
        np.testing.assert_array_equal(self.predictions, again)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def case(request) -> Case:
    return Case(request.param)


# ---------------------------------------------------------------- strategies
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8]
RANGES = ["unit", "pixels", "signed", "huge", "zeros", "nan", "inf", "ids", "out_of_vocab",
          "fractional"]
SHAPES = ["right", "right", "right", "no_batch", "extra_axis", "wrong_size", "channels_first",
          "empty"]


def _values(rng, shape, value_range):
    if value_range == "unit":
        return rng.random(shape)
    if value_range == "pixels":
        return rng.integers(0, 256, shape).astype(np.float64)
    if value_range == "signed":
        return rng.uniform(-1, 1, shape)
    if value_range == "huge":
        return rng.uniform(-1e6, 1e6, shape)
    if value_range == "zeros":
        return np.zeros(shape)
    if value_range in ("nan", "inf"):
        x = rng.random(shape)
        if x.size:
            x.flat[rng.integers(0, x.size)] = np.nan if value_range == "nan" else -np.inf
        return x
    if value_range == "ids":
        return rng.integers(0, VOCAB, shape).astype(np.float64)
    if value_range == "out_of_vocab":
        x = rng.integers(0, VOCAB, shape).astype(np.float64)
        if x.size:
            x.flat[rng.integers(0, x.size)] = VOCAB + 3
        return x
    return rng.integers(0, VOCAB, shape) + 0.5  # fractional


def _shape(form, n, sample):
    if form == "no_batch":
        return sample
    if form == "extra_axis":
        return (n, *sample, 1)
    if form == "wrong_size":
        return (n, sample[0] + 1, *sample[1:])
    if form == "channels_first" and len(sample) >= 2:
        return (n, sample[-1], *sample[:-1])
    if form == "empty":
        return (0, *sample)
    return (n, *sample)


@st.composite
def inputs(draw, model):
    """One array per model input (a list for two inputs), each with its own shape form,
    dtype and value range."""
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arrays = []
    for tensor in model.inputs:
        form = draw(st.sampled_from(SHAPES))
        dtype = draw(st.sampled_from(DTYPES))
        value_range = draw(st.sampled_from(RANGES))
        x = _values(rng, _shape(form, n, tuple(tensor.shape[1:])), value_range)
        if np.issubdtype(dtype, np.integer):
            x = np.nan_to_num(x, nan=0, posinf=0, neginf=0)
            info = np.iinfo(dtype)
            x = np.clip(x, info.min, info.max)
        arrays.append(x.astype(dtype))
    return (arrays if len(arrays) > 1 else arrays[0]), n


def _first_logit(outputs):
    return outputs[:, 0]


TARGET_FORMS = ["none", "int", "per_sample", "per_sample_wrong_length", "k_per_sample", "top_k",
                "callable", "readymade", "float", "string", "nested"]


@st.composite
def targets(draw, n):
    """``(targets, top_k)`` in one of the forms the explainers take, or a wrong one."""
    form = draw(st.sampled_from(TARGET_FORMS))
    if form == "none":
        return None, None
    if form == "int":
        return draw(st.integers(-2, CLASSES + 1)), None
    if form == "per_sample":
        return draw(st.lists(st.integers(-1, CLASSES), min_size=n, max_size=n)), None
    if form == "per_sample_wrong_length":
        size = draw(st.sampled_from([n - 1, n + 1]))
        return draw(st.lists(st.integers(0, CLASSES - 1), min_size=size, max_size=size)), None
    if form == "k_per_sample":
        k = draw(st.integers(1, 3))
        values = draw(st.lists(st.integers(-1, CLASSES), min_size=n * k, max_size=n * k))
        return np.asarray(values, np.int64).reshape(n, k), None
    if form == "top_k":
        return None, draw(st.integers(0, CLASSES + 1))
    if form == "callable":
        return _first_logit, None
    if form == "readymade":
        return tfg.targets.Class(draw(st.integers(0, CLASSES - 1))), None
    if form == "float":
        return draw(st.sampled_from([1.5, [0.5, 1.0]])), None
    if form == "string":
        return "cat", None
    return [[0, [1]]], None  # nested


#: What an error message must mention to name the argument at fault.
NAMES_AN_ARGUMENT = re.compile(r"input|target|top_k|sample|class", re.IGNORECASE)


# ---------------------------------------------------------------- the property
@SETTINGS
@given(data=st.data())
def test_every_call_is_right_or_refused_by_name(case, data) -> None:
    x, n = data.draw(inputs(case.model), label="inputs")
    target, top_k = data.draw(targets(n), label="targets")
    try:
        result = case.explainer(x, target, top_k=top_k)
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        event(f"refused: {type(exc).__name__}")  # pytest --hypothesis-show-statistics
        assert NAMES_AN_ARGUMENT.search(message), f"{type(exc).__name__}: {message}"
        assert len(message) < 1000
    else:
        event("explained")
        heat = np.asarray(result.heatmaps)
        assert heat.shape[0] == len(np.asarray(x[0] if isinstance(x, list) else x))
        assert np.all(np.isfinite(heat)), "non-finite heatmap"
        assert heat.min() >= 0.0 and heat.max() <= 1.0
        assert np.all(np.isfinite(np.asarray(result.scores)))
    case.unchanged()


def test_valid_calls_do_succeed(case) -> None:
    # The property above would pass if every call raised: the plain forms must work.
    x = case.probe if len(case.probe) > 1 else case.probe[0]
    for target, top_k in [(None, None), (1, None), ([0, 2], None), (None, 2), (_first_logit, None)]:
        heat = case.explainer(x, target, top_k=top_k).heatmaps
        assert np.all(np.isfinite(heat)) and heat.min() >= 0 and heat.max() <= 1
    case.unchanged()
