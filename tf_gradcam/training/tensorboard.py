"""Heatmaps to TensorBoard, by hand: overlays, bare maps and a grid as image summaries.

:func:`log_heatmaps` is the one code path :class:`~tf_gradcam.GradCAMCallback` logs through.

The records are the ones ``tf.summary.image`` writes (TensorBoard's image plugin: a string
tensor ``[width, height, png...]``), written with the core ``tf.summary.write``: logging needs no
``tensorboard`` package (``tf.summary.image`` itself is a stub that raises without it), only
viewing does. The PNG bytes written are returned too, so other sinks reuse the same pictures.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tf_gradcam.explanation import Explanation
from tf_gradcam.training import _images

__all__ = ["LoggedImage", "log_heatmaps", "overlay_tag"]

# TensorBoard's image plugin; its metadata content is an empty ImagePluginData (version 0).
_IMAGE_PLUGIN = "images"

_WRITERS: dict[str, Any] = {}


class LoggedImage(NamedTuple):
    """One picture :func:`log_heatmaps` made (and wrote, given a writer).

    Attributes:
        tag: the summary tag, e.g. ``"gradcam/probe_03/circle"``.
        kind: ``"overlay"``, ``"heatmap"`` (bare map, grey) or ``"grid"``.
        probe: index of the image in ``images`` (``-1`` for the grid).
        label: the tag's last part (the class name, ``class_2``, ``top_1``; ``""`` for the grid).
        target: the class explained (``-1`` for the grid or a callable's score).
        image: ``uint8 [H, W, 3]`` (overlay, grid) or ``[H, W, 1]`` (heatmap).
        png: the PNG bytes written.
    """

    tag: str
    kind: str
    probe: int
    label: str
    target: int
    image: np.ndarray
    png: bytes


def overlay_tag(name: str, probe: int, label: str, n_probes: int = 0, kind: str = "overlay") -> str:
    """The tag of a probe's picture: ``name/probe_03/label`` (overlay) or
    ``name_heatmap/probe_03/label`` (bare map). Indices have at least two digits."""
    width = max(2, len(str(max(n_probes - 1, 0))))
    section = name if kind == "overlay" else f"{name}_heatmap"
    return f"{section}/probe_{probe:0{width}d}/{label}"


def class_label(target: int, class_names: Sequence[str] | None) -> str:
    """``class_names[target]`` (made tag-safe), else ``class_<target>``; ``score`` for -1."""
    target = int(target)
    if target < 0:
        return "score"
    if class_names is not None and target < len(class_names):
        return _images.safe_name(class_names[target])
    return f"class_{target}"


def log_heatmaps(
    log_dir_or_writer: str | os.PathLike | Any | None,
    images: Any,
    explanation: Explanation,
    step: int,
    name: str = "gradcam",
    *,
    class_names: Sequence[str] | None = None,
    colormap: str = "jet",
    alpha: float = 0.4,
    max_images: int | None = 16,
    include_heatmaps: bool = False,
    include_grid: bool = False,
    probes: Sequence[int] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    grid_columns: int | None = None,
    description: str | None = None,
) -> list[LoggedImage]:
    """Log one overlay per explained image (and optionally bare maps and a grid) at ``step``.

    Tags: ``{name}/probe_03/{class}`` for overlays, ``{name}_heatmap/probe_03/{class}`` for the
    bare maps (grey PNG, 255 at the map's peak, the map's own ``[0, 1]`` scale times 255) and
    ``{name}/grid`` for all overlays tiled in one picture. ``{class}`` is the class name from
    ``class_names``, else ``class_<index>``.

    Args:
        log_dir_or_writer: a directory (a writer is made once per directory and reused), a
            ``tf.summary.SummaryWriter``, or ``None`` to only render and return the pictures.
        images: the pictures under the maps, ``[P, H, W, 3]``, ``[P, H, W, 1]`` or ``[P, H, W]``,
            uint8 or float (``[0, 1]``, ``[0, 255]``, or any range: stretched per image).
        explanation: the maps, ``M`` rows; ``explanation.heatmaps`` ``[M, H, W]``.
        step: the summary step (the callback passes the epoch).
        name: the tags' first part (TensorBoard's section).
        class_names: a name per class index, for the tags.
        colormap, alpha: passed to ``tf_gradcam.render.overlay_batch``.
        max_images: log at most this many rows of ``explanation`` (the first ones); ``None``: all.
        include_heatmaps: also log the bare maps.
        include_grid: also log a grid of all overlays.
        probes: ``[M]`` index into ``images`` of each row (default row ``i`` is image ``i``):
            several rows may explain one image for different classes.
        labels: ``[M]`` tag endings to use instead of the class names (the callback passes
            ``top`` / ``top_1``... when the class explained is the prediction, so tags stay stable).
        grid_columns: columns of the grid (default near-square).
        description: text shown with the summaries in TensorBoard.

    Returns:
        The :class:`LoggedImage` s made, overlays first, then heatmaps, then the grid.

    Raises:
        ValueError: on mismatched lengths, a map that is not 2D, or bad options.
    """
    from tf_gradcam.render import overlay_batch

    if not isinstance(explanation, Explanation):
        raise ValueError(
            f"explanation must be a tfg.Explanation (what an explainer returns); got "
            f"{type(explanation).__name__}."
        )
    heat = np.asarray(explanation.heatmaps)
    if heat.ndim != 3:
        raise ValueError(
            f"Only 2D maps [N, H, W] can be logged as images; the explanation's heatmaps have "
            f"shape {heat.shape}."
        )
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) < 1):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}.")
    pictures = _images.displayable(images)
    n_rows = len(heat) if max_images is None else min(len(heat), int(max_images))
    if probes is None:
        if len(pictures) != len(heat):
            raise ValueError(
                f"Got {len(pictures)} images for {len(heat)} heatmaps: give one image per map, "
                "or probes= saying which image each map belongs to."
            )
        probe_ids = np.arange(len(heat))
    else:
        probe_ids = np.asarray(probes, np.int64).reshape(-1)
        if len(probe_ids) != len(heat):
            raise ValueError(f"probes has {len(probe_ids)} entries for {len(heat)} heatmaps.")
        if probe_ids.size and (probe_ids.min() < 0 or probe_ids.max() >= len(pictures)):
            raise ValueError(
                f"probes must index the {len(pictures)} images; got values from "
                f"{probe_ids.min()} to {probe_ids.max()}."
            )
    targets = np.asarray(explanation.targets).reshape(-1)
    if labels is None:
        row_labels = [class_label(t, class_names) for t in targets]
    else:
        row_labels = [_images.safe_name(lb) for lb in labels]
        if len(row_labels) != len(heat):
            raise ValueError(f"labels has {len(row_labels)} entries for {len(heat)} heatmaps.")
    if pictures.shape[1:3] != heat.shape[1:3]:
        raise ValueError(
            f"The images are {pictures.shape[1:3]} pixels but the maps {heat.shape[1:3]}: "
            "log the images the maps were computed on."
        )

    rows = np.arange(n_rows)
    overlays = overlay_batch(pictures[probe_ids[rows]], heat[rows], colormap=colormap, alpha=alpha)
    overlays = np.asarray(overlays, np.uint8)
    n_probes = len(pictures)
    logged: list[LoggedImage] = []
    for i in rows:
        img = overlays[i]
        logged.append(LoggedImage(
            overlay_tag(name, int(probe_ids[i]), row_labels[i], n_probes), "overlay",
            int(probe_ids[i]), row_labels[i], int(targets[i]), img, _images.encode_png(img)))
    if include_heatmaps:
        grey = _images.heatmap_to_uint8(heat[rows])
        for i in rows:
            logged.append(LoggedImage(
                overlay_tag(name, int(probe_ids[i]), row_labels[i], n_probes, "heatmap"),
                "heatmap", int(probe_ids[i]), row_labels[i], int(targets[i]), grey[i],
                _images.encode_png(grey[i])))
    if include_grid and n_rows:
        cols = grid_columns or _images.grid_columns(n_rows)
        grid = _images.tile(list(overlays), cols)
        logged.append(LoggedImage(f"{name}/grid", "grid", -1, "", -1, grid,
                                  _images.encode_png(grid)))

    if log_dir_or_writer is not None:
        write_images(log_dir_or_writer, logged, step, description=description)
    return logged


def write_images(
    log_dir_or_writer: str | os.PathLike | Any,
    logged: Sequence[LoggedImage],
    step: int,
    *,
    description: str | None = None,
) -> None:
    """Write already rendered pictures as image summaries at ``step`` and flush."""
    writer = _writer_for(log_dir_or_writer)
    # Keras' TensorBoard callback may hold a `record_if` that is false between its update
    # steps; our summaries are written whatever it says.
    with writer.as_default(), tf.summary.record_if(True):
        for item in logged:
            _write_png_summary(item.tag, [item.png], item.image.shape, int(step), description)
    writer.flush()


def _write_png_summary(tag: str, pngs: list[bytes], shape: tuple, step: int,
                       description: str | None) -> None:
    """The record ``tf.summary.image(tag, images, step)`` writes, from PNGs already encoded."""
    metadata = summary_pb2.SummaryMetadata(
        summary_description=description or "",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=_IMAGE_PLUGIN, content=b""),
    )
    height, width = shape[0], shape[1]
    tensor = tf.constant([str(width).encode(), str(height).encode(), *pngs], dtype=tf.string)
    tf.summary.write(tag=tag, tensor=tensor, step=step, metadata=metadata)


def _writer_for(log_dir_or_writer: Any):
    if isinstance(log_dir_or_writer, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(log_dir_or_writer))
        if path in _WRITERS and not os.path.isdir(path):
            # The folder was removed since: a cached writer would write into the void.
            _WRITERS.pop(path).close()
        if path not in _WRITERS:
            _WRITERS[path] = tf.summary.create_file_writer(path)
        return _WRITERS[path]
    if hasattr(log_dir_or_writer, "as_default") and hasattr(log_dir_or_writer, "flush"):
        return log_dir_or_writer
    raise ValueError(
        "log_dir_or_writer must be a directory path, a tf.summary.SummaryWriter or None; got "
        f"{type(log_dir_or_writer).__name__}."
    )
