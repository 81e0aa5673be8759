"""Fail early, with the fix, when Keras runs on a backend this package cannot use."""

from __future__ import annotations

import keras


def check_backend() -> None:
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"tf_gradcam needs Keras on the TensorFlow backend, but Keras is using {backend!r}. "
            "Set the environment variable KERAS_BACKEND=tensorflow before importing keras "
            "(or set \"backend\": \"tensorflow\" in ~/.keras/keras.json)."
        )
