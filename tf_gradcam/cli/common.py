"""What the subcommands share: the one-line error, quiet TensorFlow, loading a model (with its
custom objects), warnings as one line each."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from typing import Any, Sequence

EXIT_OK = 0
#: Some inputs were skipped (an unreadable image among readable ones); the rest was done.
EXIT_PARTIAL = 1
EXIT_ERROR = 2


class CLIError(Exception):
    """An expected failure, reported as one line without a traceback."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def warn(message: str) -> None:
    """One ``tf-gradcam: warning: ...`` line on stderr."""
    print(f"tf-gradcam: warning: {' '.join(message.split())}", file=sys.stderr)


def require_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{what} is a directory, not a file: {path}")


def expand_images(args: Sequence[str]) -> list[str]:
    """The image files named by ``args`` (files, directories, glob patterns); see
    :func:`tf_gradcam.data.images.image_files`. One that names nothing is a usage error."""
    from tf_gradcam.data.images import image_files

    try:
        return image_files(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def add_common_options(parser: argparse.ArgumentParser, *, custom_objects: bool = True) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up messages and warnings (hidden by "
                        "default)")
    if custom_objects:
        parser.add_argument(
            "--custom-objects", action="append", default=[], metavar="MODULE",
            help="a Python file (my_layers.py) or an importable module name (my_pkg.layers) "
            "defining the model's custom layers, losses or functions; its public Keras "
            "classes and functions are passed to load_model. May be repeated.")


# ------------------------------------------------------------------ quiet TensorFlow
def _silence_python_side() -> None:
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras, and check them (:mod:`tf_gradcam._compat`).

    Unless ``verbose``, TensorFlow's start-up lines (the absl banner, oneDNN, CUDA probing)
    are hidden: ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it, and file descriptor 2
    pointed at /dev/null while TensorFlow initialises, because TensorFlow >= 2.19 writes those
    lines from C++ before its log level applies. A failing import is reported after stderr is
    restored, with the advice to rerun with ``--verbose``.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    failure: BaseException | None = None
    if "tensorflow" not in sys.modules and not verbose:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except Exception as exc:  # reported below, once stderr works again
            failure = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    if failure is not None:
        raise CLIError(f"could not import TensorFlow: {one_line(failure)} (rerun with --verbose "
                       "to see TensorFlow's own messages)")
    try:
        from tf_gradcam import _compat

        _compat.check_backend()
    except ImportError as exc:
        raise CLIError(" ".join(str(exc).split())) from None
    if not verbose:
        _silence_python_side()


class Warnings:
    """Within the block: tf_gradcam's warnings as ``tf-gradcam: warning: ...`` lines; Keras',
    TensorFlow's and absl's hidden unless ``verbose``."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self._catcher = warnings.catch_warnings()

    def __enter__(self) -> Warnings:
        self._catcher.__enter__()
        warnings.simplefilter("default")
        if not self.verbose:
            for module in ("keras", "tensorflow", "absl", "h5py", "google"):
                warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")

        def show(message, category, filename, lineno, file=None, line=None):
            warn(str(message))

        warnings.showwarning = show
        return self

    def __exit__(self, *exc_info) -> None:
        self._catcher.__exit__(*exc_info)


# ------------------------------------------------------------------ custom objects
def _keras_bases() -> tuple:
    import keras

    return (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric,
            keras.optimizers.Optimizer, keras.optimizers.schedules.LearningRateSchedule,
            keras.initializers.Initializer, keras.regularizers.Regularizer,
            keras.constraints.Constraint)


def _load_module(spec: str):
    if spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec):
        require_file(spec, "custom objects file")
        path = os.path.abspath(spec)
        name = "tf_gradcam_custom_" + os.path.splitext(os.path.basename(path))[0]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise CLIError(f"cannot load custom objects file {spec} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        sys.path.insert(0, os.path.dirname(path))  # so that it can import its neighbours
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise CLIError(f"custom objects file {spec} failed to run: {one_line(exc)}") from None
        finally:
            sys.path.remove(os.path.dirname(path))
        return module
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise CLIError(f"cannot import custom objects module {spec!r}: {one_line(exc)} "
                       "(pass a .py file, or a module on PYTHONPATH)") from None


def custom_objects(specs: Sequence[str]) -> dict[str, Any]:
    """The public Keras-serializable classes (layers, models, losses, metrics, ...) and the
    functions defined in each module of ``specs``, by name and by registered name."""
    import keras

    bases = _keras_bases()
    found: dict[str, Any] = {}
    for spec in specs:
        module = _load_module(spec)
        public = getattr(module, "__all__", None) or [n for n in dir(module)
                                                       if not n.startswith("_")]
        count = 0
        for name in public:
            obj = getattr(module, name, None)
            own = getattr(obj, "__module__", "") or ""
            if inspect.isclass(obj) and issubclass(obj, bases):
                if own.split(".")[0] in ("keras", "tensorflow", "tf_keras"):
                    continue  # Keras' own classes need no registering
                found[name] = obj
                found[keras.saving.get_registered_name(obj)] = obj
                count += 1
            elif inspect.isfunction(obj) and own == module.__name__:
                found[name] = obj  # a custom activation, loss or metric function
                found[keras.saving.get_registered_name(obj)] = obj
                count += 1
        if not count:
            raise CLIError(f"custom objects module {spec!r} defines no public Keras layer, "
                           "model, loss, metric or function")
    return found


def load_model(path: str, custom: Sequence[str] = (), verbose: bool = False):
    require_file(path, "model file")
    import_tensorflow(verbose)
    import keras

    objects = custom_objects(custom) if custom else None
    try:
        # compile=False: no optimizer is needed to explain, and a custom loss or optimizer
        # would otherwise make loading fail. The loss is put back below when Keras knows it.
        model = keras.saving.load_model(path, custom_objects=objects, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here
        text = one_line(exc)
        hint = ""
        if not custom and any(k in text for k in (
                "Could not locate", "Unknown", "custom", "register_keras_serializable",
                "deserializ", "Could not interpret")):
            hint = (" If the model has custom layers or functions, pass the module that "
                    "defines them: --custom-objects my_layers.py")
        raise CLIError(f"could not load model {path}: {text}{hint}") from None
    _compile_saved_loss(model, path, objects)
    return model


def _saved_loss(path: str) -> Any:
    """The loss a ``.keras`` file was compiled with, as its config stores it, or ``None``."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return (config.get("compile_config") or {}).get("loss")


def _compile_saved_loss(model, path: str, objects: dict[str, Any] | None) -> None:
    """Compile ``model`` (loaded by us, not a user's object) with its saved loss alone.

    The loss says what the outputs are: a model saved compiled with ``mse`` is a regression
    model, and the explainer refuses to read its outputs as classes, as it does for the same
    model in Python. A loss Keras cannot rebuild leaves the model uncompiled (a classifier,
    as any uncompiled model)."""
    import keras

    loss = _saved_loss(path)
    if loss is None:
        return

    def rebuild(item: Any) -> Any:
        if isinstance(item, str):
            return keras.losses.get(item)
        return keras.losses.deserialize(item, custom_objects=objects)

    try:
        if isinstance(loss, dict) and "class_name" not in loss:  # one loss per named output
            loss = {key: rebuild(value) for key, value in loss.items()}
        elif isinstance(loss, list):
            loss = [rebuild(value) for value in loss]
        else:
            loss = rebuild(loss)
        model.compile(loss=loss)
    except Exception:  # noqa: BLE001 - any failure only means no loss to read the head from
        return
