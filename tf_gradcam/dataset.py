"""Explain a whole ``tf.data.Dataset``: streamed, bounded in memory, optionally distributed.

:func:`explain_dataset` runs the explainer's compiled step batch by batch with a progress bar.
Results either stay in memory (one :class:`~tf_gradcam.Explanation` at the end, like calling
the explainer) or go to disk as they are made, so a dataset of any size needs only one batch of
results in memory at a time.

On-disk layout of ``out_dir`` (read it back with :func:`load_explanations`):

* one standard ``.npy`` file per field: ``heatmaps.npy [N, *input spatial] float32``,
  ``raw.npy [N, *layer spatial] float32``, ``targets.npy [N] int64``, ``scores.npy [N] float32``,
  ``weights.npy [N, K] float32`` (methods with channel weights) and ``extra.<name>.npy`` for a
  method's further outputs;
* ``explanation.json``: method, layer, sample count, the files, and whether the run completed.

Each ``.npy`` file grows by appending every batch's rows after a header of fixed size; the header
(which holds the row count) is rewritten after each batch. So the files are valid NumPy arrays of
the samples finished so far at every moment: an interrupted run leaves readable partial results,
and ``np.load(path, mmap_mode="r")`` maps them without reading them into memory.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.core import checks, targets as targets_lib
from tf_gradcam.core.engine import Explainer, dataset_inputs
from tf_gradcam.explanation import Explanation

__all__ = ["explain_dataset", "load_explanations"]

META_FILE = "explanation.json"
FORMAT = "tf_gradcam.explain_dataset/1"
_FLOAT_FIELDS = ("heatmaps", "raw", "scores", "weights")


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
    mode, score_fn = _targets_mode(targets, explainer)

    if steps is not None:
        dataset = dataset.take(int(steps))
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "The dataset is infinite (e.g. .repeat()): pass steps= to say how many batches "
            "to explain."
        )
    total = cardinality if cardinality >= 0 else None

    sink = _Sink(
        out_dir,
        keep_in_memory,
        overwrite,
        {"method": explainer.name, "layer": explainer.layer_names},
    )
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name="batch")
    if strategy is None:
        batches = _single_device(explainer, dataset, mode, score_fn)
    else:
        batches = _distributed(explainer, dataset, strategy, mode, score_fn)
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


def load_explanations(out_dir: str | os.PathLike, mmap_mode: str | None = "r") -> Explanation:
    """Read the results :func:`explain_dataset` wrote to ``out_dir`` as one Explanation.

    Args:
        out_dir: the directory given to :func:`explain_dataset`.
        mmap_mode: ``"r"`` (default) maps the arrays read-only without loading them into memory;
            ``None`` reads them; any ``np.load`` mode.

    Returns:
        An :class:`~tf_gradcam.Explanation`. For an interrupted run it holds the samples of the
        batches that finished (with a warning).
    """
    meta = _read_meta(out_dir)
    if meta is None:
        raise FileNotFoundError(
            f"No {META_FILE} in {os.fspath(out_dir)!r}: not an explain_dataset output."
        )
    arrays = {
        name: np.load(os.path.join(out_dir, file), mmap_mode=mmap_mode)
        for name, file in meta["files"].items()
    }
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise ValueError(
            f"The files in {os.fspath(out_dir)!r} hold different sample counts {sorted(n)}: "
            "corrupted."
        )
    if not meta.get("complete", False):
        warnings.warn(
            f"The run that wrote {os.fspath(out_dir)!r} did not finish: loading the "
            f"{n.pop()} samples written.",
            stacklevel=2,
        )
    return _explanation(arrays, meta)


# ============================================================================ targets
def _targets_mode(targets: Any, explainer: Explainer) -> tuple[Any, Callable | None]:
    """``(mode, score_fn)`` with mode ``"top"``, ``"label"``, an int, or ``"callable"``."""
    if callable(targets):
        return "callable", targets
    if targets is None or (isinstance(targets, str) and targets == "top"):
        targets_lib.normalize(None, 1, explainer.num_classes)  # raises for a model without classes
        return "top", None
    if isinstance(targets, str):
        if targets != "label":
            raise ValueError(
                f"targets must be None, 'top', 'label', an int or a callable, got {targets!r}."
            )
        if explainer.num_classes is None:
            raise ValueError(
                "targets='label' needs a model with one [N, classes] output; pass a callable."
            )
        return "label", None
    if isinstance(targets, (int, np.integer)) and not isinstance(targets, (bool, np.bool_)):
        targets_lib.normalize(int(targets), 1, explainer.num_classes)  # range check
        return int(targets), None
    raise ValueError(
        f"explain_dataset takes targets None, 'top', 'label', an int or a callable, got "
        f"{type(targets).__name__}. For per-sample classes put them in the dataset as (x, classes) "
        "elements and pass targets='label'."
    )


def _split(element: Any, n_inputs: int) -> tuple[Any, Any]:
    """``(inputs, labels or None)`` of one element, by Keras' ``(x, y, sample_weight)`` rule."""
    x = dataset_inputs(element, n_inputs)
    if isinstance(element, tuple) and len(element) >= 2 and x is element[0]:
        return x, element[1]
    return x, None


def _label_classes(y: Any, num_classes: int) -> tf.Tensor:
    """``[B] int32`` class indices from labels ``[B]``, ``[B, 1]`` or one-hot rows ``[B, C]``."""
    if y is None:
        raise ValueError(
            "targets='label' needs (x, y) dataset elements; this dataset yields inputs only."
        )
    if isinstance(y, (dict, list, tuple)):
        raise ValueError(
            "targets='label' needs one label tensor per element (a single-output classifier)."
        )
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    if y.shape.rank == 2:
        if y.shape[-1] != num_classes:
            raise ValueError(
                f"Label rows have {y.shape[-1]} columns but the model has {num_classes} classes."
            )
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    if y.shape.rank != 1:
        raise ValueError(
            f"Labels must be [B] class indices or [B, {num_classes}] one-hot rows, got shape "
            f"{y.shape}."
        )
    if y.dtype.is_floating:
        y = tf.round(y)
    return tf.cast(y, tf.int32)


# ============================================================================ the loops
def _batch_len(x: Any) -> int:
    first = tf.nest.flatten(x)[0]
    return int(first.shape[0])


def _single_device(explainer: Explainer, dataset: tf.data.Dataset, mode: Any, score_fn):
    n_inputs = len(explainer.input_specs)
    for element in dataset:
        x, y = _split(element, n_inputs)
        if _batch_len(x) == 0:
            continue
        xs = explainer.prepare_inputs(x)  # shapes, NaN/inf, dtypes: the explainer's own checks
        b = len(xs[0])
        if mode == "label":
            arg = targets_lib.normalize(
                _label_classes(y, explainer.num_classes).numpy(), b, explainer.num_classes
            )
        elif mode == "top" or mode == "callable":
            arg = np.full(b, targets_lib.TOP_CLASS if mode == "top" else 0, np.int32)
        else:
            arg = np.full(b, mode, np.int32)
        out = explainer.explain_batch(
            [tf.convert_to_tensor(a) for a in xs], tf.convert_to_tensor(arg, tf.int32), score_fn
        )
        yield {k: v.numpy() for k, v in out.items()}


def _distributed(explainer: Explainer, dataset: tf.data.Dataset, strategy, mode: Any, score_fn):
    n_inputs = len(explainer.input_specs)
    specs, names, num_classes = (
        explainer.input_specs,
        explainer.input_names,
        explainer.num_classes,
    )

    def replica_step(element):
        x, y = _split(element, n_inputs)
        xs = _graph_inputs(x, specs, names)
        b = tf.shape(xs[0])[0]
        if mode == "label":
            arg = _label_classes(y, num_classes)
            tf.debugging.assert_greater_equal(arg, 0, message="A label is a negative class index.")
            tf.debugging.assert_less(
                arg,
                num_classes,
                message=f"A label is out of range for a model with {num_classes} classes.",
            )
        else:
            fill = {"top": targets_lib.TOP_CLASS, "callable": 0}.get(mode, mode)
            arg = tf.fill([b], tf.constant(fill, tf.int32))
        # A last global batch smaller than the replica count leaves some replicas an empty
        # batch, and TF's convolutions fail on a batch of 0 ("Incompatible shapes"). Such a
        # replica runs one all-zero row instead and returns none of it; others pad nothing.
        pad = tf.maximum(1 - b, 0)
        xs = [
            tf.concat([t, tf.zeros(tf.concat([[pad], tf.shape(t)[1:]], 0), t.dtype)], 0) for t in xs
        ]
        arg = tf.concat([arg, tf.zeros([pad], tf.int32)], 0)
        out = explainer.explain_batch(xs, arg, score_fn)
        return {k: v[:b] for k, v in out.items()}

    explainer.compiled_step(score_fn)  # build the step once, outside the replica threads
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
            yield merged


def _graph_inputs(x: Any, specs: list, names: list) -> list:
    """The model's inputs as a list of tensors in the model's order, checked and cast (in graph)."""
    if isinstance(x, dict):
        missing = [k for k in names if k not in x]
        if missing:
            raise ValueError(
                f"Dataset elements lack the model inputs {missing}; they have {list(x)}."
            )
        x = [x[k] for k in names]
    elif not isinstance(x, (list, tuple)):
        x = [x]
    if len(x) != len(specs):
        raise ValueError(
            f"The model takes {len(specs)} inputs ({', '.join(names)}); dataset elements give "
            f"{len(x)}."
        )
    out = []
    for spec, name, t in zip(specs, names, x, strict=True):
        t = tf.convert_to_tensor(t)
        if not spec.shape.is_compatible_with(t.shape):
            raise ValueError(
                f"Input {name!r} has shape {t.shape} in the dataset, but the model expects "
                f"{tuple(spec.shape)} (batch first; None is any size). Is the dataset batched?"
            )
        if t.dtype.is_floating:
            t = tf.debugging.check_numerics(t, f"Input {name!r} contains NaN or infinity")
        out.append(tf.cast(t, spec.dtype))
    return out


# ============================================================================ results
class _Sink:
    """Collects per-batch results in memory and/or appends them to ``.npy`` files."""

    def __init__(self, out_dir, keep: bool, overwrite: bool, meta: dict) -> None:
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.keep = keep
        self.meta = dict(meta)
        self.n = 0
        self.parts: dict[str, list] = {}
        self.files: dict[str, _NpyAppender] = {}
        self.row_shapes: dict[str, tuple] = {}
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            old = _read_meta(self.out_dir)
            if old is not None:
                if not overwrite:
                    raise FileExistsError(
                        f"{self.out_dir!r} already holds explain_dataset results; pass "
                        "overwrite=True to replace them or choose another out_dir."
                    )
                for file in list(old.get("files", {}).values()) + [META_FILE]:
                    path = os.path.join(self.out_dir, file)
                    if os.path.exists(path):
                        os.remove(path)

    @staticmethod
    def _field(key: str) -> str:
        return key if key in ("heatmaps", "raw", "targets", "scores", "weights") else f"extra.{key}"

    def add(self, out: dict) -> None:
        rows = {}
        for key, value in out.items():
            dtype = np.int64 if key == "targets" else np.float32
            rows[self._field(key)] = np.asarray(value).astype(dtype, copy=False)
        for field, arr in rows.items():
            expected = self.row_shapes.setdefault(field, arr.shape[1:])
            if arr.shape[1:] != expected:
                raise ValueError(
                    f"Batch results of different shapes ({field}: {expected} then "
                    f"{arr.shape[1:]}): explain_dataset needs inputs of one size; resize them in "
                    "the dataset."
                )
        if self.out_dir is not None:
            if not self.files:
                for field, arr in rows.items():
                    path = os.path.join(self.out_dir, f"{field}.npy")
                    self.files[field] = _NpyAppender(path, arr.dtype, arr.shape[1:])
                self._write_meta(complete=False)
            for field, arr in rows.items():
                self.files[field].append(arr)
            for appender in self.files.values():  # headers last: the files are always valid
                appender.commit()
        if self.keep:
            for field, arr in rows.items():
                self.parts.setdefault(field, []).append(arr)
        self.n += len(rows["targets"])
        if self.out_dir is not None:
            self._write_meta(complete=False)

    def _write_meta(self, complete: bool) -> None:
        meta = {
            "format": FORMAT,
            **self.meta,
            "n": self.n,
            "complete": complete,
            "files": {field: f"{field}.npy" for field in self.files},
        }
        tmp = os.path.join(self.out_dir, META_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp, os.path.join(self.out_dir, META_FILE))

    def close(self, complete: bool) -> None:
        for appender in self.files.values():
            appender.close()
        if self.out_dir is not None and self.files:
            self._write_meta(complete=complete)

    def result(self) -> Explanation:
        if not self.keep:
            return load_explanations(self.out_dir)
        return _explanation({f: np.concatenate(p) for f, p in self.parts.items()}, self.meta)


def _explanation(arrays: dict, meta: dict) -> Explanation:
    """Files are named after the Explanation's fields; a method's extras as ``extra.<name>``."""
    fields = {k[len("extra."):] if k.startswith("extra.") else k: v for k, v in arrays.items()}
    return Explanation.from_arrays(fields, method=meta.get("method", ""), layer=meta.get("layer", ""))


def _read_meta(out_dir) -> dict | None:
    path = os.path.join(os.fspath(out_dir), META_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} was not written by tf_gradcam.explain_dataset "
            f"(format {meta.get('format')!r})."
        )
    return meta


class _NpyAppender:
    """A ``.npy`` file that grows by whole rows; its header is rewritten in place on commit.

    The header is padded to a fixed size large enough for any row count, so rewriting it never
    moves the data (which starts at a 64-byte aligned offset, as NumPy's own files do).
    """

    def __init__(self, path: str, dtype: np.dtype, row_shape: tuple) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.n = 0
        widest = len(self._dict_text(10**19))
        self.header_size = -(-(10 + widest + 1) // 64) * 64
        self.file = open(path, "w+b")
        self.commit()

    def _dict_text(self, n: int) -> str:
        shape = (int(n),) + self.row_shape
        return "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (
            np.lib.format.dtype_to_descr(self.dtype),
            shape,
        )

    def append(self, rows: np.ndarray) -> None:
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        self.n += len(rows)

    def commit(self) -> None:
        text = self._dict_text(self.n)
        body = text + " " * (self.header_size - 10 - len(text) - 1) + "\n"
        self.file.seek(0)
        self.file.write(
            b"\x93NUMPY\x01\x00" + struct.pack("<H", self.header_size - 10) + body.encode("latin1")
        )
        self.file.flush()
        self.file.seek(0, os.SEEK_END)

    def close(self) -> None:
        if not self.file.closed:
            self.commit()
            self.file.close()
