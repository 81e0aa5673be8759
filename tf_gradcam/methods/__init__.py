"""One small module per method; each only says how channels are weighted or maps combined."""

from __future__ import annotations

from tf_gradcam.core.engine import Explainer
from tf_gradcam.methods.gradcam import GradCAM

#: ``tfg.explain(method=...)`` names -> classes. A new method registers itself here.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls
    for cls in (GradCAM,)
}

__all__ = ["METHODS", "GradCAM"]
