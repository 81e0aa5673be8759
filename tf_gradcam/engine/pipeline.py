"""The one batch loop: inputs and targets in, per-batch NumPy results out.

:func:`run` is behind every way in: the explainers' call (``explainer(x)``), the training
callback, ``explain_dataset`` (one device, or a ``tf.distribute`` strategy). It checks the
inputs (:mod:`tf_gradcam.engine.inputs`), resolves the targets (:mod:`tf_gradcam.choose.targets`),
cuts arrays into batches or reads a ``tf.data.Dataset`` batch by batch, runs the compiled step
and yields one dict of arrays per batch: what :meth:`Explanation.from_arrays` takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.engine import checks, diagnose

if TYPE_CHECKING:
    from tf_gradcam.engine.explainer import Explainer

DEFAULT_BATCH_SIZE = 32


def split_element(element: Any, n_inputs: int) -> tuple[Any, Any]:
    """``(inputs, labels or None)`` of one dataset element by Keras' ``(x, y, sample_weight)``
    rule, except that a bare tuple of ``n_inputs`` tensors is a multi-input model's ``x``."""
    if isinstance(element, tuple):
        if n_inputs > 1 and len(element) == n_inputs and all(
                tf.is_tensor(e) or isinstance(e, np.ndarray) for e in element):
            return list(element), None
        return element[0], (element[1] if len(element) >= 2 else None)
    return element, None


def run(explainer: Explainer, inputs: Any, targets: Any = None, *, top_k: int | None = None,
        batch_size: int | None = None, strategy: Any = None) -> Iterator[dict[str, np.ndarray]]:
    """Explain ``inputs`` batch by batch; yield each batch's results as NumPy arrays.

    ``inputs`` are arrays (one per model input, a list or a dict) cut into ``batch_size``
    samples per step, or a batched ``tf.data.Dataset`` read one element at a time (then
    ``batch_size`` is ignored). Results with ``k`` classes per sample (an ``[N, k]`` target
    array or ``top_k``) are shaped ``[B, k, ...]``.
    """
    bs = DEFAULT_BATCH_SIZE if batch_size is None else checks.positive_int(batch_size,
                                                                            "batch_size")
    # Everything is checked now, when run() is called, not at the first batch.
    if isinstance(inputs, tf.data.Dataset):
        plan = targets_lib.resolve(targets, explainer.head_info, None, top_k=top_k)
        explainer.check_plan(plan)
        if strategy is not None:
            return _distributed(explainer, inputs, plan, strategy)
        return _from_dataset(explainer, inputs, plan)
    if strategy is not None:
        raise ValueError("A tf.distribute strategy needs a tf.data.Dataset of inputs.")
    xs = explainer.checker.arrays(inputs)
    n = len(xs[0])
    plan = targets_lib.resolve(targets, explainer.head_info, n, top_k=top_k)
    explainer.check_plan(plan)
    return (_execute(explainer, plan, [x[start:start + bs] for x in xs],
                     plan.rows(start, min(start + bs, n)))
            for start in range(0, n, bs))


def collect(explainer: Explainer, dataset: tf.data.Dataset) -> list[np.ndarray]:
    """A whole dataset's inputs as arrays (checked batch by batch), for a call that wants
    every sample at once (``explainer(dataset, per_sample_targets)``)."""
    n_inputs = len(explainer.input_specs)
    batches = [explainer.checker.arrays(split_element(e, n_inputs)[0], stream=True)
               for e in dataset]
    if not batches:
        raise ValueError("The dataset is empty: nothing to explain.")
    return [np.concatenate(parts) for parts in zip(*batches)]


def _from_dataset(explainer: Explainer, dataset: tf.data.Dataset, plan) -> Iterator[dict]:
    n_inputs = len(explainer.input_specs)
    seen = False
    for element in dataset:
        x, y = split_element(element, n_inputs)
        if int(tf.nest.flatten(x)[0].shape[0]) == 0:
            continue
        xs = explainer.checker.arrays(x, stream=True)
        b = len(xs[0])
        num_classes = explainer.head_info.num_classes
        assert num_classes is not None  # the plan needs classes to read labels
        codes = (targets_lib.label_classes(y, num_classes, b)[:, None]
                 if plan.from_labels else plan.rows(0, b))
        seen = True
        yield _execute(explainer, plan, xs, codes)
    if not seen:
        raise ValueError("The dataset is empty: nothing to explain.")


def _execute(explainer: Explainer, plan, xs: list, codes: np.ndarray) -> dict:
    step = explainer.compiled_step(plan)
    try:
        out = step([tf.convert_to_tensor(x) for x in xs], tf.convert_to_tensor(codes, tf.int32))
    except tf.errors.InvalidArgumentError as err:
        if targets_lib.CALLABLE_LENGTH_MESSAGE not in str(err):
            raise
        raise ValueError(
            f"The targets callable must return one score per sample ([{len(xs[0])}] for this "
            "batch), not a reduced or differently sized tensor: e.g. lambda logits: "
            "logits[:, 3], not tf.reduce_sum(logits[:, 3])."
        ) from None
    return finish(explainer, {k: v.numpy() for k, v in out.items()}, plan)


def finish(explainer: Explainer, out: dict, plan) -> dict:
    """The step's ``[B * k, ...]`` results as the Explanation's fields: ``[B, k, ...]`` when
    the plan explains k classes each; the step's diagnostics reported (empty maps) and dropped."""
    why = {k[len(diagnose.PREFIX):]: out.pop(k) for k in list(out)
           if k.startswith(diagnose.PREFIX)}
    diagnose.report(explainer, out, why)
    if not plan.multi:
        return out
    return {key: v.reshape((-1, plan.k) + v.shape[1:]) for key, v in out.items()}


def _distributed(explainer: Explainer, dataset: tf.data.Dataset, plan, strategy
                 ) -> Iterator[dict]:
    """Each global batch split across the replicas; each replica runs the compiled step on its
    shard inside one ``tf.function``; the shards are put back together in dataset order."""
    n_inputs = len(explainer.input_specs)
    num_classes = explainer.head_info.num_classes

    def replica_step(element):
        x, y = split_element(element, n_inputs)
        xs = explainer.checker.tensors(x)
        b = tf.shape(xs[0])[0]
        if plan.from_labels:
            codes = targets_lib.label_classes_in_graph(y, num_classes)[:, None]
        else:
            codes = tf.repeat(tf.constant(plan.rows(0, 1), tf.int32), b, axis=0)
        # A last global batch smaller than the replica count leaves some replicas an empty
        # batch, and TF's convolutions fail on a batch of 0 ("Incompatible shapes"). Such a
        # replica runs one all-zero row instead and returns none of it; others pad nothing.
        pad = tf.maximum(1 - b, 0)
        xs = [tf.concat([t, tf.zeros(tf.concat([[pad], tf.shape(t)[1:]], 0), t.dtype)], 0)
              for t in xs]
        codes = tf.concat([codes, tf.zeros([pad, plan.k], tf.int32)], 0)
        out = explainer.compiled_step(plan)(xs, codes)
        return {k: v[:b * plan.k] for k, v in out.items()}

    explainer.compiled_step(plan)  # build the step once, outside the replica threads
    dist = strategy.experimental_distribute_dataset(dataset)
    step = tf.function(
        lambda element: strategy.run(replica_step, args=(element,)),
        input_signature=[dist.element_spec],
        autograph=False,
    )
    for element in dist:
        out = step(element)
        merged = {}
        for key, value in out.items():
            parts = [p.numpy() for p in strategy.experimental_local_results(value)]
            merged[key] = np.concatenate([p for p in parts if len(p)] or parts[:1])
        if len(merged["targets"]):
            yield finish(explainer, merged, plan)
