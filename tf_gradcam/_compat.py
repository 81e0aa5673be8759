"""Fail early, with the fix, when TensorFlow does not import, TensorFlow or Keras is older than
the supported floor, or Keras runs on another backend.

Importing this module imports TensorFlow and Keras; :mod:`tf_gradcam._install` (run at
``import tf_gradcam``) has already said what to install when there is no TensorFlow at all.
"""

from __future__ import annotations

from tf_gradcam._install import (
    KERAS_FLOOR, TENSORFLOW_FLOOR, cpu_distribution, require_tensorflow, version_tuple,
)


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as exc:
        text = " ".join(str(exc).split())
        hint = ""
        if "numpy" in text.lower():
            hint = (" TensorFlow 2.16 and 2.17 need numpy 1 (pip install \"numpy<2\"); "
                    "TensorFlow 2.18 and newer accept numpy 2.")
        raise ImportError(
            f"tf_gradcam could not import TensorFlow: {type(exc).__name__}: {text}.{hint}"
        ) from exc
    return tf


require_tensorflow()
tf = _import_tensorflow()
import keras  # noqa: E402


def check_backend() -> None:
    """Raise an ImportError with the fix unless TensorFlow and Keras are new enough and Keras
    runs on the TensorFlow backend."""
    floor = ".".join(map(str, TENSORFLOW_FLOOR))
    if version_tuple(tf.__version__)[:2] < TENSORFLOW_FLOOR:
        raise ImportError(
            f"tf_gradcam needs TensorFlow >= {floor}, but this Python has {tf.__version__}. "
            f'Upgrade it, e.g. pip install -U "{cpu_distribution()}>={floor}".'
        )
    if version_tuple(keras.__version__)[:2] < KERAS_FLOOR:
        keras_floor = ".".join(map(str, KERAS_FLOOR))
        raise ImportError(
            f"tf_gradcam needs Keras >= {keras_floor}, but this Python has {keras.__version__}. "
            f'Upgrade it: pip install -U "keras>={keras_floor}".'
        )
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"tf_gradcam needs Keras on the TensorFlow backend, but Keras is using {backend!r}. "
            "Set the environment variable KERAS_BACKEND=tensorflow before importing keras "
            "(or set \"backend\": \"tensorflow\" in ~/.keras/keras.json)."
        )
