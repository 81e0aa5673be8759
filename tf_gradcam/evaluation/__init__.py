"""Evaluate saliency methods: every method against every metric, one table with intervals.

>>> table = tfg.evaluate(model, images, methods=["gradcam", "scorecam"],
...                      metrics=["deletion", "insertion", "road"], out_dir="eval")

:func:`evaluate` returns the table as a plain dict of arrays (one row per method x metric:
mean, confidence interval over images, number of images, which way is better) and writes it as
CSV and Markdown with two figures; :func:`run` returns the whole :class:`Evaluation` (per-image
values, the metrics' full results, sample maps). :data:`METRICS` lists what can be asked for.
The command line's ``tf-gradcam evaluate`` is a front end to :func:`evaluate`.
"""

from tf_gradcam.evaluation.core import METRICS, Evaluation, Metric, Row, evaluate, run
from tf_gradcam.evaluation.data import image_files, read_images

__all__ = ["METRICS", "Evaluation", "Metric", "Row", "evaluate", "image_files", "read_images",
           "run"]
