"""Blend heatmaps over images as ``uint8`` RGB pictures.

The blend is convex: ``out = (1 - alpha) * image + alpha * colormap(heatmap)``. It
never overflows or washes the picture out (unlike adding the coloured map onto the
image), ``alpha=0`` gives back the image and ``alpha=1`` gives the colormap colours.

How images are brought to ``uint8`` for display (see :func:`to_display_rgb`):

* ``uint8``: used as is. Other integer types and ``bool``: clipped to ``[0, 255]``
  (``bool``: ``True`` is 255).
* floating point, all values in ``[0, 1]``: multiplied by 255.
* floating point, minimum ``>= 0`` and maximum in ``(1, 255]``: taken as ``[0, 255]``.
* floating point otherwise (negative values, as after ``preprocess_input``-style
  centring, or values above 255): min-max rescaled to ``[0, 255]`` for display only.

NaN and infinite pixels or heat values are shown as 0 instead of spreading garbage.
"""

from __future__ import annotations

from typing import Union

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap

__all__ = ["overlay", "overlay_batch", "to_display_rgb", "get_colormap", "colorize"]

ColormapLike = Union[str, Colormap]


def get_colormap(colormap: ColormapLike) -> Colormap:
    """A matplotlib ``Colormap`` from a registered name (e.g. ``"jet"``) or a ``Colormap``."""
    if isinstance(colormap, Colormap):
        return colormap
    if isinstance(colormap, str):
        try:
            return colormaps[colormap]
        except KeyError:
            raise ValueError(
                f"unknown colormap {colormap!r}; use a matplotlib colormap name such as "
                f"'jet', 'viridis', 'inferno', 'turbo', or a matplotlib.colors.Colormap"
            ) from None
    raise TypeError(
        f"colormap must be a name or a matplotlib.colors.Colormap, got {type(colormap).__name__}"
    )


def _check_alpha(alpha: float) -> float:
    # bool is an int subclass; alpha=True is almost surely a mistake.
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    value = float(alpha)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return value


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image to ``uint8 [H, W, 3]`` RGB for display.

    Args:
        image: ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` (alpha dropped);
            any real dtype, scaled by the rules in this module's docstring.

    Returns:
        ``np.uint8 [H, W, 3]``; grey images are repeated over the three channels.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (1, 3, 4):
        img = img[..., :3]
    elif img.ndim != 2:
        raise ValueError(
            f"image must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {img.shape}"
        )
    if img.dtype == np.uint8:
        out = img
    elif img.dtype == np.bool_:
        out = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.integer):
        out = np.clip(img, 0, 255).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        out = _float_to_uint8(img)
    else:
        raise TypeError(f"image must have a real dtype, got {img.dtype}")
    if out.ndim == 2:
        out = out[..., None]
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def _float_to_uint8(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32)
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros(img.shape, dtype=np.uint8)
    lo = float(img[finite].min())
    hi = float(img[finite].max())
    img = np.where(finite, img, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        scaled = img * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = img
    else:
        # Preprocessed inputs (mean-centred, [-1, 1], ...) have no fixed display range;
        # stretching the finite values over [0, 255] at least shows the content.
        span = hi - lo
        scaled = (img - lo) * (255.0 / span) if span > 0 else np.zeros_like(img)
        scaled = np.where(finite, scaled, 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _prepare_heatmap(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """``float32 [height, width]`` in ``[0, 1]``: squeezed, cleaned and resized."""
    heat = np.asarray(heatmap)
    if heat.ndim == 3 and heat.shape[-1] == 1:
        heat = heat[..., 0]
    if heat.ndim != 2:
        hint = (
            " For 1D heatmaps ([T]) use tf_gradcam.plot, which draws them along the signal."
            if heat.ndim == 1
            else ""
        )
        raise ValueError(f"heatmap must be 2D [h, w], got shape {heat.shape}.{hint}")
    if heat.shape[0] == 0 or heat.shape[1] == 0:
        raise ValueError(f"heatmap is empty, shape {heat.shape}")
    heat = heat.astype(np.float32)
    # NaN/inf -> 0 before resizing; bilinear interpolation would spread a NaN to its
    # neighbours and the colormap would paint them with its "bad" colour.
    heat = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    if heat.shape != (height, width):
        heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(heat, 0.0, 1.0)


def colorize(heatmap: np.ndarray, colormap: ColormapLike = "jet") -> np.ndarray:
    """Colour a heatmap: ``[h, w]`` float in ``[0, 1]`` to ``np.uint8 [h, w, 3]`` RGB.

    Values outside ``[0, 1]`` are clipped; NaN and inf count as 0.
    """
    heat = np.asarray(heatmap)
    heat = _prepare_heatmap(heat, *heat.shape[:2])
    return get_colormap(colormap)(heat, bytes=True)[..., :3]


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    colormap: ColormapLike = "jet",
    alpha: float = 0.4,
) -> np.ndarray:
    """Blend a heatmap over one image.

    Args:
        image: ``[H, W, 3]``, ``[H, W]`` or ``[H, W, 1]``, ``uint8`` or float (a float
            image in ``[0, 1]`` is scaled by 255, one with max ``> 1`` is read as
            ``[0, 255]``, one with negative values or values ``> 255`` is min-max
            rescaled for display).
        heatmap: ``[h, w]`` (or ``[h, w, 1]``) float in ``[0, 1]``; resized to
            ``[H, W]`` with bilinear interpolation when the sizes differ; values
            outside ``[0, 1]`` are clipped, NaN/inf count as 0.
        colormap: a matplotlib colormap name or ``Colormap`` object.
        alpha: weight of the coloured heatmap, in ``[0, 1]``: 0 returns the image,
            1 the colormap colours.

    Returns:
        ``np.uint8 [H, W, 3]`` RGB.

    Raises:
        ValueError: for a bad ``alpha``, an unknown colormap name, a heatmap that is
            not 2D, or an image of unsupported shape.
    """
    a = _check_alpha(alpha)
    cmap = get_colormap(colormap)
    rgb = to_display_rgb(image)
    heat = _prepare_heatmap(heatmap, rgb.shape[0], rgb.shape[1])
    colours = cmap(heat, bytes=True)[..., :3]
    if a == 0.0:
        return rgb.copy()
    if a == 1.0:
        return np.ascontiguousarray(colours)
    blended = (1.0 - a) * rgb.astype(np.float32) + a * colours.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay_batch(
    images: np.ndarray,
    heatmaps: np.ndarray,
    *,
    colormap: ColormapLike = "jet",
    alpha: float = 0.4,
) -> np.ndarray:
    """Blend ``N`` heatmaps over ``N`` images (see :func:`overlay` for the rules).

    Args:
        images: ``[N, H, W, 3]``, ``[N, H, W]`` or ``[N, H, W, 1]``, ``uint8`` or float.
            The scaling rule is applied per image.
        heatmaps: ``[N, h, w]`` float in ``[0, 1]``.
        colormap, alpha: as for :func:`overlay`.

    Returns:
        ``np.uint8 [N, H, W, 3]``.
    """
    imgs = np.asarray(images)
    heats = np.asarray(heatmaps)
    if heats.ndim == 2:
        raise ValueError(
            f"heatmaps must be [N, h, w], got shape {heats.shape}; 1D heatmaps [N, T] "
            "cannot be overlaid on images, use tf_gradcam.plot"
        )
    if imgs.ndim not in (3, 4):
        raise ValueError(f"images must be [N, H, W] or [N, H, W, C], got shape {imgs.shape}")
    if len(imgs) != len(heats):
        raise ValueError(f"got {len(imgs)} images but {len(heats)} heatmaps")
    _check_alpha(alpha)
    cmap = get_colormap(colormap)
    if len(imgs) == 0:
        return np.zeros((0, *imgs.shape[1:3], 3), dtype=np.uint8)
    return np.stack(
        [overlay(img, heat, colormap=cmap, alpha=alpha) for img, heat in zip(imgs, heats)]
    )
