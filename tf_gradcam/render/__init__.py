"""Pictures of explanations: heatmap overlays and summary figures.

``overlay`` / ``overlay_batch`` return ``uint8`` RGB arrays (write them with cv2 or PIL,
log them to TensorBoard); ``plot`` returns a matplotlib ``Figure``.
"""

from tf_gradcam.render.overlay import colorize, overlay, overlay_batch, to_display_rgb
from tf_gradcam.render.plot import plot

__all__ = ["colorize", "overlay", "overlay_batch", "plot", "to_display_rgb"]
