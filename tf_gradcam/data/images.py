"""Image files on disk: which files a list of paths names, decoding one, sizing it for a model.

The one place for both, used by ``tf-gradcam explain`` (which skips undecodable images) and
``tfg.evaluate`` / ``tf-gradcam evaluate`` (which reads a set of images to score).
"""

from __future__ import annotations

import glob
import os
from typing import Any, Sequence

import numpy as np

#: File name endings taken from a directory (what OpenCV's ``imdecode`` reads).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".pxm", ".jp2", ".sr", ".ras", ".exr", ".hdr",
                  ".pic", ".avif")


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def image_files(sources: Sequence[Any]) -> list[str]:
    """The image files named by ``sources``: a file as given, a directory's image files
    (sorted, not descending into subfolders), a glob pattern's matches (sorted; ``**``
    descends). Raises ``ValueError`` for a missing file, or a directory or pattern that names
    no image."""
    paths: list[str] = []
    for src in sources:
        src = os.fspath(src)
        if os.path.isdir(src):
            found = sorted(os.path.join(src, name) for name in os.listdir(src)
                           if name.lower().endswith(IMAGE_SUFFIXES)
                           and os.path.isfile(os.path.join(src, name)))
            if not found:
                raise ValueError(f"directory {src} holds no image file "
                                 f"({', '.join(IMAGE_SUFFIXES[:4])}, ...)")
            paths += found
        elif not os.path.exists(src) and _is_pattern(src):
            found = sorted(p for p in glob.glob(src, recursive=True) if os.path.isfile(p))
            if not found:
                raise ValueError(f"no file matches {src}")
            paths += found
        elif os.path.isfile(src):
            paths.append(src)
        else:
            raise ValueError(f"image not found: {src}")
    return paths


def read_image(path: str, channels: int = 3) -> np.ndarray | None:
    """``[H, W, 3]`` RGB (``channels=3``) or ``[H, W]`` grey ``uint8`` as stored, or ``None``
    when the file cannot be read or decoded."""
    import cv2

    try:
        data = np.fromfile(path, np.uint8)  # imdecode: any path encoding, and no crash on dirs
    except OSError:
        return None
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imdecode(data, flag) if data.size else None
    if img is None:
        return None
    if channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def fit_image(img: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """``img`` (``[h, w]`` or ``[h, w, C]`` ``uint8``) as ``[height, width, channels]``: resized
    by area when it shrinks on either axis (no aliasing), bilinearly when it only grows."""
    import cv2

    if img.shape[:2] != (height, width):
        shrinking = img.shape[0] > height or img.shape[1] > width
        img = cv2.resize(img, (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return img.reshape(height, width, channels)
