"""Token sequences as patch grids: a ``[N, T, C]`` target inside an image model.

A vision transformer's blocks output ``T = P + h * w`` tokens: ``P`` prefix tokens (a class
token, DeiT's distillation token, DINOv2's registers) followed by one token per patch in raster
order. To draw a map over the image, the prefix is dropped and the rest reshaped to the
``[h, w]`` patch grid. :func:`layout` infers ``P`` and ``(h, w)`` from ``T`` and the image's
size; :class:`Tokens` states them when they cannot be inferred (a non-square grid without a
hint, an image of unknown size), and a callable does any other reshape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import tensorflow as tf

#: The most prefix tokens considered when inferring a layout (a class token, a distillation
#: token and up to 16 registers fit well within it).
MAX_PREFIX = 32


@dataclass(frozen=True)
class Tokens:
    """How a ``[N, T, C]`` token sequence maps onto the image: ``prefix`` leading tokens that
    are not patches, then ``grid = (h, w)`` patch tokens in raster order. Either may be left
    ``None`` to be inferred from the other and the image's size.

    Examples: ``Tokens(prefix=1)`` (ViT), ``Tokens(prefix=5, grid=(16, 16))`` (DINOv2 with
    4 registers at 224 px, patch 14), ``Tokens(prefix=0, grid=(7, 7))`` (flattened Swin stage).
    """

    prefix: int | None = None
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.prefix is not None and (isinstance(self.prefix, bool) or self.prefix < 0):
            raise ValueError(f"Tokens.prefix must be an int >= 0, got {self.prefix!r}.")
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ValueError(f"Tokens.grid must be (rows, columns) >= 1, got {self.grid!r}.")


#: What an explainer's ``tokens=`` takes: a layout, or ``fn([N, T, C]) -> [N, h, w, C]``.
TokensLike = Union[Tokens, Callable[[tf.Tensor], tf.Tensor], None]


@dataclass(frozen=True)
class Layout:
    """A resolved layout: ``prefix`` tokens, then an ``h x w`` grid (``fn`` for a callable)."""

    prefix: int
    grid: tuple[int, int]
    fn: Callable | None = None

    def to_grid(self, tokens: tf.Tensor) -> tf.Tensor:
        """``[N, T, C] -> [N, h, w, C]``."""
        if self.fn is not None:
            return self.fn(tokens)
        patches = tokens[:, self.prefix:, :]
        return tf.reshape(patches, tf.stack([tf.shape(tokens)[0], *self.grid, tf.shape(tokens)[2]]))

    def from_grid(self, grid: tf.Tensor, tokens: tf.Tensor) -> tf.Tensor:
        """The inverse of :meth:`to_grid`: ``grid [N, h, w, C]`` back into ``tokens``' layout,
        its prefix tokens kept as they are."""
        if self.fn is not None:
            raise ValueError(
                "A callable tokens= reshape has no inverse; methods that change the target's "
                "activations (Ablation-CAM) need tokens=tfg.Tokens(prefix=..., grid=...).")
        flat = tf.reshape(grid, tf.stack([tf.shape(grid)[0], -1, tf.shape(grid)[-1]]))
        return tf.concat([tokens[:, : self.prefix, :], tf.cast(flat, tokens.dtype)], axis=1)

    def describe(self) -> str:
        if self.fn is not None:
            return "a callable reshape"
        return f"{self.prefix} prefix token(s) + a {self.grid[0]}x{self.grid[1]} patch grid"


def _grids(n: int, image: tuple | None) -> list[tuple[int, int]]:
    """Grids of ``n`` patches whose aspect ratio is the image's and that divide it evenly."""
    if image is None or None in image:
        return []
    height, width = image
    found = []
    for rows in range(1, n + 1):
        if n % rows:
            continue
        cols = n // rows
        if rows * width == cols * height and height % rows == 0 and width % cols == 0:
            found.append((rows, cols))
    return found


def layout(count: int | None, image: tuple | None, hint: TokensLike, where: str) -> Layout:
    """The layout of ``count`` tokens over an image of ``image = (H, W)`` pixels.

    Without a hint, prefixes ``P = 0, 1, ... MAX_PREFIX`` are tried in turn: the first whose
    remaining tokens form a grid (of more than one cell) with the image's aspect ratio and
    cells that divide the image evenly (a patch size) is the layout. The fewest prefix tokens
    win because patches are the bulk of any real sequence (ViT's ``1 + 14 * 14``, DeiT's
    ``2 + 196``, DINOv2's ``1 + 4 + 256``: a smaller square is 27 or more tokens away). An
    image of unknown size, or no fitting grid, raises a ValueError that says what to pass.
    """
    if callable(hint) and not isinstance(hint, Tokens):
        return Layout(prefix=0, grid=(0, 0), fn=hint)
    hint = hint or Tokens()
    if count is None:
        if hint.prefix is not None and hint.grid is not None:
            return Layout(hint.prefix, (hint.grid[0], hint.grid[1]))
        raise ValueError(f"{where} has an unknown number of tokens: pass tokens=tfg.Tokens("
                         "prefix=..., grid=(rows, columns)).")
    if hint.grid is not None:
        prefix = count - hint.grid[0] * hint.grid[1] if hint.prefix is None else hint.prefix
        if prefix < 0 or prefix + hint.grid[0] * hint.grid[1] != count:
            raise ValueError(
                f"{where} has {count} tokens, which is not {hint.prefix or 'P'} prefix tokens "
                f"+ a {hint.grid[0]}x{hint.grid[1]} grid; check tokens=tfg.Tokens(...).")
        return Layout(prefix, (hint.grid[0], hint.grid[1]))
    prefixes = [hint.prefix] if hint.prefix is not None else range(min(MAX_PREFIX, count - 1) + 1)
    size = "an image of unknown size" if image is None or None in image else (
        f"a {image[0]}x{image[1]} image")
    for prefix in prefixes:  # the fewest prefix tokens first: patches are the bulk of a sequence
        grids = [g for g in _grids(count - prefix, image) if g[0] * g[1] > 1]
        if grids:
            return Layout(prefix, grids[0])
    raise ValueError(
        f"{where} holds {count} tokens, which do not form a patch grid of {size} after up to "
        f"{MAX_PREFIX} prefix tokens. If it is a token sequence, say how: "
        "tokens=tfg.Tokens(prefix=1, grid=(rows, columns)); or choose a layer with spatial axes "
        "([N, H, W, C]).")
