"""tf_gradcam: Grad-CAM and the CAM family for Keras 3 on TensorFlow.

>>> import tf_gradcam as tfg
>>> result = tfg.GradCAM(model)(images)          # result.heatmaps: [N, H, W] in [0, 1]

Every public name is loaded on first use, so ``import tf_gradcam`` (and ``tf-gradcam --help``)
does not pay for importing TensorFlow; the first name that needs Keras checks its backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from tf_gradcam._install import require_tensorflow  # noqa: E402

# No TensorFlow at all: say what to install now, not at the first name (nothing is imported).
require_tensorflow()

# name -> (module, attribute); attribute None: the module itself.
_PUBLIC = {
    "explain": ("tf_gradcam.api", "explain"),
    "get_method": ("tf_gradcam.engine.explainer", "get_method"),
    "Context": ("tf_gradcam.engine.context", "Context"),
    "Explainer": ("tf_gradcam.engine.explainer", "Explainer"),
    "list_layers": ("tf_gradcam.choose.tensors", "list_layers"),
    "input_of": ("tf_gradcam.choose.tensors", "input_of"),
    "output_of": ("tf_gradcam.choose.tensors", "output_of"),
    "Tokens": ("tf_gradcam.choose.tokens", "Tokens"),
    "Augmentations": ("tf_gradcam.engine.smooth", "Augmentations"),
    "Explanation": ("tf_gradcam.explanation", "Explanation"),
    "METHODS": ("tf_gradcam.methods", "METHODS"),
    "deep_feature_factorization": ("tf_gradcam.methods.dff", "deep_feature_factorization"),
    "ConceptFactorization": ("tf_gradcam.methods.dff", "ConceptFactorization"),
    "overlay": ("tf_gradcam.render", "overlay"),
    "plot": ("tf_gradcam.render", "plot"),
    "localize": ("tf_gradcam.localize", None),
    "metrics": ("tf_gradcam.metrics", None),
    "targets": ("tf_gradcam.choose.readymade", None),
    "evaluate": ("tf_gradcam.evaluation", "evaluate"),
    "evaluation": ("tf_gradcam.evaluation", None),
    "explain_dataset": ("tf_gradcam.scale", "explain_dataset"),
    "load_explanations": ("tf_gradcam.scale", "load_explanations"),
    "GradCAMCallback": ("tf_gradcam.training", "GradCAMCallback"),
    "log_heatmaps": ("tf_gradcam.training", "log_heatmaps"),
}


def _methods() -> dict:
    """The registered methods by class name (imports the methods on first use)."""
    from tf_gradcam._compat import check_backend

    check_backend()
    from tf_gradcam.methods import METHODS

    return {cls.__name__: cls for cls in METHODS.values()}


def __getattr__(name: str):
    if name == "__all__":
        return sorted(set(_PUBLIC) | set(_methods()))
    if name in _PUBLIC:
        from tf_gradcam._compat import check_backend

        check_backend()
        module, attr = _PUBLIC[name]
        loaded = importlib.import_module(module)
        value = loaded if attr is None else getattr(loaded, attr)
    elif name[:1].isupper() and name in _methods():
        value = _methods()[name]  # a method class: every registered one is exported
    else:
        raise AttributeError(f"module 'tf_gradcam' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC) | set(_methods()))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from tf_gradcam import evaluation, localize, metrics  # noqa: F401
    from tf_gradcam.choose import readymade as targets  # noqa: F401
    from tf_gradcam.evaluation import evaluate  # noqa: F401
    from tf_gradcam.api import explain  # noqa: F401
    from tf_gradcam.choose.tensors import input_of, list_layers, output_of  # noqa: F401
    from tf_gradcam.choose.tokens import Tokens  # noqa: F401
    from tf_gradcam.engine.context import Context  # noqa: F401
    from tf_gradcam.engine.explainer import Explainer, get_method  # noqa: F401
    from tf_gradcam.engine.smooth import Augmentations  # noqa: F401
    from tf_gradcam.explanation import Explanation  # noqa: F401
    from tf_gradcam.methods import METHODS  # noqa: F401
    from tf_gradcam.methods.dff import ConceptFactorization, deep_feature_factorization  # noqa: F401
    from tf_gradcam.render import overlay, plot  # noqa: F401
    from tf_gradcam.scale import explain_dataset, load_explanations  # noqa: F401
    from tf_gradcam.training import GradCAMCallback, log_heatmaps  # noqa: F401
