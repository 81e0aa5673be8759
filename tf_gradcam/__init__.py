"""tf_gradcam: Grad-CAM and the CAM family for Keras 3 on TensorFlow.

>>> import tf_gradcam as tfg
>>> result = tfg.GradCAM(model)(images)          # result.heatmaps: [N, H, W] in [0, 1]
"""

from tf_gradcam._compat import check_backend

check_backend()

from tf_gradcam.api import explain, get_method  # noqa: E402
from tf_gradcam.core.engine import Context, Explainer  # noqa: E402
from tf_gradcam.core.layers import list_layers  # noqa: E402
from tf_gradcam.explanation import Explanation  # noqa: E402
from tf_gradcam.methods import (  # noqa: E402
    CAM, METHODS, AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, GuidedBackprop, GuidedGradCAM,
    HiResCAM, LayerCAM, ScoreCAM, XGradCAM,
)

__version__ = "0.1.0"


def __getattr__(name):
    # Pictures, training and evaluation pull in matplotlib / OpenCV / TensorBoard: load on use.
    lazy = {
        "overlay": ("tf_gradcam.render", "overlay"),
        "plot": ("tf_gradcam.render", "plot"),
        "localize": ("tf_gradcam.localize", None),
        "metrics": ("tf_gradcam.metrics", None),
        "explain_dataset": ("tf_gradcam.dataset", "explain_dataset"),
        "load_explanations": ("tf_gradcam.dataset", "load_explanations"),
        "GradCAMCallback": ("tf_gradcam.training", "GradCAMCallback"),
        "log_heatmaps": ("tf_gradcam.training", "log_heatmaps"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        loaded = importlib.import_module(module)
        return loaded if attr is None else getattr(loaded, attr)  # None: the module itself
    raise AttributeError(f"module 'tf_gradcam' has no attribute {name!r}")


__all__ = [
    "Context", "Explainer", "Explanation", "GradCAM", "METHODS", "explain", "get_method",
    "CAM", "GradCAMPlusPlus", "LayerCAM", "EigenCAM", "HiResCAM", "XGradCAM",
    "ScoreCAM", "AblationCAM", "GuidedBackprop", "GuidedGradCAM",
    "list_layers", "overlay", "plot",
    "localize", "metrics", "explain_dataset", "load_explanations",
    "GradCAMCallback", "log_heatmaps",
]
