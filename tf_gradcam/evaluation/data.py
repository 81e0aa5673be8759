"""What ``tfg.evaluate`` reads: images as arrays, with their labels, boxes and masks if known."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tf_gradcam.data.images import fit_image, image_files, read_image


@dataclass
class Data:
    """Images ``[N, ...]`` in the model's input space and what is known about them."""

    images: np.ndarray
    labels: np.ndarray | None = None
    boxes: np.ndarray | None = None
    masks: np.ndarray | None = None
    names: list[str] | None = None


def gather(data: Any, model: Any, *, labels: Any = None, boxes: Any = None, masks: Any = None,
           max_images: int | None = None) -> Data:
    """:class:`Data` from an array, an ``(x, y)`` tuple, a ``tf.data.Dataset`` of ``x`` or
    ``(x, y, ...)`` (batched or not), an object with ``images`` (and ``labels``, ``boxes``,
    ``masks``: :class:`tf_gradcam.data.ShapesData`), or a folder / list of image files (read
    with OpenCV, resized to the model's input, scaled to [0, 1])."""
    found: dict[str, Any] = {}
    names = None
    if isinstance(data, (str, os.PathLike)) or (
            isinstance(data, (list, tuple)) and data and all(
                isinstance(p, (str, os.PathLike)) for p in data)):
        paths = image_files([data] if isinstance(data, (str, os.PathLike)) else list(data))
        images = read_images(paths, model)
        names = [os.path.basename(p) for p in paths]
    elif hasattr(data, "images"):
        images = np.asarray(data.images)
        for key in ("labels", "boxes", "masks"):
            found[key] = getattr(data, key, None)
    elif _is_dataset(data):
        images, found["labels"] = _from_dataset(data, model, max_images)
    elif isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise ValueError(f"data as a tuple is (images, labels), got {len(data)} parts.")
        images = np.asarray(data[0])
        found["labels"] = data[1] if len(data) > 1 else None
    else:
        images = np.asarray(data.numpy() if hasattr(data, "numpy") else data)
    if images.dtype == object or not (np.issubdtype(images.dtype, np.floating)
                                      or np.issubdtype(images.dtype, np.integer)):
        raise ValueError(f"data must hold images as real numbers, got dtype {images.dtype}.")
    images = images.astype(np.float32, copy=False)
    for key, given in (("labels", labels), ("boxes", boxes), ("masks", masks)):
        if given is not None:
            found[key] = given
    n = len(images) if max_images is None else min(len(images), int(max_images))
    if n == 0:
        raise ValueError("data holds no images.")
    out = Data(images=images[:n], names=names[:n] if names else None)
    for key in ("labels", "boxes", "masks"):
        value = found.get(key)
        if value is None:
            continue
        arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if len(arr) < n:
            raise ValueError(f"{key} has {len(arr)} rows for {n} images.")
        arr = arr[:n]
        if key == "labels":
            if arr.ndim == 2 and arr.shape[1] > 1:  # one-hot rows
                arr = arr.argmax(axis=1)
            arr = arr.reshape(n).astype(np.int64)
        setattr(out, key, arr)
    return out


def read_images(paths: Sequence[str], model: Any, *, raw_pixels: bool = False) -> np.ndarray:
    """``[N, H, W, C] float32``: the files, resized to the model's input (area when shrinking,
    bilinear when enlarging), RGB or grey as the model takes, in ``[0, 1]`` (``[0, 255]`` with
    ``raw_pixels``). A model of any input size takes the first image's."""

    shape = tuple(model.inputs[0].shape) if hasattr(model, "inputs") else ()
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"Image files need a model with input [N, H, W, 1 or 3]; this one takes "
                         f"{list(shape)}.")
    _, height, width, channels = shape
    out = []
    for path in paths:
        img = read_image(os.fspath(path), channels)
        if img is None:
            raise ValueError(f"could not read image {path} (not an image OpenCV can decode)")
        if height is None or width is None:
            height, width = img.shape[:2]
        out.append(fit_image(img, height, width, channels))
    batch = np.stack(out).astype(np.float32)
    return batch if raw_pixels else batch / 255.0


def _is_dataset(data: Any) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def _from_dataset(dataset: Any, model: Any, max_images: int | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    from tf_gradcam.engine.pipeline import split_element

    rank = len(model.inputs[0].shape) if hasattr(model, "inputs") else None
    xs, ys = [], []
    total = 0
    for element in dataset:
        x, y = split_element(element, 1)
        x = np.asarray(x)
        batched = rank is None or x.ndim == rank
        xs.append(x if batched else x[None])
        if y is not None:
            y = np.asarray(y)
            ys.append(y if batched else y[None])
        total += len(xs[-1])
        if max_images is not None and total >= max_images:
            break
    if not xs:
        raise ValueError("The dataset is empty: nothing to evaluate.")
    labels = np.concatenate(ys) if ys and len(ys) == len(xs) else None
    return np.concatenate(xs), labels
