"""Explain a whole ``tf.data.Dataset``: streamed, bounded in memory, optionally distributed.

:func:`explain_dataset` runs the explainer's batch pipeline (``explainer.run``) with a
progress bar. Results either stay in memory (one :class:`~tf_gradcam.Explanation` at the end,
like calling the explainer) or go to disk as they are made (:mod:`tf_gradcam.scale.storage`),
so a dataset of any size needs only one batch of results in memory at a time.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from tf_gradcam.engine import checks
from tf_gradcam.engine.explainer import Explainer
from tf_gradcam.explanation import Explanation
from tf_gradcam.scale.storage import Sink

__all__ = ["explain_dataset"]


def explain_dataset(
    explainer: Explainer,
    dataset: tf.data.Dataset,
    *,
    targets: Any = None,
    out_dir: str | os.PathLike | None = None,
    strategy: tf.distribute.Strategy | None = None,
    steps: int | None = None,
    verbose: int = 1,
    keep_in_memory: bool | None = None,
    overwrite: bool = False,
) -> Explanation:
    """Explain every batch of ``dataset`` with ``explainer``, streaming the results.

    Args:
        explainer: any ``tfg`` explainer (``tfg.GradCAM(model)``, ...). Its compiled step is
            reused: nothing is retraced per batch.
        dataset: a *batched* ``tf.data.Dataset``. Elements are the model's input(s) ``x``, or
            ``(x, y)`` / ``(x, y, sample_weight)`` as for ``model.fit`` (``x`` may be a tuple,
            list or dict for a multi-input model).
        targets: what to explain per sample:

            * ``None`` or ``"top"``: each sample's top class;
            * ``"label"``: the dataset's labels ``y``: class indices ``[B]`` (or ``[B, 1]``) or
              one-hot / probability rows ``[B, C]`` (their argmax);
            * an ``int``: that class for every sample;
            * a callable ``f(outputs) -> [B]`` scores, as for the explainer.

            (Per-sample classes for the whole dataset belong in the dataset: make its elements
            ``(x, classes)`` and pass ``"label"``.)
        out_dir: a directory to write the results to (see the module docstring for the layout);
            created if needed.
        strategy: a ``tf.distribute`` strategy (e.g. ``MirroredStrategy``): each global batch is
            split across the replicas with ``strategy.experimental_distribute_dataset``, the
            step runs on every replica with ``strategy.run`` inside one ``tf.function``, and the
            replicas' results are put back together in dataset order. Results equal the
            single-device ones. Build or load the model under ``strategy.scope()`` so each
            replica reads its own copy of the weights (otherwise they are read from where they
            live, which is correct but slower).
        steps: process at most this many batches (required for an infinite dataset).
        verbose: 0 silent, 1 a progress bar, 2 one line at the end (``keras.utils.Progbar``).
        keep_in_memory: also keep all results in memory and return them as arrays. Defaults to
            ``True`` without ``out_dir`` and ``False`` with it (then the returned arrays are
            read-only memory maps of the files).
        overwrite: replace results already in ``out_dir`` (only the files this function writes
            are removed).

    Returns:
        An :class:`~tf_gradcam.Explanation` of all processed samples, in dataset order.

    Raises:
        ValueError: an empty or infinite dataset without ``steps``, ``"label"`` targets without
            labels in the dataset, bad options, or inputs that do not fit the model.
        FileExistsError: ``out_dir`` already holds results and ``overwrite`` is False.
    """
    if not isinstance(explainer, Explainer):
        raise TypeError(
            "explainer must be a tfg explainer (e.g. tfg.GradCAM(model)), got "
            f"{type(explainer).__name__}."
        )
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}; "
            "for arrays call the explainer directly."
        )
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}.")
    if steps is not None:
        checks.positive_int(steps, "steps")
    if keep_in_memory is None:
        keep_in_memory = out_dir is None
    if out_dir is None and not keep_in_memory:
        raise ValueError("With keep_in_memory=False the results must go somewhere: pass out_dir.")
    if steps is not None:
        dataset = dataset.take(int(steps))
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "The dataset is infinite (e.g. .repeat()): pass steps= to say how many batches "
            "to explain."
        )
    total = cardinality if cardinality >= 0 else None
    # Targets and layer problems surface here, before anything is written.
    batches = explainer.run(dataset, targets, strategy=strategy)
    sink = Sink(out_dir, keep_in_memory, overwrite,
                {"method": explainer.name, "layer": explainer.layer_names})
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name="batch")
    seen, finished = 0, False
    try:
        for seen, out in enumerate(batches, start=1):
            sink.add(out)
            # A known total finalizes the bar on the last batch by itself.
            bar.update(seen, finalize=None if total else False)
        finished = True
    finally:
        sink.close(complete=finished)
    if total is None and seen:
        bar.update(seen, finalize=True)
    if sink.n == 0:
        raise ValueError("The dataset is empty: nothing to explain.")
    return sink.result()
