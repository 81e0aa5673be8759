"""One small module per method; each only says how channels are weighted or maps combined."""

from __future__ import annotations

from tf_gradcam.core.engine import Explainer
from tf_gradcam.methods.ablationcam import AblationCAM
from tf_gradcam.methods.cam import CAM
from tf_gradcam.methods.eigencam import EigenCAM
from tf_gradcam.methods.gradcam import GradCAM
from tf_gradcam.methods.gradcam_pp import GradCAMPlusPlus
from tf_gradcam.methods.guided import GuidedBackprop, GuidedGradCAM
from tf_gradcam.methods.hirescam import HiResCAM
from tf_gradcam.methods.layercam import LayerCAM
from tf_gradcam.methods.scorecam import ScoreCAM
from tf_gradcam.methods.xgradcam import XGradCAM

#: ``tfg.explain(method=...)`` names -> classes. A new method registers itself here.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls
    for cls in (
        CAM, GradCAM, GradCAMPlusPlus, ScoreCAM, LayerCAM, EigenCAM, AblationCAM, HiResCAM,
        XGradCAM, GuidedBackprop, GuidedGradCAM,
    )
}

__all__ = [
    "AblationCAM", "GuidedBackprop", "GuidedGradCAM", "ScoreCAM",
    "CAM", "EigenCAM", "GradCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "METHODS", "XGradCAM",
]
