"""What the subcommands share: the one-line error, quiet TensorFlow, loading a model."""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_ERROR = 2


class CLIError(Exception):
    """An expected failure, reported as one line without a traceback."""


def quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the CLI's output;
    # respect the user's own setting if there is one.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def require_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{what} is a directory, not a file: {path}")


def load_model(path: str):
    require_file(path, "model file")
    quiet_tensorflow()
    import keras

    try:
        # compile=False: no optimizer or loss is needed to explain, and custom losses
        # would otherwise make loading fail.
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here
        raise CLIError(f"could not load model {path}: {one_line(exc)}") from None


