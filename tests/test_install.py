"""Packaging: one TensorFlow, the floor that pyproject.toml declares, clear errors without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tf_gradcam import _compat, _install

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        return f.read()


def _table(text: str, header: str) -> str:
    start = text.index(header)
    end = text.find("\n[", start + len(header))
    return text[start: end if end >= 0 else len(text)]


def test_no_tensorflow_distribution_is_a_hard_dependency() -> None:
    # A hard tensorflow requirement would install the full wheel over tensorflow-cpu, a CUDA or
    # a vendor build; TensorFlow comes from an extra (cpu, tensorflow, and-cuda) instead.
    deps = re.search(r"^dependencies = \[(.*?)^\]", _pyproject(), re.M | re.S).group(1)
    assert "tensorflow" not in deps
    extras = _table(_pyproject(), "[project.optional-dependencies]")
    for extra in ("cpu", "tensorflow", "and-cuda"):
        assert re.search(rf"^{extra} = \[", extras, re.M), extra


def test_declared_floors_are_the_checked_floors() -> None:
    text = _pyproject()
    tf_floor = ".".join(map(str, _install.TENSORFLOW_FLOOR))
    keras_floor = ".".join(map(str, _install.KERAS_FLOOR))
    assert f'"keras>={keras_floor}"' in text
    extras = _table(text, "[project.optional-dependencies]")
    pins = re.findall(r'"tensorflow(?:-cpu|\[and-cuda\])?>=([0-9.]+)', extras)
    assert pins and set(pins) == {tf_floor}
    # .ci/run's floor environment installs exactly those releases.
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert re.search(rf"tensorflow-cpu=={re.escape(tf_floor)}\.\d+", ci)
    assert re.search(rf"keras=={re.escape(keras_floor)}\.\d+", ci)


def test_classifiers_match_requires_python() -> None:
    text = _pyproject()
    versions = re.findall(r'"Programming Language :: Python :: 3\.(\d+)"', text)
    low = re.search(r'requires-python = ">=3\.(\d+)"', text).group(1)
    assert versions and min(versions, key=int) == low


def test_import_without_tensorflow_says_what_to_install() -> None:
    # sys.modules["tensorflow"] = None makes TensorFlow unfindable, as in an environment
    # that never installed it.
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "try:\n    import tf_gradcam\nexcept ImportError as exc:\n    print(exc)\n"
            "else:\n    print('imported')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith("tf_gradcam needs TensorFlow, which is not installed")
    assert 'pip install "tensorflow' in message and '.[cpu]' in message


def test_too_old_tensorflow_or_keras_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(_compat.tf, "__version__", "2.15.1")
    with pytest.raises(ImportError, match=r"TensorFlow >= 2\.16.*2\.15\.1"):
        _compat.check_backend()
    monkeypatch.undo()
    monkeypatch.setattr(_compat.keras, "__version__", "3.7.0")
    with pytest.raises(ImportError, match=r"Keras >= 3\.8.*3\.7\.0"):
        _compat.check_backend()


def test_version_tuple() -> None:
    assert _install.version_tuple("2.16.2") == (2, 16, 2)
    assert _install.version_tuple("2.21.0rc1") == (2, 21, 0)
    assert _install.version_tuple("3.8.0.dev2025") == (3, 8, 0)
    assert _install.version_tuple("nightly") == ()
