"""The engine: re-execute the model with the target captured, take gradients, run one compiled
step per batch, and offer methods the few services they need.

``graph`` (re-execution, dataflow) -> ``forward`` (one batch: capture, score, gradients,
contexts) -> ``step`` (the compiled ``tf.function``) -> ``pipeline`` (the one batch loop);
``explainer`` holds the base class every method subclasses; ``_keras`` every Keras internal.
"""

from tf_gradcam._compat import check_backend

# Everything below needs Keras on TensorFlow: say so plainly before anything else fails.
check_backend()
