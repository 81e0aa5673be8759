"""Small picture helpers shared by the TensorBoard logger and the callback's file sinks.

Everything here is NumPy (and OpenCV for PNG encoding) on host memory: no TensorFlow op, no
random number. Captions use the NumPy bitmap font of :mod:`._font`, not OpenCV's text, whose
metrics differ between OpenCV versions.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import cv2
import numpy as np

from tf_gradcam.training import _font

#: Pixels of white between the tiles of a grid.
GAP = 2


def displayable(images: np.ndarray) -> np.ndarray:
    """Model inputs ``[N, H, W, C]`` (or ``[N, H, W]``) as pictures the overlay can draw on.

    uint8 stays as it is. Floats in ``[0, 1]`` stay; floats in ``[0, 255]`` are divided by 255;
    anything else (standardised inputs, ``[-1, 1]`` MobileNet inputs) is stretched per image to
    ``[0, 1]``. One channel becomes ``[N, H, W]``; four (RGBA) lose the alpha; another count
    is averaged into grey.
    """
    x = np.asarray(images)
    if x.ndim == 4:
        c = x.shape[-1]
        if c == 1:
            x = x[..., 0]
        elif c == 4:
            x = x[..., :3]
        elif c != 3:
            x = x.astype(np.float32).mean(axis=-1)
    if x.ndim != 3 and x.ndim != 4:
        raise ValueError(
            f"images must be [N, H, W, C] or [N, H, W] to draw heatmaps on; got shape {x.shape}."
        )
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo >= 0.0 and hi <= 1.0:
        return x
    if lo >= 0.0 and hi <= 255.0:
        return x / 255.0
    axes = tuple(range(1, x.ndim))
    lo_i = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo_i
    return (x - lo_i) / np.where(span > 0, span, 1.0)


def heatmap_to_uint8(heatmaps: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` maps in ``[0, 1]`` -> ``[N, H, W, 1]`` uint8 grey (255 at the peak)."""
    h = np.clip(np.nan_to_num(np.asarray(heatmaps, np.float32)), 0.0, 1.0)
    return np.round(h * 255.0).astype(np.uint8)[..., None]


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``[H, W, 1 | 3]`` image (RGB order)."""
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported shapes
        raise ValueError(f"Could not encode an image of shape {image.shape} as PNG.")
    return buf.tobytes()


def tile(images: Sequence[np.ndarray], columns: int, gap: int = GAP) -> np.ndarray:
    """Tiles of equal-sized uint8 ``[H, W, C]`` images, row by row, on white."""
    n = len(images)
    h, w, c = images[0].shape
    columns = max(1, min(int(columns), n))
    rows = -(-n // columns)
    out = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, c), 255,
                  np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, k * (w + gap): k * (w + gap) + w] = img
    return out


def grid_columns(n: int) -> int:
    """Columns of a near-square grid of ``n`` tiles."""
    return max(1, int(np.ceil(np.sqrt(n))))


def caption_strips(texts: Sequence[str], width: int) -> list[np.ndarray]:
    """One white ``[h, width, 3]`` uint8 strip per text, all of the same height, holding the
    text in black in the bitmap font of :mod:`._font` (the same pixels whatever OpenCV is
    installed). Every character shows at any width that holds one glyph: a text too long
    for one line wraps (see :func:`._font.layout`), so two different texts, such as
    ``"epoch 9"`` and ``"epoch 10"``, always give two different strips."""
    pad = 1
    scale, lines = _font.layout(texts, width, pad)
    rows = max(len(ls) for ls in lines) if lines else 1
    line_h = (_font.GLYPH_H + 1) * scale
    height = rows * line_h - scale + 2 * (pad + 1) * scale
    strips = []
    for text_lines in lines:
        strip = np.full((height, width, 3), 255, np.uint8)
        for r, line in enumerate(text_lines):
            ink = _font.render(line, scale)[:, : max(0, width - pad * scale)]
            y = (pad + 1) * scale + r * line_h
            x = pad * scale
            strip[y: y + ink.shape[0], x: x + ink.shape[1]][ink] = 0
        strips.append(strip)
    return strips


def with_caption(image: np.ndarray, text: str, strip: np.ndarray | None = None) -> np.ndarray:
    """``image`` (uint8 RGB) with a white strip above it holding ``text`` in black (``strip``:
    one made already by :func:`caption_strips`)."""
    if strip is None:
        strip = caption_strips([text], image.shape[1])[0]
    return np.concatenate([strip, image[..., :3]], axis=0)


def safe_name(text: str) -> str:
    """``text`` usable in a TensorBoard tag and a file name: letters, digits, ``.-_``."""
    cleaned = re.sub(r"[^0-9A-Za-z._-]+", "_", str(text)).strip("_")
    return cleaned or "_"


def write_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], duration_ms: int) -> None:
    """An endlessly looping animated GIF of uint8 RGB frames (Pillow, which matplotlib brings)."""
    from PIL import Image

    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=int(duration_ms),
                     loop=0, optimize=False, disposal=1)


def write_png(path: str | os.PathLike, image: np.ndarray | bytes) -> None:
    data = image if isinstance(image, bytes) else encode_png(image)
    with open(path, "wb") as f:
        f.write(data)


def write_animations(frames: dict, png_dir: str, n_probes: int, kinds: Sequence[str],
                     duration_ms: int) -> None:
    """Per ``(probe, label)``, its captioned frames as ``probe_01_<label>.gif`` and/or one
    ``probe_01_<label>_epochs.png`` grid (``kinds``: ``"gif"``, ``"grid"``) in ``png_dir``."""
    os.makedirs(png_dir, exist_ok=True)
    width = max(2, len(str(max(n_probes - 1, 0))))
    for (probe, label), captioned in sorted(frames.items()):
        # One layout for all of a probe's frames: equal sizes, and the same scale throughout.
        strips = caption_strips([text for text, _ in captioned], captioned[0][1].shape[1])
        pictures = [with_caption(img, text, strip)
                    for (text, img), strip in zip(captioned, strips)]
        stem = os.path.join(png_dir, f"probe_{probe:0{width}d}_{label}")
        if "gif" in kinds:
            write_gif(stem + ".gif", pictures, duration_ms)
        if "grid" in kinds:
            write_png(stem + "_epochs.png", tile(pictures, min(len(pictures), 10)))
