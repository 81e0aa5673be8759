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

# name -> (module, attribute); attribute None: the module itself.
_PUBLIC = {
    "explain": ("tf_gradcam.api", "explain"),
    "get_method": ("tf_gradcam.api", "get_method"),
    "Context": ("tf_gradcam.core.engine", "Context"),
    "Explainer": ("tf_gradcam.core.engine", "Explainer"),
    "list_layers": ("tf_gradcam.core.layers", "list_layers"),
    "Explanation": ("tf_gradcam.explanation", "Explanation"),
    "METHODS": ("tf_gradcam.methods", "METHODS"),
    **{name: ("tf_gradcam.methods", name) for name in (
        "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "LayerCAM", "EigenCAM", "AblationCAM",
        "HiResCAM", "XGradCAM", "GuidedBackprop", "GuidedGradCAM")},
    "overlay": ("tf_gradcam.render", "overlay"),
    "plot": ("tf_gradcam.render", "plot"),
    "localize": ("tf_gradcam.localize", None),
    "metrics": ("tf_gradcam.metrics", None),
    "explain_dataset": ("tf_gradcam.dataset", "explain_dataset"),
    "load_explanations": ("tf_gradcam.dataset", "load_explanations"),
    "GradCAMCallback": ("tf_gradcam.training", "GradCAMCallback"),
    "log_heatmaps": ("tf_gradcam.training", "log_heatmaps"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tf_gradcam' has no attribute {name!r}")
    from tf_gradcam._compat import check_backend

    check_backend()
    module, attr = _PUBLIC[name]
    loaded = importlib.import_module(module)
    value = loaded if attr is None else getattr(loaded, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from tf_gradcam import localize, metrics  # noqa: F401
    from tf_gradcam.api import explain, get_method  # noqa: F401
    from tf_gradcam.core.engine import Context, Explainer  # noqa: F401
    from tf_gradcam.core.layers import list_layers  # noqa: F401
    from tf_gradcam.dataset import explain_dataset, load_explanations  # noqa: F401
    from tf_gradcam.explanation import Explanation  # noqa: F401
    from tf_gradcam.methods import (  # noqa: F401
        CAM, METHODS, AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, GuidedBackprop,
        GuidedGradCAM, HiResCAM, LayerCAM, ScoreCAM, XGradCAM,
    )
    from tf_gradcam.render import overlay, plot  # noqa: F401
    from tf_gradcam.training import GradCAMCallback, log_heatmaps  # noqa: F401
