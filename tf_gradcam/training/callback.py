"""Explain while training: a Keras callback that logs heatmaps of fixed probe images."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.engine.checks import positive_int
from tf_gradcam.engine.explainer import Explainer
from tf_gradcam.explanation import Explanation
from tf_gradcam.render.overlay import get_colormap
from tf_gradcam.training import _images, probes
from tf_gradcam.training.tensorboard import class_label, log_heatmaps

__all__ = ["GradCAMCallback"]


class GradCAMCallback(keras.callbacks.Callback):
    """Log heatmaps of fixed probe images as ``model.fit`` runs: to TensorBoard, PNGs, GIFs.

    At the end of every ``every_n_epochs``-th epoch (epochs 0, n, 2n, ... counted from 0, as
    Keras' ``TensorBoard(histogram_freq=n)`` does) the probes are explained with the model's
    weights of that moment and one overlay per probe image and class is written as an image
    summary, at step = the epoch index (the same step Keras' ``TensorBoard`` uses for
    ``epoch_loss``)::

        gradcam/probe_03/circle            overlay of probe 3 for class "circle"
        gradcam_heatmap/probe_03/circle    the bare map, grey (log_heatmaps=True)
        gradcam/grid                       all overlays in one picture (log_grid=True)

    The summaries go to ``log_dir/gradcam`` (``subdir=``), so the callback and
    ``keras.callbacks.TensorBoard(log_dir)`` (which writes ``log_dir/train`` and
    ``log_dir/validation``) share one log directory: TensorBoard shows a run ``gradcam``
    beside ``train`` and ``validation``.

    The explainer is built once, in ``on_train_begin``, and compiles one step for the whole run;
    each epoch reuses it (``callback.explainer.trace_count`` stays 1). It reads the model's live
    variables, in inference mode (batch norm uses its moving statistics, dropout is off), draws
    no random numbers and never touches the optimizer: training is the same, to the bit, with
    and without the callback. All checks (the layer, the targets, the probes' shape, the
    colour map) run in ``on_train_begin``, before the first epoch.

    Args:
        inputs: the probes. An array ``[N, *input_shape]`` (used whole; a list or dict of arrays
            for a model with several inputs), an ``(x, y)`` tuple (``y`` the labels, sparse
            ``[N]`` or one-hot ``[N, C]``), or a batched ``tf.data.Dataset`` of ``x`` or
            ``(x, y[, w])`` from which the first ``max_probes`` samples are taken once, here.
            Taking them iterates the dataset once: a dataset that reshuffles on every iteration
            moves on to its next order, so pass a validation set (or arrays) when runs with and
            without the callback must match.
        log_dir: the TensorBoard log directory, or ``None`` to write only ``png_dir``.
        labels: ``[N]`` labels of ``inputs`` (instead of an ``(x, y)`` tuple).
        targets: the classes to explain. ``None``: each probe's label where labels are given,
            else its top class at that epoch (tag ending ``top``). An int: that class for all;
            ``N`` ints: one per probe; an ``[N, k]`` array: ``k`` classes per probe; a callable
            ``f(outputs) -> [N]`` scores (tag ending ``score``).
        top_k: explain each probe's ``k`` highest-scoring classes at that epoch, one picture
            per probe and rank (tag endings ``top_1`` ... ``top_k``). Not with ``targets``.
        layer: the layer to explain, as the explainers take it (``None``: the last spatial one).
        method: a method name (``"gradcam"``, ``"gradcam++"``, ... see ``tfg.METHODS``) or an
            :class:`~tf_gradcam.Explainer` subclass.
        method_options: keyword arguments of the method's constructor (e.g. ``{"score":
            "probabilities"}``).
        every_n_epochs: log after epochs 0, n, 2n, ...
        every_n_batches: instead of per epoch, log every this many training batches; the step
            is then the global batch count since ``fit`` began (1-based: batches done), and the
            PNG folders are ``batch_000120``. Not with ``every_n_epochs``.
        max_probes: how many samples to take from a dataset.
        class_names: a name per class index, for tags and file names (default ``class_<i>``).
        name: the tags' first part (default: the method's name, e.g. ``gradcam``,
            ``gradcam_plus_plus``).
        subdir: the folder under ``log_dir`` the summaries go to; ``None`` or ``""``: ``log_dir``.
        log_heatmaps: also log the bare maps.
        log_grid: also log all overlays tiled in one picture.
        colormap, alpha: how the maps are drawn (see :func:`tfg.overlay`).
        display_images: the pictures to draw the maps on, ``[N, H, W, 3]`` (e.g. the images
            before normalisation); default the probe inputs (stretched to ``[0, 1]`` per image
            when they are outside ``[0, 1]`` and ``[0, 255]``).
        png_dir: also write PNGs, ``png_dir/epoch_003/probe_01_circle.png`` (and
            ``..._heatmap.png``, ``grid.png``): no TensorBoard needed.
        animation: ``"gif"``, ``"grid"`` or both (a list): at the end of training write, per
            probe and class, ``png_dir/probe_01_circle.gif`` (one frame per logged step) and/or
            ``png_dir/probe_01_circle_epochs.png`` (the frames side by side), each frame
            captioned with its epoch and class. Needs ``png_dir``. The frames stay in memory
            until then (N x steps x H x W x 3 bytes).
        frame_duration_ms: how long each GIF frame shows.
        batch_size: probe rows per compiled step (default: the explainer's, 32).

    Attributes:
        explainer: the :class:`~tf_gradcam.Explainer` (after ``on_train_begin``).
        last_explanation: the :class:`~tf_gradcam.Explanation` logged last.
        logged_steps: the steps logged so far in this ``fit``.

    Raises:
        ValueError: at construction for a bad argument; in ``on_train_begin`` (so from ``fit``,
            before any epoch) for a layer, targets or probes that do not fit the model.
    """

    def __init__(
        self,
        inputs: Any,
        log_dir: str | os.PathLike | None = None,
        *,
        labels: Any = None,
        targets: Any = None,
        top_k: int | None = None,
        layer: str | keras.layers.Layer | None = None,
        method: str | type[Explainer] = "gradcam",
        method_options: dict | None = None,
        every_n_epochs: int = 1,
        every_n_batches: int | None = None,
        max_probes: int = 16,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        subdir: str | None = "gradcam",
        log_heatmaps: bool = False,
        log_grid: bool = False,
        colormap: str = "jet",
        alpha: float = 0.4,
        display_images: Any = None,
        png_dir: str | os.PathLike | None = None,
        animation: str | Sequence[str] | None = None,
        frame_duration_ms: int = 500,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.every_n_epochs = positive_int(every_n_epochs, "every_n_epochs")
        self.every_n_batches = (None if every_n_batches is None
                                else positive_int(every_n_batches, "every_n_batches"))
        if self.every_n_batches is not None and self.every_n_epochs != 1:
            raise ValueError(
                f"Give every_n_epochs or every_n_batches, not both (got every_n_epochs="
                f"{every_n_epochs!r}, every_n_batches={every_n_batches!r})."
            )
        self.max_probes = positive_int(max_probes, "max_probes")
        self.top_k = None if top_k is None else positive_int(top_k, "top_k")
        if self.top_k is not None and targets is not None:
            raise ValueError(
                f"top_k={top_k!r} explains each probe's predicted classes; it cannot be combined "
                f"with targets={targets!r}. Pass one of them."
            )
        self.batch_size = None if batch_size is None else positive_int(batch_size, "batch_size")
        self.method_class = probes.method_class(method)
        if method_options is None:
            method_options = {}
        if not isinstance(method_options, dict):
            raise ValueError(
                f"method_options must be a dict of keyword arguments, got {method_options!r}."
            )
        if "layer" in method_options or "model" in method_options:
            raise ValueError(
                f"method_options {sorted(method_options)} may not set 'model' or 'layer': the "
                "callback's model is explained; pass layer= to the callback."
            )
        probes.check_options(self.method_class, method_options)
        self.method_options = dict(method_options)
        one = (str, keras.layers.Layer)
        several = isinstance(layer, (list, tuple)) and layer and all(
            isinstance(x, one) for x in layer)
        if not (layer is None or isinstance(layer, one) or several):
            raise ValueError(
                f"layer must be a layer name, a keras layer, a list of them (for a method that "
                f"fuses layers) or None; got {layer!r}."
            )
        self.layer = layer
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
        self.alpha = float(alpha)
        try:
            get_colormap(colormap)
        except (ValueError, TypeError, KeyError):
            raise ValueError(
                "colormap must be a matplotlib colour map or its name such as 'jet', got "
                f"{colormap!r}."
            ) from None
        self.colormap = colormap
        if class_names is not None:
            if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
                raise ValueError(f"class_names must be a sequence of strings, got {class_names!r}.")
            class_names = tuple(class_names)
        self.class_names = class_names
        if name is None:
            name = self.method_class.name.replace("+", "_plus")  # gradcam++ -> gradcam_plus_plus
        self.name = _images.safe_name(name)
        if log_dir is None and png_dir is None:
            raise ValueError("Nothing to write to: give log_dir (TensorBoard), png_dir, or both.")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.subdir = subdir or ""
        self.png_dir = None if png_dir is None else os.fspath(png_dir)
        self.animation = probes.animations(animation)
        if self.animation and self.png_dir is None:
            raise ValueError(
                f"animation={animation!r} writes its files into png_dir: give png_dir."
            )
        self.frame_duration_ms = positive_int(frame_duration_ms, "frame_duration_ms")
        self.log_bare_heatmaps = bool(log_heatmaps)
        self.log_grid = bool(log_grid)
        if targets is not None and not callable(targets):
            try:  # the form now; the range and the count against the model in on_train_begin
                targets_lib.class_indices(targets, None, None)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{err} (got targets={targets!r})") from None
        self.targets = targets

        # The probes are taken now, once: a dataset is never iterated again.
        self._from_dataset = isinstance(inputs, tf.data.Dataset)
        self._raw_inputs, raw_labels = probes.take_probes(inputs, self.max_probes)
        if labels is not None:
            raw_labels = labels
        self._n = probes.count_of(self._raw_inputs)
        # Labels become targets only on a multi-class classifier, which on_train_begin knows;
        # a regression target, a mask or a binary 0/1 label is kept but never read as a class.
        self._raw_labels = raw_labels
        if raw_labels is not None and (np.ndim(raw_labels) == 0 or len(raw_labels) != self._n):
            raise ValueError(
                f"labels must hold one entry per probe ([{self._n}] for these probes); got "
                f"shape {np.shape(raw_labels)}."
            )
        self._display_source = None if display_images is None else np.asarray(display_images)
        if self._display_source is not None and len(self._display_source) != self._n:
            raise ValueError(
                f"display_images has {len(self._display_source)} pictures for {self._n} probes."
            )

        self.explainer: Explainer | None = None
        self.last_explanation: Explanation | None = None
        self.logged_steps: list[int] = []
        self._writer = None
        self._batches_seen = 0
        self._epoch_base = 0
        self._frames: dict[tuple[int, str], list[tuple[str, np.ndarray]]] = defaultdict(list)

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, logs=None):
        if self.explainer is None or self.explainer.model is not self.model:
            self._build()
        self._batches_seen = 0
        self._epoch_base = 0
        self.logged_steps = []
        self._frames = defaultdict(list)
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, self.subdir))

    def _build(self) -> None:
        try:
            explainer = self.method_class(self.model, self.layer, **self.method_options)
        except (ValueError, TypeError) as err:
            raise ValueError(f"GradCAMCallback cannot explain this model: {err}") from err
        # The maps have the spatial axes of the input they are drawn over: images need two.
        spec = explainer.input_specs[explainer.spatial_input]
        if spec.shape.rank != 4:
            raise ValueError(
                f"GradCAMCallback logs 2D maps as images, but the maps are drawn over the model "
                f"input of shape {tuple(spec.shape)}: an image input [N, H, W, C] is needed."
            )
        if self._from_dataset and probes.rank_of(self._raw_inputs) == spec.shape.rank - 1:
            raise ValueError(
                "GradCAMCallback's probe dataset yields single samples of shape "
                f"{np.shape(tf.nest.flatten(self._raw_inputs)[0])[1:]}...: batch it first, "
                "e.g. dataset.batch(16)."
            )
        try:
            arrays = explainer.prepare_inputs(self._raw_inputs)
        except ValueError as err:
            raise ValueError(f"GradCAMCallback's probe inputs do not fit the model: {err}") from err
        self._probe_arrays = arrays
        self._targets = self._targets_for(explainer.num_classes)
        try:
            plan = targets_lib.resolve(self._targets, explainer.head_info, self._n,
                                       top_k=self.top_k)
            explainer.check_plan(plan)
        except (ValueError, TypeError) as err:
            raise ValueError(f"GradCAMCallback's targets do not fit the model: {err}") from err
        self._probe_ids = np.repeat(np.arange(self._n), plan.k)
        self._row_labels = self._labels_of(plan)
        if self._display_source is not None:
            display = self._display_source
        else:
            display = arrays[explainer.spatial_input]
        self._display = _images.displayable(display)
        if self._display.shape[1:3] != arrays[explainer.spatial_input].shape[1:3]:
            raise ValueError(
                f"display_images are {self._display.shape[1:3]} pixels but the probes "
                f"{arrays[explainer.spatial_input].shape[1:3]}."
            )
        if self.class_names is not None and explainer.num_classes is not None and len(
                self.class_names) != explainer.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names but the model has "
                f"{explainer.num_classes} classes."
            )
        # A dry run of the whole path (compiled step, rendering, PNG encoding; nothing written)
        # fails now, not after the first epoch; it also traces the step before training starts.
        self.explainer = explainer
        try:
            self._render(self.explain(), 0)
        except (ValueError, KeyError, tf.errors.InvalidArgumentError) as err:
            self.explainer = None
            raise ValueError(f"GradCAMCallback cannot explain or draw the probes: {err}") from err

    def _targets_for(self, num_classes: int | None) -> Any:
        """The targets to resolve: the user's, else the labels on a multi-class classifier (a
        regression target, a mask or a binary 0/1 label is kept but never read as a class)."""
        if (self.targets is None and self.top_k is None and self._raw_labels is not None
                and num_classes is not None and num_classes > 1):
            try:
                return targets_lib.label_classes(self._raw_labels, num_classes, self._n)
            except ValueError as err:
                raise ValueError(f"GradCAMCallback's labels do not fit the model: {err}") from err
        return self.targets

    def _labels_of(self, plan: targets_lib.Plan) -> list[str]:
        """The tag ending of each row: ``top`` / ``top_j`` where the class is the prediction
        (so tags stay stable across epochs), ``score`` for a callable, else the class."""
        if plan.fn is not None:
            return ["score"] * self._n
        assert plan.classes is not None
        codes = plan.rows(0, self._n).reshape(-1)
        if self.top_k is not None and self.top_k > 1:
            return [f"top_{-int(c)}" for c in codes]
        return ["top" if c < 0 else class_label(int(c), self.class_names) for c in codes]

    # ------------------------------------------------------------------ logging
    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_batches is None and epoch % self.every_n_epochs == 0:
            self.log(epoch, folder=f"epoch_{epoch:03d}", caption=f"epoch {epoch}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self._batches_seen

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_batches is None:
            return
        # `batch` is the last batch index of this call within the epoch: with
        # steps_per_execution > 1 one call covers several batches.
        done = self._epoch_base + int(batch) + 1
        crossed = done // self.every_n_batches > self._batches_seen // self.every_n_batches
        self._batches_seen = done
        if crossed:
            self.log(done, folder=f"batch_{done:06d}", caption=f"batch {done}")

    def explain(self) -> Explanation:
        """Explain the probes with the model's current weights (one compiled step per chunk).

        One row per probe and class, in probe order (``k`` rows per probe for ``k`` classes)."""
        if self.explainer is None:
            raise RuntimeError("The callback has no explainer before on_train_begin (model.fit).")
        parts = list(self.explainer.run(self._probe_arrays, self._targets, top_k=self.top_k,
                                        batch_size=self.batch_size))
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if merged["targets"].ndim == 2:  # [N, k, ...] -> one row per (probe, class)
            merged = {k: v.reshape((-1,) + v.shape[2:]) for k, v in merged.items()}
        return Explanation.from_arrays(merged, method=self.explainer.name,
                                       layer=self.explainer.layer_names)

    def log(self, step: int, *, folder: str | None = None, caption: str | None = None) -> None:
        """Explain the probes now and write the pictures at ``step`` to every sink."""
        result = self.explain()
        logged = self._render(result, step, self._writer)
        if self.png_dir is not None:
            out = os.path.join(self.png_dir, folder or f"step_{step:06d}")
            os.makedirs(out, exist_ok=True)
            for item in logged:
                _images.write_png(os.path.join(out, probes.file_name(item)), item.png)
        if self.animation:
            for item in logged:
                if item.kind == "overlay":
                    what = class_label(item.target, self.class_names)
                    when = caption or str(step)
                    text = when if what == item.label else f"{when}: {what}"
                    self._frames[(item.probe, item.label)].append((text, item.image))
        self.last_explanation = result
        self.logged_steps.append(int(step))

    def _render(self, result: Explanation, step: int, writer=None):
        """The one code path: :func:`log_heatmaps` renders, and writes when given a writer."""
        per_probe = len(self._probe_ids) // max(self._n, 1)
        where = f" on layer {result.layer}" if result.layer else ""
        return log_heatmaps(
            writer, self._display, result, step, self.name,
            class_names=self.class_names, colormap=self.colormap, alpha=self.alpha,
            max_images=None, include_heatmaps=self.log_bare_heatmaps, include_grid=self.log_grid,
            probes=self._probe_ids, labels=self._row_labels,
            grid_columns=per_probe if per_probe > 1 else None,
            description=f"{result.method}{where}, logged by tf_gradcam.GradCAMCallback",
        )

    # ------------------------------------------------------------------ the end
    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.animation and self._frames:
            _images.write_animations(self._frames, self.png_dir, self._n, self.animation,
                                     self.frame_duration_ms)
