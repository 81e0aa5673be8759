"""Synthetic data and a small reference CNN for tests, demos and localization checks.

``make_shapes`` draws a seeded, labelled set of one-shape images with ground-truth
boxes and masks; ``small_cnn`` / ``train_small_cnn`` give a network that learns it in
well under a minute on a CPU and whose last convolution (``"last_conv"``) localises
the shape.
"""

from tf_gradcam.data.models import small_cnn, train_small_cnn
from tf_gradcam.data.shapes import SHAPE_NAMES, ShapesData, make_shapes, shapes_dataset

__all__ = [
    "SHAPE_NAMES",
    "ShapesData",
    "make_shapes",
    "shapes_dataset",
    "small_cnn",
    "train_small_cnn",
]
