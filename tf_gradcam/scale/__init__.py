"""Scale: explain datasets of any size, streamed to disk, on one device or under a strategy."""

from tf_gradcam.scale.dataset import explain_dataset
from tf_gradcam.scale.storage import load_explanations

__all__ = ["explain_dataset", "load_explanations"]
