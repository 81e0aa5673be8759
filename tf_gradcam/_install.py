"""Is there a TensorFlow? Answered at ``import tf_gradcam`` without importing it.

tf_gradcam declares no TensorFlow distribution as a hard dependency (see pyproject.toml), so a
missing one is found here, and the message says what to install. Nothing here imports
TensorFlow or Keras: ``import tf_gradcam`` stays cheap. :mod:`tf_gradcam._compat` does the real
imports and the version and backend checks.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import sys

#: The oldest releases the package supports; .ci/run tests exactly these in its floor environment.
TENSORFLOW_FLOOR = (2, 16)
KERAS_FLOOR = (3, 8)

__all__ = ["KERAS_FLOOR", "TENSORFLOW_FLOOR", "cpu_distribution", "install_hint",
           "require_tensorflow", "version_tuple"]


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numeric parts of a version string: ``"2.16.2rc0"`` -> ``(2, 16, 2)``."""
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def cpu_distribution() -> str:
    """The TensorFlow distribution that is the CPU build on this platform (as the ``cpu``
    extra in pyproject.toml chooses it)."""
    machine = platform.machine().lower()
    if (sys.platform == "linux" and machine == "x86_64") or (
            sys.platform == "win32" and machine == "amd64"):
        return "tensorflow-cpu"
    return "tensorflow"


def install_hint() -> str:
    floor = ".".join(map(str, TENSORFLOW_FLOOR))
    cpu = cpu_distribution()
    return (
        f'Install one TensorFlow >= {floor} into this Python ({sys.executable}): '
        f'pip install "{cpu}>={floor}" (CPU), or pip install "tensorflow[and-cuda]>={floor}" '
        f'(NVIDIA GPU, Linux); from a checkout of tf_gradcam, pip install -e ".[cpu]" does '
        f"the first."
    )


def require_tensorflow() -> None:
    """Raise an ImportError that says what to install when no ``tensorflow`` package can be
    found. Cheap: it looks the package up without importing it."""
    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise ImportError(
            "tf_gradcam needs TensorFlow, which is not installed (tf_gradcam does not install "
            "it itself, so that a CPU, CUDA or vendor build you chose stays the only one). "
            + install_hint()
        )
