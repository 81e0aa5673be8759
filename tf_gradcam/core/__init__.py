"""Pick the layer and the score, then run the engine."""

from tf_gradcam._compat import check_backend

# Everything below needs Keras on TensorFlow: say so plainly before anything else fails.
check_backend()
