"""Explain while training: log heatmaps of fixed probe images as ``model.fit`` runs.

* :class:`GradCAMCallback`: a ``keras.callbacks.Callback`` writing overlays to TensorBoard
  (and/or PNG files and GIF animations);
* :func:`log_heatmaps`: the same logging by hand, from a :class:`~tf_gradcam.Explanation`.
"""

from tf_gradcam.training.callback import GradCAMCallback
from tf_gradcam.training.tensorboard import LoggedImage, log_heatmaps

__all__ = ["GradCAMCallback", "LoggedImage", "log_heatmaps"]
