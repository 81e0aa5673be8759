"""A 3 x 5 pixel bitmap font in NumPy, for captions that read the same on every machine.

OpenCV's Hershey text changed its metrics between 4.x and 5.0 ("epoch 0" at scale 0.3 is 40 px
wide on 4.x, 30 px on 5.0), so a caption drawn with it could lose its epoch number off the edge
of a narrow image on one OpenCV and not on another. These glyphs are fixed pixels: a caption is
as wide as ``4 * len(text) - 1`` pixels per unit of scale, anywhere. Lower-case letters are
drawn as capitals; a character outside printable ASCII as ``?``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["GLYPH_H", "GLYPH_W", "render", "layout", "text_width"]

GLYPH_W, GLYPH_H = 3, 5

_GLYPHS = {
    " ": ("...", "...", "...", "...", "..."),
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"),
    "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"),
    "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."),
    "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "###", ".##"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."),
    "Z": ("###", "..#", ".#.", "#..", "###"),
    "!": (".#.", ".#.", ".#.", "...", ".#."),
    '"': ("#.#", "#.#", "...", "...", "..."),
    "#": ("#.#", "###", "#.#", "###", "#.#"),
    "$": (".##", "##.", ".#.", ".##", "##."),
    "%": ("#.#", "..#", ".#.", "#..", "#.#"),
    "&": (".#.", "#.#", ".#.", "#.#", ".##"),
    "'": (".#.", ".#.", "...", "...", "..."),
    "(": ("..#", ".#.", ".#.", ".#.", "..#"),
    ")": ("#..", ".#.", ".#.", ".#.", "#.."),
    "*": ("...", "#.#", ".#.", "#.#", "..."),
    "+": ("...", ".#.", "###", ".#.", "..."),
    ",": ("...", "...", "...", ".#.", "#.."),
    "-": ("...", "...", "###", "...", "..."),
    ".": ("...", "...", "...", "...", ".#."),
    "/": ("..#", "..#", ".#.", "#..", "#.."),
    ":": ("...", ".#.", "...", ".#.", "..."),
    ";": ("...", ".#.", "...", ".#.", "#.."),
    "<": ("..#", ".#.", "#..", ".#.", "..#"),
    "=": ("...", "###", "...", "###", "..."),
    ">": ("#..", ".#.", "..#", ".#.", "#.."),
    "?": ("###", "..#", ".#.", "...", ".#."),
    "@": (".#.", "#.#", "###", "#..", ".##"),
    "[": ("##.", "#..", "#..", "#..", "##."),
    "\\": ("#..", "#..", ".#.", "..#", "..#"),
    "]": (".##", "..#", "..#", "..#", ".##"),
    "^": (".#.", "#.#", "...", "...", "..."),
    "_": ("...", "...", "...", "...", "###"),
    "`": ("#..", ".#.", "...", "...", "..."),
    "{": (".##", ".#.", "#..", ".#.", ".##"),
    "|": (".#.", ".#.", ".#.", ".#.", ".#."),
    "}": ("##.", ".#.", "..#", ".#.", "##."),
    "~": ("...", "..#", "###", "#..", "..."),
}

_BITMAPS = {ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
            for ch, rows in _GLYPHS.items()}


def _glyph(ch: str) -> np.ndarray:
    return _BITMAPS.get(ch.upper(), _BITMAPS["?"])


def text_width(text: str, scale: int = 1) -> int:
    """Pixels a line of ``text`` takes at ``scale`` (one blank column between glyphs)."""
    return max(0, (GLYPH_W + 1) * len(text) - 1) * scale


def render(text: str, scale: int = 1) -> np.ndarray:
    """``[5 * scale, text_width(text, scale)]`` bool: True where the line's ink is."""
    out = np.zeros((GLYPH_H, max(0, (GLYPH_W + 1) * len(text) - 1)), dtype=bool)
    for i, ch in enumerate(text):
        out[:, i * (GLYPH_W + 1): i * (GLYPH_W + 1) + GLYPH_W] = _glyph(ch)
    return np.kron(out, np.ones((scale, scale), dtype=bool)) if scale > 1 else out


def _wrap(text: str, chars: int) -> list[str]:
    """``text`` in lines of at most ``chars`` characters: at spaces where it can, a word longer
    than a line split across lines."""
    lines: list[str] = []
    for word in text.split() or [""]:
        while len(word) > chars:
            lines.append(word[:chars])
            word = word[chars:]
        if not word:
            continue
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def layout(texts: Sequence[str], width: int, pad: int = 1) -> tuple[int, list[list[str]]]:
    """One scale and the lines of each text, so that every text fits ``width`` pixels with
    ``pad`` pixels (times the scale) either side.

    The largest scale (at most ``width // 80``, at least 1) at which every text fits on one
    line; when none does, scale 1 with the texts wrapped (at spaces, then inside words), so that
    nothing is ever cut off, at any width that holds one glyph.
    """
    cap = max(1, width // 80)
    for scale in range(cap, 0, -1):
        if all(text_width(t, scale) + 2 * pad * scale <= width for t in texts):
            return scale, [[t] for t in texts]
    chars = max(1, (width - 2 * pad + 1) // (GLYPH_W + 1))
    return 1, [_wrap(t, chars) for t in texts]
